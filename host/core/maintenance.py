"""The maintenance record: what is installed (OS, kernel, k3s, Flux, app) and the last
install or update. The release phase and app updates write it the same way."""

import platform
from pathlib import Path

from host.core import paths, state


def record(root: Path | None, previous: dict | None, selection: dict, event: str,
           k3s_version: str | None, flux_version: str | None) -> dict:
    """What is installed and the last maintenance event (`event`: install or update)."""
    os_release = dict(line.split("=", 1) for line in paths.on_host(
        paths.OS_RELEASE, root).read_text().splitlines() if "=" in line)
    now = state.timestamp()
    installed = previous["last_install"] if previous else None
    return {
        "os": {"id": os_release.get("ID", platform.system()).strip('"'),
               "version_id": os_release.get("VERSION_ID", "unknown").strip('"')},
        "kernel": _kernel(root),
        "k3s_version": k3s_version,
        "flux_version": flux_version,
        "app": {"channel": selection["channel"], "release_version": selection["release_version"]},
        "last_install": now if event == "install" and not installed else installed,
        "last_update": now if installed else None,
        "last_event": {"kind": event, "at": now, "to_release": selection["release_version"],
                       "from_release": previous["app"]["release_version"] if previous else None},
    }


def _kernel(root: Path | None) -> str:
    # The host's own record under a root prefix (tests, a mounted system), else this kernel.
    osrelease = paths.on_host(paths.KERNEL_RELEASE, root)
    return osrelease.read_text().strip() if osrelease.is_file() else platform.release()
