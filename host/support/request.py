"""Support bundles asked for in the web UI.

The web service spools a request (`submit`); alga-appliance-support-bundle-request.path
starts a root oneshot that runs `accept-support-bundle` (`accept`): it makes the bundle with
host/support/bundle.py into paths.WEB_BUNDLE_DIR, writing its progress to
support-bundle-status.json as it goes (with the request's id), and hands the archive (still
0600) to the service user, which is how the web service, and only it, can offer it for
download. The newest KEEP are kept.
"""

import datetime
import os
import pwd
import re
from pathlib import Path

from host.core import paths, spool, state
from host.core.operation import Operation

KEEP = 5
ARCHIVE_NAME = re.compile(r"^alga-appliance-support-[A-Za-z0-9._-]+\.tar\.gz$")


class Busy(Exception):
    """A bundle is being made or already asked for."""


def submit(root: Path | None = None) -> str:
    """Spool a request; its id. Raises Busy."""
    if running(root):
        raise Busy("a support bundle is being made; wait for it")
    try:
        return spool.submit(spool.SUPPORT_BUNDLE, {"requested_at": state.timestamp()}, root)
    except spool.AlreadyPending as exc:
        raise Busy("a support bundle was already asked for and starts in a moment") from exc


def last_status(root: Path | None = None) -> dict | None:
    """The last web bundle's status; a broken status file reads as none, since the next
    bundle replaces it (and the bundle is how support sees what broke it)."""
    try:
        return state.read(state.SUPPORT_BUNDLE_STATUS, root)
    except state.StateFileInvalid:
        return None


def running(root: Path | None = None) -> bool:
    current = last_status(root)
    return bool(current) and current["state"] == "running"


def bundle_dir(root: Path | None = None) -> Path:
    return paths.on_host(paths.WEB_BUNDLE_DIR, root)


def available(root: Path | None = None) -> list[dict]:
    """The archives the web service can hand out, newest first."""
    directory = bundle_dir(root)
    found = [p for p in directory.iterdir() if ARCHIVE_NAME.match(p.name)
             and os.access(p, os.R_OK)] if directory.is_dir() else []
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [{"name": p.name, "size_bytes": p.stat().st_size,
             "created_at": state.timestamp(datetime.datetime.fromtimestamp(
                 p.stat().st_mtime, datetime.UTC))} for p in found]


def archive(name: str, root: Path | None = None) -> Path | None:
    """The archive called `name`, only if it is one of ours (no other path can match)."""
    if not ARCHIVE_NAME.match(name):
        return None
    path = bundle_dir(root) / name
    return path if path.is_file() and os.access(path, os.R_OK) else None


def accept(root: Path | None = None, owner: str = paths.SERVICE_USER) -> str | None:
    """Make the bundle a waiting request asks for; returns the archive's name (None when
    no request waits). Progress and the outcome go to the status file. Raises
    bundle.BundleError, spool.Malformed."""
    from host.support import bundle  # the collectors: never in the web service
    request = spool.take(spool.SUPPORT_BUNDLE, root)
    if request is None:
        return None
    try:
        state.read(state.SUPPORT_BUNDLE_STATUS, root)
    except state.StateFileInvalid:  # kept for the bundle, which collects it from there
        state.set_aside(state.SUPPORT_BUNDLE_STATUS, root)
    status = {"state": "running", "request_id": request["id"],
              "requested_at": request["requested_at"], "started_at": state.timestamp(),
              "finished_at": None, "step": "starting", "done": 0, "total": 0,
              "archive": None, "size_bytes": None, "error": None}
    operation = Operation(status, "step",
                          lambda: state.write(state.SUPPORT_BUNDLE_STATUS, status, root), None)
    operation.save()
    directory = bundle_dir(root)
    directory.mkdir(exist_ok=True)
    # Group alga-appliance from the setgid state directory; the unit's umask is 0077, so
    # open it to the group here (the web service lists it). No setgid: the unit may not.
    directory.chmod(0o750)
    try:
        path = bundle.create(root, directory, progress=lambda step, done, total:
                             operation.step(step, done=done, total=total))
    except bundle.BundleError as exc:
        status.update(state="failed", finished_at=state.timestamp(), error=str(exc))
        operation.save()
        raise
    account = pwd.getpwnam(owner)
    os.chown(path, account.pw_uid, account.pw_gid)  # stays 0600: the web service's alone
    bundle.prune(directory, KEEP)
    status.update(state="succeeded", finished_at=state.timestamp(), step="done",
                  archive=path.name, size_bytes=path.stat().st_size)
    operation.save()
    return path.name
