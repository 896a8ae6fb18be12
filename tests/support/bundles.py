"""Reading a support bundle as support would (plain helpers): every member's bytes, nested
archives opened, and the forms a secret could take in it."""

import base64
import gzip
import io
import tarfile
from pathlib import Path
from urllib.parse import quote


def forms(canary: str) -> set[bytes]:
    """A canary as it could be written: plain, base64, percent-encoded."""
    return {canary.encode(), base64.b64encode(canary.encode()),
            base64.b64encode(canary.encode()).rstrip(b"="), quote(canary, safe="").encode()}


def members(archive: Path) -> dict[str, bytes]:
    """Every member's bytes, by name without the top folder, in archive order; any member
    that is itself compressed is added decompressed too."""
    found = {}
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read()
            name = info.name.split("/", 1)[1]
            found[name] = data
            if data[:2] == b"\x1f\x8b":
                found[f"{name} (decompressed)"] = gzip.decompress(data)
            if data[:262].find(b"ustar") > 0:
                found.update({f"{name}/{k}": v for k, v in members_of(data).items()})
    return found


def members_of(tar_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar.getmembers()
                if info.isfile()}
