"""Requests from the unprivileged web service to systemd, through the spool directory.

The web service validates a request and writes it here atomically; a .path unit sees it
and starts a root oneshot, which validates it again (it trusts nothing from the web
process), acts, and removes it. Data moves one way: web → spool → unit → state.
"""

import json
import os
import tempfile
from pathlib import Path

from host.core import paths, state

# What an update request (paths.UPDATE_REQUEST) must be: checked by the web service before
# spooling it and again by the updater that takes it.
UPDATE_SCHEMA = "update-request.schema.json"


class AlreadyPending(Exception):
    """A request of this kind is already waiting for systemd."""


def spool_file(name: str, root: Path | None = None) -> Path:
    return state.host_root(root) / paths.SPOOL_DIR.lstrip("/") / name


def submit(name: str, payload: dict, root: Path | None = None) -> Path:
    """Spool `payload` complete and durable, unless a request is already waiting: linking
    the finished temp file into place fails if one exists, so of concurrent submissions
    exactly one wins."""
    path = spool_file(name, root)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as fp:
            os.fchmod(fp.fileno(), 0o640)
            fp.write((json.dumps(payload, sort_keys=True) + "\n").encode())
            fp.flush()
            os.fsync(fp.fileno())
        try:
            os.link(temp, path)
        except FileExistsError as exc:
            raise AlreadyPending(name) from exc
        state.fsync_directory(path.parent)
    finally:
        os.unlink(temp)
    return path


def take(name: str, root: Path | None = None) -> dict | None:
    """The pending request (removed from the spool), or None if there is none."""
    path = spool_file(name, root)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        payload = {"__malformed__": True}
    path.unlink()
    return payload if isinstance(payload, dict) else {"__malformed__": True}
