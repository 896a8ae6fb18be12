"""Following setup from the console: the progress text (host/setup/progress.py), redrawn
as the install state changes, until the run the console started settles."""

import time
from collections.abc import Callable
from pathlib import Path

from host.core import state
from host.setup import recovery
from host.setup.progress import describe, settled

POLL_SECONDS = 1.0


def poll(root: Path | None, request_id: str | None) -> tuple[list[str], dict | None]:
    """The progress lines now, and the install state once the run for `request_id` (the
    id setup was submitted under, or None for the current run) has settled, else None."""
    install = recovery.view(state.read(state.INSTALL_STATE, root), root)  # a dead run settles
    ours = request_id is None or (bool(install) and install.get("request_id") == request_id)
    lines = describe(install if ours else None, state.read(state.PREFLIGHT_REPORT, root))
    return lines, install if ours and settled(install) else None


def follow(root: Path | None, request_id: str | None, show: Callable[[list[str]], None],
           stop: Callable[[], bool] = lambda: False) -> dict | None:
    """Show progress until the run for `request_id` settles (or `stop` says so); returns
    its install state."""
    shown = None
    while True:
        lines, finished = poll(root, request_id)
        if lines != shown:
            show(lines)
            shown = lines
        if finished or stop():
            return finished
        time.sleep(POLL_SECONDS)
