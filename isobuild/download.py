"""Fetch the pinned official Ubuntu ISO and SHA256SUMS into a cache, verified.

Like k3s's install.sh: the release is pinned here, every knob is an environment
variable with a documented default, and nothing is used before its checksum matches.
"""

import os
from pathlib import Path

import requests

from isobuild import checksums
from isobuild.errors import IsoBuildError
from isobuild.progress import Progress

UBUNTU_RELEASE = "24.04.4"
ISO_NAME = f"ubuntu-{UBUNTU_RELEASE}-live-server-amd64.iso"
# ISOBUILD_UBUNTU_MIRROR: base URL holding the ISO and SHA256SUMS (default: Canonical's).
DEFAULT_MIRROR = f"https://releases.ubuntu.com/{UBUNTU_RELEASE}/"
# ISOBUILD_CACHE_DIR: where downloads are kept (default: ~/.cache/alga-isobuild).
DEFAULT_CACHE = Path.home() / ".cache" / "alga-isobuild"
# ISOBUILD_CA_BUNDLE: CA file to trust for the mirror (default: the system's).
CHUNK = 4 << 20
TIMEOUT = 60


def mirror_url() -> str:
    url = os.environ.get("ISOBUILD_UBUNTU_MIRROR", DEFAULT_MIRROR)
    return url if url.endswith("/") else url + "/"


def cache_dir() -> Path:
    return Path(os.environ.get("ISOBUILD_CACHE_DIR", DEFAULT_CACHE))


def fetch_base_iso(progress: Progress) -> tuple[Path, Path]:
    """The cached, verified (ISO, SHA256SUMS), downloading what is missing or stale."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    sums = directory / "SHA256SUMS"
    _download(session, mirror_url() + "SHA256SUMS", sums, progress)
    expected = checksums.expected_sha256(sums, ISO_NAME)
    iso = directory / ISO_NAME
    if iso.is_file():
        progress.step(f"Checking cached {ISO_NAME}")
        if checksums.sha256_file(iso, progress.bytes) == expected:
            return iso, sums
    _download(session, mirror_url() + ISO_NAME, iso, progress, expected)
    return iso, sums


def _download(session: requests.Session, url: str, target: Path, progress: Progress,
              sha256: str | None = None) -> None:
    """Download `url` to `target`; with `sha256`, only a matching file is kept."""
    partial = target.with_name(target.name + ".part")
    progress.step(f"Downloading {url}")
    try:
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session-wide setting.
        verify = os.environ.get("ISOBUILD_CA_BUNDLE", True)
        with session.get(url, stream=True, timeout=TIMEOUT, verify=verify) as response:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0))
            done = 0
            with open(partial, "wb") as fp:
                for chunk in response.iter_content(CHUNK):
                    fp.write(chunk)
                    done += len(chunk)
                    progress.bytes(done, total or done)
        if sha256 is not None:
            progress.step(f"Verifying {target.name}")
            actual = checksums.sha256_file(partial, progress.bytes)
            if actual != sha256:
                raise IsoBuildError(
                    f"downloaded {target.name} has sha256 {actual}, SHA256SUMS says {sha256}",
                    "the mirror served a corrupt or different image: retry, or use another "
                    "ISOBUILD_UBUNTU_MIRROR")
        os.replace(partial, target)
    except requests.RequestException as exc:
        raise IsoBuildError(f"download of {url} failed: {exc}",
                            "check the network or proxy, or set ISOBUILD_UBUNTU_MIRROR, or pass "
                            "--base-iso with an ISO you downloaded") from exc
    finally:
        partial.unlink(missing_ok=True)
