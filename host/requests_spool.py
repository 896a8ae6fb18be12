"""Requests from the unprivileged web service to systemd, through the spool directory.

The web service validates a request and writes it here atomically; a .path unit sees it
and starts a root oneshot, which validates it again (it trusts nothing from the web
process), acts, and removes it. Data moves one way: web → spool → unit → state.
"""

import json
from pathlib import Path

from host import paths, state


def spool_file(name: str, root: Path | None = None) -> Path:
    return state.host_root(root) / paths.SPOOL_DIR.lstrip("/") / name


def submit(name: str, payload: dict, root: Path | None = None) -> Path:
    path = spool_file(name, root)
    state.write_atomically(path, (json.dumps(payload, sort_keys=True) + "\n").encode(), 0o640)
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
