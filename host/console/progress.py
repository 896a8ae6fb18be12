"""Following setup from the console: the progress text (host/setup/progress.py), redrawn
as the install state changes, until the run the console started settles."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.core import spool, state
from host.setup import credentials, recovery, timing
from host.setup.progress import describe, settled

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Progress:
    lines: list[str]
    settled: bool  # the run for the request has ended, or the appliance refused the request
    succeeded: bool


def poll(root: Path | None, request_id: str | None) -> Progress:
    """The progress now of the run for `request_id` (the id setup was submitted under, or
    None for the current run)."""
    refusal = state.read(state.SETUP_REFUSAL, root)
    if request_id is not None and refusal and refusal["request_id"] == request_id:
        # Taken off the spool and refused (the busy rule, checked again at acceptance): no
        # run will ever carry this id.
        return Progress([f"Setup was not started: {refusal['reason']}."], True, False)
    install = recovery.view(state.read(state.INSTALL_STATE, root), root)  # a dead run settles
    ours = request_id is None or (bool(install) and install.get("request_id") == request_id)
    shown = install if ours else None
    times = timing.current(shown, root) if shown else None
    lines = describe(shown, state.read(state.PREFLIGHT_REPORT, root),
                     credentials.outcome(shown, root), times)
    waiting = spool.waiting(spool.SETUP, root)
    if waiting and waiting["not_picked_up"]:
        lines += ["", waiting["message"]]
    done = ours and settled(install)
    return Progress(lines, done, done and install["status"] == "succeeded")


def follow(root: Path | None, request_id: str | None, show: Callable[[list[str]], None],
           stop: Callable[[], bool] = lambda: False) -> Progress:
    """Show progress until the run for `request_id` settles (or `stop` says so)."""
    shown = None
    while True:
        now = poll(root, request_id)
        if now.lines != shown:
            show(now.lines)
            shown = now.lines
        if now.settled or stop():
            return now
        time.sleep(POLL_SECONDS)
