"""Starting setup: the one way the web API and the console start it, and the oneshot that
accepts it.

`submit` validates the answers with host/setup/inputs.py, refuses while setup runs or while
a request already waits, and spools the request for systemd
(alga-appliance-setup-request.path). `accept` (what that unit runs) validates the answers
again, records them and the request's id in the install state, and starts the same unit
chain whichever way the answers came in.
"""

from dataclasses import dataclass
from pathlib import Path

from host.core import hostcmd, runlock, spool, state
from host.net import addresses
from host.setup import chain
from host.setup.inputs import InputErrors, parse_setup_inputs

SETUP_TARGET = "alga-appliance-setup.target"


class SetupBusy(Exception):
    """Setup cannot start now; the message says why and what to do."""


class NotAccepted(Exception):
    """The waiting setup request could not be taken up; the message says why."""


@dataclass(frozen=True)
class Submitted:
    inputs: dict  # the normalised setup inputs the answers become, the proxy password too
    submitted_at: str
    request_id: str  # the install state carries it once the request is taken up


def submit(answers: dict, node_ip: str, root: Path | None = None) -> Submitted:
    """Spool `answers` for systemd. Raises InputErrors or SetupBusy."""
    inputs = parse_setup_inputs(answers, node_ip, state.read(state.SETUP_INPUTS, root))
    busy = why_busy(state.read(state.INSTALL_STATE, root), root)
    if busy:
        raise SetupBusy(busy)
    submitted = state.timestamp()
    try:
        request_id = spool.submit(spool.SETUP, {"answers": answers, "submitted_at": submitted},
                                  root)
    except spool.AlreadyPending as exc:
        raise SetupBusy(str(exc)) from exc
    return Submitted(inputs, submitted, request_id)


def why_busy(install: dict | None, root: Path | None = None) -> str | None:
    """Why a new setup cannot start now, or None when it can."""
    if install and install["status"] == "running":
        return f"setup is already running ({install['current_phase']})"
    if spool.pending(spool.SETUP, root):
        return "a setup request is already waiting to start"
    return None


def accept(root: Path | None = None) -> str | None:
    """Take the waiting request: record its inputs and id, start the chain; the id, or None
    when no request waits. Raises NotAccepted."""
    try:
        request = spool.take(spool.SETUP, root)
    except spool.Malformed as exc:
        raise NotAccepted(str(exc)) from exc
    if request is None:
        return None
    try:
        inputs = parse_setup_inputs(request["answers"], addresses.node_ip(),
                                    state.read(state.SETUP_INPUTS, root))
    except InputErrors as exc:
        raise NotAccepted(f"the setup request was rejected: {exc}") from exc
    try:
        with runlock.held(root):
            state.write(state.SETUP_INPUTS, inputs, root)
            state.write(state.INSTALL_STATE, _queued(state.read(state.INSTALL_STATE, root),
                                                     request["id"]), root)
    except runlock.Busy as exc:
        raise NotAccepted(f"the setup request was not taken up: {exc}") from exc
    try:
        hostcmd.run(["systemctl", "start", "--no-block", SETUP_TARGET])
    except hostcmd.CommandFailed as exc:
        raise NotAccepted(f"could not start {SETUP_TARGET}: {exc}") from exc
    return request["id"]


def _queued(install: dict | None, request_id: str) -> dict:
    """The install state for a run about to start for `request_id`: what failed before runs
    again; what succeeded keeps its record (a re-run skips it if its inputs are unchanged)."""
    pending = {"state": "pending", "started_at": None, "finished_at": None,
               "last_action": None, "failure": None}
    phases = {name: dict(pending) for name in chain.NAMES}
    for name, record in (install or {}).get("phases", {}).items():
        if record["state"] in ("succeeded", "skipped"):
            phases[name] = record
    queued = {"status": "pending", "current_phase": None, "updated_at": state.timestamp(),
              "request_id": request_id, "phases": phases}
    if install and "completed_at" in install:
        queued["completed_at"] = install["completed_at"]
    return queued
