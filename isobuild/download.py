"""Fetch the pinned official Ubuntu ISO into a cache, authenticated and verified.

Like k3s's install.sh: the release is pinned here, every knob is an environment
variable with a documented default, and nothing is used before it is verified: the
SHA256SUMS file against Canonical's signature (isobuild/gpg.py), the ISO against
SHA256SUMS. A point release lives at releases.ubuntu.com until the next one ships, then
at old-releases.ubuntu.com: both are tried, in that order. An interrupted ISO download
resumes from the partial file with an HTTP Range request.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import requests

from isobuild import checksums, gpg
from isobuild.errors import IsoBuildError
from isobuild.progress import Progress

# The pin: bumping it is the one edit that moves the build to another point release
# (`isobuild check-base` says when one exists).
UBUNTU_RELEASE = "24.04.4"
ISO_NAME = f"ubuntu-{UBUNTU_RELEASE}-live-server-amd64.iso"
# ISOBUILD_UBUNTU_MIRROR: the directories holding the ISO, SHA256SUMS and SHA256SUMS.gpg,
# space-separated, tried in order (default: Canonical's current, then its old releases).
DEFAULT_MIRRORS = (f"https://releases.ubuntu.com/{UBUNTU_RELEASE}/",
                   f"https://old-releases.ubuntu.com/releases/{UBUNTU_RELEASE}/")
# ISOBUILD_UBUNTU_SERIES_URL: the page naming the current 24.04 point release.
DEFAULT_SERIES_URL = "https://releases.ubuntu.com/noble/"
# ISOBUILD_CACHE_DIR: where downloads are kept (default: ~/.cache/alga-isobuild).
DEFAULT_CACHE = Path.home() / ".cache" / "alga-isobuild"
# ISOBUILD_CA_BUNDLE: CA file to trust for the mirror (default: the system's).
SUMS, SIGNATURE = "SHA256SUMS", "SHA256SUMS.gpg"
CHUNK = 4 << 20
TIMEOUT = 60
SMALL_FILE_LIMIT = 1 << 20  # SHA256SUMS, its signature and the series page are a few KiB
MAX_ISO_BYTES = 8 << 30  # a server streaming without end must not fill the disk
ATTEMPTS = 3  # tries of the ISO download in one run, each resuming the last
ISO_PATTERN = re.compile(r"ubuntu-(24\.04(?:\.\d+)?)-live-server-amd64\.iso")


@dataclass(frozen=True)
class BaseDownload:
    iso: Path
    sums: Path
    source: str  # where the ISO came from: a URL, or the cache
    signer: gpg.PinnedKey


class _Interrupted(Exception):
    """The ISO's transfer stopped early: the partial file is kept for the next attempt."""


def mirror_urls() -> list[str]:
    urls = os.environ.get("ISOBUILD_UBUNTU_MIRROR", " ".join(DEFAULT_MIRRORS)).split()
    return [url if url.endswith("/") else url + "/" for url in urls]


def cache_dir() -> Path:
    return Path(os.environ.get("ISOBUILD_CACHE_DIR", DEFAULT_CACHE))


def _get(session: requests.Session, url: str, **kwargs) -> requests.Response:
    # Per request: requests lets REQUESTS_CA_BUNDLE override a session-wide setting.
    verify = os.environ.get("ISOBUILD_CA_BUNDLE", True)
    try:
        return session.get(url, stream=True, timeout=TIMEOUT, verify=verify, **kwargs)
    except requests.RequestException as exc:
        raise IsoBuildError(f"download of {url} failed: {exc}",
                            "check the network or proxy, or set ISOBUILD_UBUNTU_MIRROR, or "
                            "pass --base-iso with an ISO you downloaded") from exc


def fetch_base_iso(progress: Progress) -> BaseDownload:
    """The cached, verified ISO and its signed SHA256SUMS, downloading what is missing."""
    key = gpg.pinned_key()
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    location = _fetch_signed_sums(session, directory, progress)
    sums = directory / SUMS
    gpg.verify_signature(sums, directory / SIGNATURE, key)
    expected = checksums.expected_sha256(sums, ISO_NAME)
    iso = directory / ISO_NAME
    if iso.is_file():
        progress.step(f"Checking cached {ISO_NAME}")
        if checksums.sha256_file(iso, progress.bytes) == expected:
            return BaseDownload(iso, sums, f"the cache ({iso})", key)
    _download_iso(session, location + ISO_NAME, iso, expected, progress)
    return BaseDownload(iso, sums, location + ISO_NAME, key)


def _fetch_signed_sums(session: requests.Session, directory: Path, progress: Progress) -> str:
    """The first location that has SHA256SUMS, with SHA256SUMS.gpg from the same place."""
    missing = []
    for location in mirror_urls():
        progress.step(f"Fetching {location}{SUMS}")
        if not _fetch_small(session, location + SUMS, directory / SUMS):
            missing.append(location)
            continue
        if not _fetch_small(session, location + SIGNATURE, directory / SIGNATURE):
            raise IsoBuildError(f"{location} has {SUMS} but no {SIGNATURE}: nothing proves "
                                f"{SUMS} is Canonical's",
                                "use a mirror that publishes the signature with the checksums "
                                "(releases.ubuntu.com does), or set ISOBUILD_UBUNTU_MIRROR")
        return location
    raise IsoBuildError(f"Ubuntu {UBUNTU_RELEASE} is not at {' nor at '.join(missing)} "
                        f"(404 for {SUMS})",
                        "run `isobuild check-base` to see the current point release and bump "
                        "the pin, set ISOBUILD_UBUNTU_MIRROR to a mirror that keeps "
                        f"{UBUNTU_RELEASE}, or pass --base-iso")


def _fetch_small(session: requests.Session, url: str, target: Path) -> bool:
    """Save a small file from `url` to `target`; False when the server says 404."""
    with _get(session, url) as response:
        if response.status_code == 404:
            return False
        _check_status(response, url)
        body = response.raw.read(SMALL_FILE_LIMIT + 1, decode_content=True)
    if len(body) > SMALL_FILE_LIMIT:
        raise IsoBuildError(f"{url} is larger than {SMALL_FILE_LIMIT >> 10} KiB",
                            "that is not Ubuntu's file: set ISOBUILD_UBUNTU_MIRROR to a real "
                            "mirror")
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(body)
    os.replace(partial, target)
    return True


def _check_status(response: requests.Response, url: str) -> None:
    if response.status_code >= 400:
        raise IsoBuildError(f"download of {url} failed: HTTP {response.status_code}",
                            "check the mirror (ISOBUILD_UBUNTU_MIRROR) or the proxy, or pass "
                            "--base-iso with an ISO you downloaded")


class _PartialIso:
    """`<iso>.part` and, beside it, what it is a part of (the expected sha256 and the
    server's validator), so a later run resumes it only for the same file."""

    def __init__(self, target: Path, expected: str, progress: Progress):
        self.path = target.with_name(target.name + ".part")
        self.meta = target.with_name(target.name + ".part.json")
        self.expected = expected
        self.validator = ""
        self.digest = hashlib.sha256()
        self.size = 0
        if self._resumable():
            progress.step(f"Checking the partial download of {target.name}")
            self.size = self.path.stat().st_size
            with open(self.path, "rb") as fp:
                while chunk := fp.read(CHUNK):
                    self.digest.update(chunk)
        else:
            self.restart("")

    def _resumable(self) -> bool:
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(meta, dict) or meta.get("sha256") != self.expected:
            return False
        self.validator = str(meta.get("validator", ""))
        return self.path.is_file()

    def restart(self, validator: str) -> None:
        self.validator, self.digest, self.size = validator, hashlib.sha256(), 0
        self.path.write_bytes(b"")
        self.meta.write_text(json.dumps({"sha256": self.expected, "validator": validator}))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


def _download_iso(session: requests.Session, url: str, target: Path, expected: str,
                  progress: Progress) -> None:
    partial = _PartialIso(target, expected, progress)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _transfer(session, url, partial, progress)
            break
        except _Interrupted as exc:
            if attempt == ATTEMPTS:
                raise IsoBuildError(
                    f"download of {url} was interrupted {ATTEMPTS} times ({exc}); "
                    f"{partial.size >> 20} MiB are kept in {partial.path}",
                    "run the build again: it resumes from there") from exc
            progress.note(f"{url}: {exc}; resuming at {partial.size >> 20} MiB")
        except IsoBuildError:
            if not partial.size:  # nothing worth resuming: leave the cache as it was
                partial.discard()
            raise
    actual = partial.digest.hexdigest()
    if actual != expected:
        partial.discard()
        raise IsoBuildError(f"downloaded {target.name} has sha256 {actual}, SHA256SUMS says "
                            f"{expected}",
                            "the mirror served a corrupt or different image: retry, or use "
                            "another ISOBUILD_UBUNTU_MIRROR")
    os.replace(partial.path, target)
    partial.meta.unlink()


def _transfer(session: requests.Session, url: str, partial: _PartialIso,
              progress: Progress) -> None:
    """Append the rest of the ISO to the partial file, or start over when the server
    sends the whole file (it ignores Range, or If-Range says the file changed)."""
    headers = {}
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
        if partial.validator:
            headers["If-Range"] = partial.validator
    progress.step(f"Downloading {url}")
    with _get(session, url, headers=headers) as response:
        if response.status_code == 416 or (response.status_code == 206 and
                                           _range_start(response) != partial.size):
            offset = partial.size
            partial.restart("")
            raise _Interrupted(f"the server cannot send the rest from byte {offset}")
        _check_status(response, url)
        length = int(response.headers.get("Content-Length", 0))
        if response.status_code == 206:
            total = partial.size + length if length else 0
            progress.note(f"Resuming {url} at {partial.size >> 20} MiB")
        else:
            if partial.size:
                progress.note(f"{url}: the server sent the whole file; starting over")
            partial.restart(_validator(response))
            total = length
        _stream(response, partial, total, progress)


def _validator(response: requests.Response) -> str:
    """What If-Range can name: a strong ETag, else the modification date (RFC 9110 13.1.5)."""
    etag = response.headers.get("ETag", "")
    return etag if etag and not etag.startswith("W/") else \
        response.headers.get("Last-Modified", "")


def _range_start(response: requests.Response) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)",
                         response.headers.get("Content-Range", "").strip())
    return int(match[1]) if match else None


def _stream(response: requests.Response, partial: _PartialIso, total: int,
            progress: Progress) -> None:
    try:
        with open(partial.path, "ab") as fp:
            for chunk in response.iter_content(CHUNK):
                fp.write(chunk)
                partial.digest.update(chunk)
                partial.size += len(chunk)
                if partial.size > MAX_ISO_BYTES:
                    partial.discard()
                    raise IsoBuildError(f"{response.url} sent more than {MAX_ISO_BYTES >> 30} "
                                        "GiB", "that is not an Ubuntu ISO: set "
                                        "ISOBUILD_UBUNTU_MIRROR to a real mirror")
                progress.transfer(partial.size, total or partial.size)
    except requests.RequestException as exc:
        raise _Interrupted(f"the connection broke: {exc}") from exc
    if total and partial.size < total:
        # urllib3 1.26 ends a body cut short by the server without an error.
        raise _Interrupted(f"the server closed the connection at {partial.size} of {total} "
                           "bytes")


def newest_point_release(session: requests.Session | None = None) -> tuple[str, str]:
    """(the newest 24.04 point release the series page names, that page's URL)."""
    url = os.environ.get("ISOBUILD_UBUNTU_SERIES_URL", DEFAULT_SERIES_URL)
    with _get(session or requests.Session(), url) as response:
        _check_status(response, url)
        page = response.raw.read(SMALL_FILE_LIMIT, decode_content=True).decode("utf-8",
                                                                              "replace")
    releases = set(ISO_PATTERN.findall(page))
    if not releases:
        raise IsoBuildError(f"{url} names no ubuntu-24.04.x-live-server-amd64.iso",
                            "open the page in a browser; if Ubuntu changed its layout, set "
                            "ISOBUILD_UBUNTU_SERIES_URL to the page that lists the ISOs")
    return max(releases, key=release_key), url


def release_key(release: str) -> tuple[int, ...]:
    """24.04 < 24.04.1 < 24.04.10, as numbers."""
    return tuple(int(part) for part in release.split("."))
