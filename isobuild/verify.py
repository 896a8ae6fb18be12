"""Structural verification of an appliance ISO: every boot path, the seed and md5sum.txt.

Each check is a named rule with its own result, so `isobuild verify --json` and the
build's own gate report the same thing.
"""

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isobuild import disklayout as dl
from isobuild import fat, grubcfg, md5sums, seed
from isobuild.errors import IsoBuildError
from isobuild.image import IsoImage, NotAnIso
from isobuild.layout import Layout, read_layout
from isobuild.plan import MAIN_MENU, MD5SUM, META_DATA, USER_DATA


class CheckFailed(Exception):
    pass


@dataclass(frozen=True)
class _Context:
    iso: IsoImage
    layout: Layout
    md5_scope: set[str] | None  # None: every md5sum.txt entry

    def read(self, offset: int, size: int) -> bytes:
        return dl.read_at(self.iso.fp, offset, size)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _bios_image(ctx: _Context) -> tuple[int, bytes]:
    _require(ctx.layout.bios_image is not None, "no /boot/grub/i386-pc/eltorito.img")
    block, length = ctx.layout.bios_image
    return block, ctx.read(block * dl.BLOCK, length)


def check_el_torito_bios(ctx: _Context) -> str:
    entry = ctx.layout.bios_entry
    _require(entry is not None, ctx.layout.el_torito_error or "no BIOS El Torito entry")
    block, _ = _bios_image(ctx)
    _require(entry.bootable and entry.media == 0, "BIOS entry is not bootable no-emulation")
    _require(entry.load_rba == block, f"BIOS entry loads block {entry.load_rba}, "
                                      f"eltorito.img is at {block}")
    return f"eltorito.img at block {block}, {entry.sector_count} sectors"


def check_el_torito_efi(ctx: _Context) -> str:
    entry = ctx.layout.efi_entry
    _require(entry is not None, ctx.layout.el_torito_error or "no UEFI El Torito entry")
    _require(entry.bootable and entry.media == 0, "UEFI entry is not bootable no-emulation")
    return f"load RBA {entry.load_rba}, {entry.sector_count} sectors"


def check_boot_info_table(ctx: _Context) -> str:
    block, image = _bios_image(ctx)
    table = dl.read_boot_info_table(image)
    # 16 for a single-session image; xorriso's replay names its own session's PVD.
    _require(ctx.read(table.pvd_block * dl.BLOCK, 6) == b"\x01CD001",
             f"boot info table names block {table.pvd_block}, which is no primary descriptor")
    _require(table.file_block == block, f"boot info table names block {table.file_block}")
    _require(table.file_length == len(image), "boot info table has the wrong image length")
    _require(table.checksum == dl.boot_info_checksum(image), "boot info table checksum is wrong")
    return "PVD, location, length and checksum match"


def check_grub2_boot_info(ctx: _Context) -> str:
    block, image = _bios_image(ctx)
    value = dl.grub_boot_info(image)
    _require(value == block * 4 + 5, f"eltorito.img byte 2548 holds {value}, "
                                     f"expected {block * 4 + 5}")
    return f"byte 2548 = {value}"


def check_mbr(ctx: _Context) -> str:
    mbr, layout = ctx.layout.mbr, ctx.layout
    block, _ = _bios_image(ctx)
    _require(mbr[510:512] == b"\x55\xaa", "no MBR boot signature")
    _require(any(mbr[:dl.MBR_CODE_SIZE]), "MBR boot code is all zeros")
    _require(dl.mbr_grub_pointer(mbr) == block * 4 + 4,
             f"MBR 0x1b0 holds {dl.mbr_grub_pointer(mbr)}, expected {block * 4 + 4}")
    protective = [e for e in layout.mbr_entries if e.type == dl.PROTECTIVE_TYPE]
    _require(len(protective) == 1, "MBR has no protective 0xEE entry")
    last = _disk_last_lba(ctx)
    _require(protective[0].first_lba == 1 and protective[0].sectors == min(last, 0xFFFFFFFF),
             f"protective 0xEE entry covers {protective[0].sectors} sectors, the disk image "
             f"ends at LBA {last}")
    return "GRUB hybrid MBR, 0x1b0 and protective entry match"


def _disk_last_lba(ctx: _Context) -> int:
    """The last sector of the disk image: the backup GPT's, if the primary names one.

    xorriso may write output padding after the image; it is outside the disk image.
    """
    file_last = ctx.layout.image_size // dl.SECTOR - 1
    if ctx.layout.gpt is None:
        return file_last
    _require(ctx.layout.gpt[0].backup_lba <= file_last, "the backup GPT lies past the end")
    return ctx.layout.gpt[0].backup_lba


def _primary_gpt(ctx: _Context) -> tuple[dl.GptHeader, list[dl.GptPartition]]:
    _require(ctx.layout.gpt is not None, f"primary GPT: {ctx.layout.gpt_error}")
    return ctx.layout.gpt


def check_gpt(ctx: _Context) -> str:
    header, parts = _primary_gpt(ctx)
    last = _disk_last_lba(ctx)
    padding = ctx.read((last + 1) * dl.SECTOR, ctx.layout.image_size - (last + 1) * dl.SECTOR)
    _require(not any(padding), "there is data after the backup GPT")
    try:
        backup, backup_parts = dl.read_gpt(ctx.iso.fp, last)
    except dl.LayoutError as exc:
        raise CheckFailed(f"backup GPT: {exc}") from exc
    _require(backup == dl.backup_header(header, last + 1), "backup GPT header differs")
    _require(backup_parts == parts, "backup GPT partitions differ from the primary")
    ranges = sorted((p.first_lba, p.last_lba) for p in parts)
    _require(all(a[1] < b[0] for a, b in itertools.pairwise(ranges)),
             "GPT partitions overlap")
    _require(all(header.first_usable <= p.first_lba <= p.last_lba <= header.last_usable
                 for p in parts), "a GPT partition lies outside the usable area")
    iso_parts = [p for p in parts if p.type_guid == dl.BASIC_DATA_TYPE and p.first_lba == 64]
    _require(bool(iso_parts), "no ISO 9660 data partition at LBA 64")
    return f"{len(parts)} partitions, primary and backup CRCs good"


def _esp(ctx: _Context) -> dl.GptPartition:
    _primary_gpt(ctx)  # the ESP is only trusted from a CRC-checked GPT
    esp = ctx.layout.esp
    _require(esp is not None, "no EFI System Partition in the GPT")
    return esp


def check_esp(ctx: _Context) -> str:
    esp = _esp(ctx)
    image = ctx.read(esp.first_lba * dl.SECTOR, esp.sectors * dl.SECTOR)
    try:
        size = fat.file_size(image, "/EFI/BOOT/BOOTX64.EFI")
    except (fat.FatError, IndexError, ValueError) as exc:
        raise CheckFailed(f"ESP is not FAT: {exc}") from exc
    _require(bool(size), "ESP has no /EFI/BOOT/BOOTX64.EFI")
    return f"FAT ESP of {esp.sectors * dl.SECTOR} bytes with BOOTX64.EFI ({size} bytes)"


def check_efi_entry_matches_esp(ctx: _Context) -> str:
    esp, entry = _esp(ctx), ctx.layout.efi_entry
    _require(entry is not None, "no UEFI El Torito entry")
    _require(entry.load_rba * 4 == esp.first_lba,
             f"UEFI entry loads LBA {entry.load_rba * 4}, the ESP starts at {esp.first_lba}")
    _require(entry.sector_count == min(esp.sectors, 0xFFFF), "UEFI entry size is not the ESP's")
    return f"UEFI entry = ESP at LBA {esp.first_lba}"


def check_autoinstall_args(ctx: _Context) -> str:
    lines = ctx.layout.casper_lines()
    _require(bool(lines.get("/boot/grub/grub.cfg")), "grub.cfg has no casper linux line")
    count = 0
    for path, kernel_lines in lines.items():
        for line in kernel_lines:
            for arg in grubcfg.AUTOINSTALL_ARGS:
                _require(line.before.count(arg) == 1,
                         f"{path}: {line.kernel} has {arg!r} {line.before.count(arg)} times "
                         "before ---")
            _require(not any(a.startswith("ds=") for a in line.after or []),
                     f"{path}: {line.kernel} has a ds= argument after ---")
            count += 1
    return f"{count} casper lines carry {' '.join(grubcfg.AUTOINSTALL_ARGS)}"


def check_install_menu(ctx: _Context) -> str:
    text = ctx.layout.grub_configs.get(MAIN_MENU)
    _require(text is not None, f"no {MAIN_MENU}")
    entries = grubcfg.menu_entries(text)
    first = entries[0].title if entries else None
    _require(grubcfg.INSTALLED_GUARD in text and first == grubcfg.INSTALLED_TITLE,
             f"{MAIN_MENU} does not start with the entry that boots an installed disk "
             f"(found by {grubcfg.INSTALLED_MARKER}): a second boot would reinstall")
    installs = [entry for entry in entries if entry.kernels]
    for entry in installs:
        expected = grubcfg.install_title(entry.kernels[0])
        _require(entry.title == expected,
                 f"{MAIN_MENU}: entry {entry.title!r} installs but is not titled {expected!r}")
    return f"installed-disk entry first, {len(installs)} install entries say they erase the disk"


def check_seed(ctx: _Context) -> str:
    data = ctx.iso.read(USER_DATA)
    _require(data is not None, f"no {USER_DATA}")
    _require(ctx.iso.read(META_DATA) is not None, f"no {META_DATA}")
    try:
        seed.check_autoinstall(seed.parse_user_data(data))
    except (ValueError, IsoBuildError) as exc:
        raise CheckFailed(str(exc)) from exc
    return "user-data validates against subiquity's 24.04 autoinstall schema"


def check_md5sum(ctx: _Context) -> str:
    text = ctx.iso.read(MD5SUM)
    _require(text is not None, "no /md5sum.txt")
    entries = md5sums.parse(text.decode("utf-8", "replace"))
    scope = set(entries) if ctx.md5_scope is None else ctx.md5_scope - set(md5sums.EXCLUDED)
    scope.discard(MD5SUM)
    for path in sorted(scope):
        _require(path in entries, f"{path} is not listed in md5sum.txt")
        data = ctx.iso.read(path)
        _require(data is not None, f"md5sum.txt lists {path}, which is not on the ISO")
        _require(hashlib.md5(data).hexdigest() == entries[path], f"md5 of {path} differs")
    return f"{len(scope)} entries match"


CHECKS: tuple[tuple[str, Callable[[_Context], str]], ...] = (
    ("el-torito-bios", check_el_torito_bios),
    ("el-torito-efi", check_el_torito_efi),
    ("boot-info-table", check_boot_info_table),
    ("grub2-boot-info", check_grub2_boot_info),
    ("mbr", check_mbr),
    ("gpt", check_gpt),
    ("esp", check_esp),
    ("efi-entry-matches-esp", check_efi_entry_matches_esp),
    ("autoinstall-args", check_autoinstall_args),
    ("install-menu", check_install_menu),
    ("seed", check_seed),
    ("md5sum", check_md5sum),
)


def verify(path: Path, md5_scope: set[str] | None = None) -> dict:
    """The verification report: {"ok": bool, "checks": [{"id", "ok", "detail"}]}."""
    try:
        iso = IsoImage(path)
    except (NotAnIso, OSError) as exc:
        return {"path": str(path), "ok": False,
                "checks": [{"id": "iso9660", "ok": False, "detail": str(exc)}]}
    with iso:
        ctx = _Context(iso, read_layout(iso), md5_scope)
        results = [{"id": "iso9660", "ok": True, "detail": ctx.layout.volume_id}]
        for check_id, check in CHECKS:
            try:
                results.append({"id": check_id, "ok": True, "detail": check(ctx)})
            except (CheckFailed, dl.LayoutError) as exc:
                results.append({"id": check_id, "ok": False, "detail": str(exc)})
    return {"path": str(path), "ok": all(r["ok"] for r in results), "checks": results}
