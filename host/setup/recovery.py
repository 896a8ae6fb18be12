"""Interrupted setup: a run the install state shows in flight whose owner process is gone
(a reboot, a phase stopped by its start timeout, an out-of-memory kill) would otherwise
stay "running" for good. Here it is found and recorded as a failure of the phase it
stopped in, which says so; Resume (host/setup/request.py) continues from that phase.

`find` only reads, so the unprivileged web service uses it (through `view`) to show and
to allow what a root writer will record: the boot unit before the web service starts,
the status collector, and the oneshot that takes a setup request, all through `recover`.
"""

import copy
import datetime
from dataclasses import dataclass
from pathlib import Path

from host.core import busy, failures, paths, runlock, state
from host.core.operation import append_log
from host.setup import chain

LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Interruption:
    phase: str  # the phase that was running, or the next one that never started
    at: str  # the last time the run recorded progress
    rebooted: bool  # the owner ran in an earlier boot


def find(install: dict | None, now: datetime.datetime | None = None) -> Interruption | None:
    """The interruption of the run `install` shows, or None when it is settled or its owner
    may still be at work (busy.under_way: the same rule every busy answer uses)."""
    if not busy.in_flight(install) or busy.under_way(install, now):
        return None
    owner = install.get("owner")
    rebooted = owner is not None and owner["boot_id"] != runlock.boot_id()
    phases = chain.ordered(install["phases"])
    running = [name for name, record in phases if record["state"] == "running"]
    unfinished = [name for name, record in phases
                  if record["state"] not in ("succeeded", "skipped")]
    phase = (running or unfinished or [chain.NAMES[-1]])[0]
    return Interruption(phase, install["updated_at"], rebooted)


def mark(install: dict, found: Interruption, root: Path | None = None) -> dict:
    """`install` with its run recorded as interrupted in `found.phase` (a copy)."""
    marked = copy.deepcopy(install)
    marked.pop("owner", None)
    record = marked["phases"].setdefault(found.phase, {
        "state": "pending", "started_at": None, "finished_at": None, "last_action": None,
        "failure": None})
    title = chain.title(found.phase)
    cause = (f"the machine restarted while {title} ran" if found.rebooted else
             f"{title} stopped without recording a result (its process ended: a start "
             "timeout, an out-of-memory kill or a signal)")
    record.update(state="failed", finished_at=state.timestamp(), failure={
        "category": chain.category(found.phase),
        "last_action": record["last_action"] or "starting",
        "log_excerpt": failures.log_excerpt(_log_tail(found.phase, root)),
        "suspected_cause": f"{cause}; its last progress was at {found.at}",
        "next_step": f"resume setup (Resume on the Progress page, or sudo alga-appliance "
                     f"console): it continues from {title}, and the steps that finished are "
                     "skipped",
        "support_command": failures.SUPPORT_COMMAND,
        "interrupted": {"phase": found.phase, "at": found.at}})
    marked.update(status="failed", current_phase=found.phase, updated_at=state.timestamp())
    return marked


def _log_tail(phase: str, root: Path | None) -> list[str]:
    try:
        with open(paths.on_host(paths.LOG_DIR, root) / f"{phase}.log", "rb") as fp:
            fp.seek(max(0, fp.seek(0, 2) - LOG_TAIL_BYTES))
            return fp.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def view(install: dict | None, root: Path | None = None) -> dict | None:
    """`install` as it is to be recorded: an interrupted run marked so (nothing written)."""
    found = find(install)
    return install if found is None else mark(install, found, root)


def recover(root: Path | None = None) -> Interruption | None:
    """Record an interrupted run as such; the interruption recorded, or None."""
    if find(state.read(state.INSTALL_STATE, root)) is None:
        return None  # the lock is only tried when there is something to record
    try:
        with runlock.held(root):
            install = state.read(state.INSTALL_STATE, root)
            found = find(install)
            if found is not None:
                marked = mark(install, found, root)
                state.write(state.INSTALL_STATE, marked, root)
                # The phase's log keeps it, also once a resumed run has replaced the record.
                cause = marked["phases"][found.phase]["failure"]["suspected_cause"]
                append_log(paths.on_host(paths.LOG_DIR, root) / f"{found.phase}.log",
                           f"interrupted: {cause}")
            return found
    except runlock.Busy:
        return None  # a phase or an update runs: it owns the state now
