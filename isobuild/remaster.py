"""Write the edited ISO 9660 volume with pycdlib, reproducibly and streaming.

pycdlib streams file data from the base image, so memory stays flat whatever the ISO
size; its copy loop is swapped for the kernel's copy_file_range. It stamps new records
with `time.time()`; for a reproducible image its clock is pinned to the build's epoch.
"""

import contextlib
import io
import os
import re
import time
import time as _real_time  # the `time` method below shadows the module in the class
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pycdlib
import pycdlib.dates
import pycdlib.eltorito
import pycdlib.headervd
import pycdlib.inode
import pycdlib.pycdlib
import pycdlib.utils

from isobuild.disklayout import EFI_PLATFORM
from isobuild.layout import BIOS_IMAGE

WRITE_BLOCKSIZE = 1 << 20


@dataclass(frozen=True)
class FileEdit:
    data: bytes
    mode: int  # POSIX permission bits for Rock Ridge


class _FixedClock:
    """Stands in for the `time` module inside pycdlib: every timestamp is the epoch, in UTC."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def time(self) -> float:
        return float(self.epoch)

    def localtime(self, seconds: float | None = None) -> "time.struct_time":
        return _real_time.gmtime(self.epoch if seconds is None else seconds)

    def __getattr__(self, name: str):
        return getattr(_real_time, name)


_PYCDLIB_MODULES = (pycdlib.pycdlib, pycdlib.headervd, pycdlib.dates, pycdlib.utils)
_PYCDLIB_COPY = pycdlib.utils.copy_data_yield
KERNEL_COPY_CHUNK = 64 << 20


def _copy_in_kernel(length: int, blocksize: int, infp, outfp) -> Iterator[int]:
    """pycdlib's copy loop, done by copy_file_range: the data never enters Python.

    Copying gigabytes of squashfs through read()/write() costs several times what the
    kernel's in-place copy does. Yields the bytes copied, as pycdlib's version does.
    """
    try:
        source, target = infp.fileno(), outfp.fileno()
    except (AttributeError, io.UnsupportedOperation):
        yield from _PYCDLIB_COPY(length, blocksize, infp, outfp)
        return
    outfp.flush()
    source_offset, target_offset = infp.tell(), outfp.tell()
    while length > 0:
        copied = os.copy_file_range(source, target, min(length, KERNEL_COPY_CHUNK),
                                    source_offset, target_offset)
        if copied == 0:  # the source ends early; pycdlib tolerates such ISOs too
            break
        source_offset, target_offset, length = (source_offset + copied,
                                                target_offset + copied, length - copied)
        yield copied
    infp.seek(source_offset)
    outfp.seek(target_offset)


@contextlib.contextmanager
def _pycdlib_patched(epoch: int) -> Iterator[None]:
    """Pin pycdlib's clock to the build epoch and give it the in-kernel copy."""
    clock = _FixedClock(epoch)
    for module in _PYCDLIB_MODULES:
        module.time = clock
    pycdlib.utils.copy_data_yield = _copy_in_kernel
    try:
        yield
    finally:
        for module in _PYCDLIB_MODULES:
            module.time = time
        pycdlib.utils.copy_data_yield = _PYCDLIB_COPY


def write(base_fp: BinaryIO, edits: dict[str, FileEdit], out_fp: BinaryIO, epoch: int,
          appended_from_block: int, progress: Callable[[int, int], None]) -> tuple[int, int]:
    """Write base + edits to `out_fp`; return where eltorito.img landed (block, length).

    `appended_from_block` is where the base's appended partitions (ESP and padding)
    begin; they are left out here and the ESP is re-appended by the hybrid rebuild.
    """
    with _pycdlib_patched(epoch):
        iso = pycdlib.PyCdlib()
        iso.open_fp(base_fp)
        _drop_hidden_efi_copy(iso)
        _drop_appended_area(iso, appended_from_block)
        for path in sorted(edits):
            _put(iso, path, edits[path])
        # pycdlib counts the callback's parameters; a plain two-argument function is unambiguous.
        iso.write_fp(out_fp, blocksize=WRITE_BLOCKSIZE,
                     progress_cb=lambda done, total: progress(done, total))
        record = iso.get_record(rr_path=BIOS_IMAGE)
        bios_image = (record.extent_location(), record.get_data_length())
        iso.close()
    return bios_image


def _drop_hidden_efi_copy(iso: pycdlib.PyCdlib) -> None:
    # Ubuntu's EFI El Torito entry points at the appended ESP, which is no file in the
    # tree. pycdlib would copy it into the volume as a hidden file; the hybrid rebuild
    # appends the ESP as a partition instead, so the stand-in is emptied.
    for section in iso.eltorito_boot_catalog.sections:
        if section.platform_id != EFI_PLATFORM:
            continue
        for entry in section.section_entries:
            inode = entry.inode
            if all(isinstance(rec, pycdlib.eltorito.EltoritoEntry)
                   for rec, _ in inode.linked_records):
                inode.data_length = 0


def _drop_appended_area(iso: pycdlib.PyCdlib, first_block: int) -> None:
    # xorriso counts the appended partitions in the volume size, and pycdlib keeps
    # the size it read, so without this every build would carry a dead copy along.
    for descriptor in [*iso.pvds, iso.joliet_vd]:
        surplus = 0 if descriptor is None else descriptor.space_size - first_block
        if surplus > 0:
            descriptor.remove_from_space_size(surplus * iso.logical_block_size)


def _put(iso: pycdlib.PyCdlib, path: str, edit: FileEdit) -> None:
    parent, _, name = path.rpartition("/")
    _ensure_directory(iso, parent or "/")
    existing = _record(iso, path)
    if existing is not None:
        iso_path = iso.full_path_from_dirrecord(existing)
        # One record at a time: rm_file removes every record of the file's data, and pycdlib
        # reads all empty files as one (a payload has several empty __init__.py).
        iso.rm_hard_link(iso_path=iso_path)
        if iso.has_joliet():
            iso.rm_hard_link(joliet_path=path)
    else:
        iso_path = _child_iso_path(iso, parent or "/", name, is_dir=False)
    iso.add_fp(io.BytesIO(edit.data), len(edit.data), iso_path=iso_path, rr_name=name,
               joliet_path=path if iso.has_joliet() else None, file_mode=0o100000 | edit.mode)


def _ensure_directory(iso: pycdlib.PyCdlib, path: str) -> None:
    if path == "/" or _record(iso, path) is not None:
        return
    parent, _, name = path.rpartition("/")
    _ensure_directory(iso, parent or "/")
    iso.add_directory(iso_path=_child_iso_path(iso, parent or "/", name, is_dir=True),
                      rr_name=name, joliet_path=path if iso.has_joliet() else None,
                      file_mode=0o040755)


def _record(iso: pycdlib.PyCdlib, path: str):
    try:
        return iso.get_record(rr_path=path)
    except pycdlib.pycdlibexception.PyCdlibException:
        return None


def _child_iso_path(iso: pycdlib.PyCdlib, parent: str, name: str, is_dir: bool) -> str:
    """A fresh ISO 9660 level-1 (8.3) path for `name` in the directory at `parent`."""
    parent_iso = "/" if parent == "/" else iso.full_path_from_dirrecord(_record(iso, parent))
    taken = {c.file_identifier().decode().split(";")[0].rstrip(".")
             for c in iso.list_children(iso_path=parent_iso)}
    stem, dot, ext = name.upper().rpartition(".") if not is_dir and "." in name else (
        name.upper(), "", "")
    stem = re.sub(r"[^A-Z0-9_]", "_", stem) or "_"
    ext = re.sub(r"[^A-Z0-9_]", "_", ext)[:3]
    for n in range(1000):
        base = stem[:8] if n == 0 else f"{stem[:8 - len(str(n)) - 1]}_{n}"
        candidate = f"{base}.{ext}" if dot else base
        if candidate.rstrip(".") not in taken:
            leaf = candidate if is_dir else f"{candidate}{'' if dot else '.'};1"
            return f"{parent_iso.rstrip('/')}/{leaf}"
    raise RuntimeError(f"no free ISO 9660 name for {name} in {parent}")
