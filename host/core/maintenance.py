"""The maintenance record: what is installed (OS, kernel, k3s, Flux, app), the last
install or update, and the history of the appliance software's self-updates. The release
phase and app updates write it the same way; self-updates add to their history."""

import platform
from pathlib import Path

from host.core import paths, state

SELF_UPDATES_KEPT = 50  # the schema's bound


def record(root: Path | None, previous: dict | None, selection: dict, event: str,
           k3s_version: str | None, flux_version: str | None) -> dict:
    """What is installed and the last maintenance event (`event`: install or update)."""
    now = state.timestamp()
    installed = previous["last_install"] if previous else None
    return {
        "os": _os(root),
        "kernel": _kernel(root),
        "k3s_version": k3s_version,
        "flux_version": flux_version,
        "app": {"channel": selection["channel"], "release_version": selection["release_version"]},
        "last_install": now if event == "install" and not installed else installed,
        "last_update": now if installed else None,
        "last_event": {"kind": event, "at": now, "to_release": selection["release_version"],
                       "from_release": previous["app"]["release_version"] if previous else None},
        "self_updates": previous["self_updates"] if previous else [],
    }


def add_self_update(root: Path | None, entry: dict) -> dict:
    """Put a self-update check or apply first in the record's history (the newest
    SELF_UPDATES_KEPT kept), starting a record if setup has not written one yet."""
    document = state.read(state.MAINTENANCE, root) or _before_install(root)
    document["self_updates"] = [entry, *document["self_updates"]][:SELF_UPDATES_KEPT]
    state.write(state.MAINTENANCE, document, root)
    return document


def _before_install(root: Path | None) -> dict:
    return {"os": _os(root), "kernel": _kernel(root), "k3s_version": None, "flux_version": None,
            "app": {"channel": None, "release_version": None}, "last_install": None,
            "last_update": None, "last_event": None, "self_updates": []}


def _os(root: Path | None) -> dict:
    os_release = dict(line.split("=", 1) for line in paths.on_host(
        paths.OS_RELEASE, root).read_text().splitlines() if "=" in line)
    return {"id": os_release.get("ID", platform.system()).strip('"'),
            "version_id": os_release.get("VERSION_ID", "unknown").strip('"')}


def _kernel(root: Path | None) -> str:
    # The host's own record under a root prefix (tests, a mounted system), else this kernel.
    osrelease = paths.on_host(paths.KERNEL_RELEASE, root)
    return osrelease.read_text().strip() if osrelease.is_file() else platform.release()
