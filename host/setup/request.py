"""Starting setup: the one way the web API and the console start it, and the oneshot that
accepts it.

`submit` validates the answers with host/setup/inputs.py, refuses while setup or an update
runs or a request of either waits (the one busy rule, host/core/busy.py) and once setup has
completed (changes after the install are updates), and spools the request for systemd
(alga-appliance-setup-request.path); `submit_resume` spools a resume of a stopped run
instead, with the answers already recorded. `accept` (what that unit runs) records a run
whose owner is gone as interrupted, validates the answers again, asks the busy rule again
under the setup lock, records the answers and the request's id in the install state, and
starts the same unit chain whichever way the answers came in (or a resume was asked for).
A request refused there is gone from the spool, and the reason is recorded
(`refused`, below) where the web UI and the console show it.
"""

from dataclasses import dataclass
from pathlib import Path

from host.core import busy, hostcmd, runlock, spool, state
from host.net import addresses
from host.setup import chain, credentials, recovery
from host.setup.inputs import InputErrors, parse_setup_inputs, spooled_answers

SETUP_TARGET = "alga-appliance-setup.target"
COMPLETED = ("setup has already completed; changes after the install go through updates "
             "(the Updates page, or sudo alga-appliance update --channel CHANNEL)")


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
    """Spool `answers` for systemd. Raises InputErrors or SetupBusy. The admin password is
    hashed before anything is written: the request carries its hash, not the password."""
    stored = state.read(state.SETUP_INPUTS, root)
    inputs = parse_setup_inputs(answers, node_ip, stored,
                                admin_user=credentials.admin_user(root))
    refused = why_busy(state.read(state.INSTALL_STATE, root), root)
    if refused:
        raise SetupBusy(refused)
    submitted = state.timestamp()
    request = {"answers": spooled_answers(answers), "submitted_at": submitted}
    if answers.get("admin_password"):
        request["admin_password_hash"] = inputs["admin"]["password_hash"]
    return Submitted(inputs, submitted, _spool(request, root))


def submit_resume(root: Path | None = None) -> str:
    """Spool a resume of the stopped run with the recorded inputs; its request id. Raises
    SetupBusy."""
    refused = why_not_resumable(state.read(state.INSTALL_STATE, root), root)
    if refused:
        raise SetupBusy(refused)
    return _spool({"resume": True, "submitted_at": state.timestamp()}, root)


def _spool(request: dict, root: Path | None) -> str:
    try:
        return spool.submit(spool.SETUP, request, root)
    except spool.AlreadyPending as exc:
        raise SetupBusy(str(exc)) from exc


def why_busy(install: dict | None, root: Path | None = None) -> str | None:
    """Why a new setup cannot start now, or None when it can: the busy rule, then a
    completed setup. A run whose owner is gone is not busy: the oneshot that takes the
    request records it as interrupted first."""
    return busy.busy(root) or _completed(install)


def why_not_resumable(install: dict | None, root: Path | None = None) -> str | None:
    """Why the last run cannot be resumed now, or None when it can."""
    return why_busy(install, root) or _nothing_to_resume(install, root)


def _nothing_to_resume(install: dict | None, root: Path | None) -> str | None:
    viewed = recovery.view(install, root)
    if viewed is None or viewed["status"] != "failed" or \
            state.read(state.SETUP_INPUTS, root) is None:
        return "no setup has stopped that could be resumed; start setup with your answers"
    return None


def accept(root: Path | None = None) -> str | None:
    """Take the waiting request: record its inputs (none for a resume) and id, start the
    chain; the id, or None when no request waits. Raises NotAccepted, with the reason
    recorded (`refused`): the request is gone from the spool either way."""
    try:
        request = spool.take(spool.SETUP, root)
    except spool.Malformed as exc:
        raise refused(exc.request_id, str(exc), root) from exc
    if request is None:
        return None
    try:
        _take_up(request, root)
    except NotAccepted as exc:
        raise refused(request["id"], str(exc), root) from exc
    return request["id"]


def refused(request_id: str | None, reason: str, root: Path | None = None) -> NotAccepted:
    """Record why request `request_id` was refused, where the web UI and the console look
    for their own request (the install state belongs to whoever holds the setup lock);
    the error to raise."""
    state.write(state.SETUP_REFUSAL, {"request_id": request_id, "refused_at": state.timestamp(),
                                      "reason": reason}, root)
    return NotAccepted(reason)


def _take_up(request: dict, root: Path | None) -> None:
    inputs = None
    if not request.get("resume"):
        try:
            inputs = parse_setup_inputs(request["answers"], addresses.node_ip(),
                                        state.read(state.SETUP_INPUTS, root),
                                        password_hash=request.get("admin_password_hash"),
                                        admin_user=credentials.admin_user(root))
        except InputErrors as exc:
            raise NotAccepted(f"the setup request was rejected: {exc}") from exc
    recovery.recover(root)  # a run whose owner is gone is recorded as interrupted first
    try:
        with runlock.held(root):
            install = state.read(state.INSTALL_STATE, root)
            # Under the lock only what runs counts: the lock decides between waiting requests.
            refusal = busy.running(root, holding_lock=True) or _completed(install) or (
                _nothing_to_resume(install, root) if inputs is None else None)
            if refusal:
                raise NotAccepted(f"the setup request was not taken up: {refusal}")
            if inputs is not None:
                state.write(state.SETUP_INPUTS, inputs, root)
            state.write(state.INSTALL_STATE, _queued(install, request["id"]), root)
    except runlock.Busy as exc:
        raise NotAccepted("the setup request was not taken up: "
                          f"{busy.lock_holder(root, exc)}") from exc
    _start_chain()


def _completed(install: dict | None) -> str | None:
    """Setup runs once: after it has completed, changes are updates."""
    return COMPLETED if install and install["status"] == "succeeded" else None


def resume_after_reboot(root: Path | None = None) -> recovery.Interruption | None:
    """What the boot unit runs before the web service answers: record an interrupted run,
    and resume it when a reboot interrupted it; the interruption, or None."""
    found = recovery.recover(root)
    if found is None or not found.rebooted:
        return found
    try:
        with runlock.held(root):
            install = state.read(state.INSTALL_STATE, root)
            if install["status"] != "failed":
                return found  # something else took it up meanwhile
            state.write(state.INSTALL_STATE, _queued(install, install.get("request_id")), root)
    except runlock.Busy:
        return found
    _start_chain()
    return found


def _start_chain() -> None:
    try:
        hostcmd.run(["systemctl", "start", "--no-block", SETUP_TARGET])
    except hostcmd.CommandFailed as exc:
        raise NotAccepted(f"could not start {SETUP_TARGET}: {exc}") from exc


def _queued(install: dict | None, request_id: str | None) -> dict:
    """The install state for a run about to start for `request_id`, owned by this process
    until the first phase takes over: what failed before runs again; what succeeded keeps
    its record (a re-run skips it if its inputs are unchanged)."""
    pending = {"state": "pending", "started_at": None, "finished_at": None,
               "last_action": None, "failure": None}
    phases = {name: dict(pending) for name in chain.NAMES}
    for name, record in (install or {}).get("phases", {}).items():
        if record["state"] in ("succeeded", "skipped"):
            phases[name] = record
    queued = {"status": "pending", "current_phase": None, "updated_at": state.timestamp(),
              "request_id": request_id, "phases": phases, "owner": runlock.owner()}
    for kept in ("completed_at", "durations"):  # the durations: what progress estimates from
        if install and kept in install:
            queued[kept] = install[kept]
    return queued
