"""SHA-256 of large files (streamed) and Ubuntu's SHA256SUMS files."""

import hashlib
from collections.abc import Callable
from pathlib import Path

from isobuild.errors import IsoBuildError

CHUNK = 4 << 20


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    digest, total, done = hashlib.sha256(), path.stat().st_size, 0
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def parse_sha256sums(text: str) -> dict[str, str]:
    """file name -> hex digest, from `<hash> *<name>` or `<hash>  <name>` lines."""
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        name = name.lstrip(" *")
        if len(digest) == 64 and name:
            sums[name] = digest.lower()
    return sums


def expected_sha256(sums_path: Path, name: str) -> str:
    try:
        sums = parse_sha256sums(sums_path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise IsoBuildError(f"cannot read {sums_path}: {exc.strerror}",
                            "pass the SHA256SUMS file published beside the ISO") from exc
    if name not in sums:
        raise IsoBuildError(f"{sums_path} has no entry for {name}",
                            "use the SHA256SUMS published with this ISO, and keep the ISO's "
                            "original file name")
    return sums[name]


def check_sha256(path: Path, actual: str, sums_path: Path) -> None:
    expected = expected_sha256(sums_path, path.name)
    if actual != expected:
        raise IsoBuildError(f"{path.name} has sha256 {actual}, but {sums_path} says {expected}",
                            "the download is corrupt or not the published image: download it "
                            "again")
