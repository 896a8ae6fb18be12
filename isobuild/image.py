"""Read-only access to an ISO 9660 image's files through pycdlib, by Rock Ridge path."""

import io
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from isobuild.disklayout import BLOCK, read_at


class NotAnIso(Exception):
    """The file is not an ISO 9660 image pycdlib can read."""


class IsoImage:
    def __init__(self, path: Path):
        self.path = path
        self.fp = open(path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        try:
            if read_at(self.fp, 16 * BLOCK + 1, 5) != b"CD001":
                raise NotAnIso("no ISO 9660 primary volume descriptor at block 16")
            self.iso = pycdlib.PyCdlib()
            self.iso.open_fp(self.fp)
        except Exception as exc:  # pycdlib raises assorted errors on arbitrary input
            self.fp.close()
            raise NotAnIso(str(exc)) from exc

    def __enter__(self) -> "IsoImage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.iso.close()
        self.fp.close()

    @property
    def volume_id(self) -> str:
        return self.iso.pvd.volume_identifier.decode("ascii", "replace").rstrip()

    @property
    def has_joliet(self) -> bool:
        return self.iso.has_joliet()

    def record(self, path: str):
        """The directory record at Rock Ridge `path`, or None."""
        try:
            return self.iso.get_record(rr_path=path)
        except PyCdlibException:
            return None

    def read(self, path: str) -> bytes | None:
        record = self.record(path)
        if record is None or record.is_dir():
            return None
        out = io.BytesIO()
        self.iso.get_file_from_iso_fp(out, rr_path=path)
        return out.getvalue()

    def extent(self, path: str) -> tuple[int, int] | None:
        """(first block, length in bytes) of the file at `path`."""
        record = self.record(path)
        return None if record is None else (record.extent_location(), record.get_data_length())

    def files(self) -> list[str]:
        """Rock Ridge paths of every regular file, sorted."""
        found = []
        for root, _dirs, names in self.iso.walk(rr_path="/"):
            for name in names:
                path = f"{root.rstrip('/')}/{name}"
                record = self.record(path)
                if record is not None and not record.is_symlink():
                    found.append(path)
        return sorted(found)
