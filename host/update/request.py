"""Update requests from the web UI: the oneshot that takes one from the spool, validates it
again (nothing from the web process is trusted), asks the busy rule (host/core/busy.py)
again under the setup lock and runs it; the history entry it records carries the request's
id, which is how the Updates page follows its own request, refused ones too. The daily
update check (the update notice's) asks the same busy rule before it runs."""

from pathlib import Path

from host.core import busy, paths, runlock, spool, state
from host.core.failures import SUPPORT_COMMAND
from host.releases import channels
from host.update import history, notice
from host.update.history import REFUSED_CATEGORY


def why_busy(root: Path | None = None) -> str | None:
    """Why an update request would be refused now: the busy rule, then setup not completed
    (the oneshot asks both again under the setup lock)."""
    return busy.busy(root) or _not_installed(root)


def _not_installed(root: Path | None) -> str | None:
    install = state.read(state.INSTALL_STATE, root)
    if install is None or install["status"] != "succeeded":
        return "updates are possible once setup has completed"
    return None


def unreviewed(request: dict, root: Path | None = None) -> dict | None:
    """Why a web apply's confirmation or digest is not honoured, as {"field", "message"}, or
    None. Both stand for a plan the admin reviewed, so both must match the last check the
    appliance itself made and recorded: a successful check of the same channel, and the
    release artifact it found. Nothing the browser says about the plan is taken on trust."""
    confirmed, digest = request.get("confirmed", False), request.get("digest")
    if request["action"] != "apply" or not (confirmed or digest):
        return None
    field = "digest" if digest else "confirmed"
    checks = [entry for entry in history.entries(root) if entry["action"] == "check"]
    last = checks[0] if checks else None
    if last is None or last["channel"] != request["channel"] or \
            last["result"] != "update_available":
        return {"field": field, "message": "is honoured only against the last check the "
                f"appliance made, which must have found an update on {request['channel']}: "
                "check the channel, review the plan, then apply it"}
    reviewed = (last["to"] or {}).get("manifest_digest")
    if digest and digest != reviewed:
        return {"field": "digest", "message": f"is not the release artifact the last check "
                f"found ({reviewed or 'none: the release source is git'}): check again, "
                "review the plan, then apply it"}
    return None


def accept(root: Path | None = None, kubeconfig: str = paths.K3S_KUBECONFIG) -> dict | None:
    """Run the waiting request; the recorded entry, or None when no request waits."""
    # The updater only here: the web service imports this module for why_busy alone.
    from host.update.apply import UpdateBusy, apply
    from host.update.check import ConfirmationRequired, check

    root = paths.host_root(root)
    try:
        request = spool.take(spool.UPDATE, root)
    except spool.Malformed as exc:
        return _refused(root, exc.request_id, "apply", None, str(exc), "request it again "
                        "from the Updates page; if this repeats, send the support bundle "
                        f"({SUPPORT_COMMAND})")
    if request is None:
        return None
    history.mark_interrupted(root)
    refused = _refusal(root)
    if refused:
        return _refused(root, request["id"], request["action"], request["channel"],
                        f"the update request was not taken up: {refused}",
                        "wait until setup has completed and no other update runs, then "
                        "request the update again")
    if request["action"] == "check":
        return check(root, request["channel"], "web", request["id"])
    refused = unreviewed(request, root)
    if refused:  # the web service checked it too, but trusts nothing from the web process
        return _refused(root, request["id"], "apply", request["channel"],
                        f"{refused['field']} {refused['message']}", "check again, review "
                        "the plan, and apply it")
    try:
        return apply(root, request["channel"], request["confirmed"], "web", kubeconfig,
                     request["id"], request.get("digest"))
    except ConfirmationRequired as exc:
        return _refused(root, request["id"], "apply", request["channel"],
                        f"not applied without confirmation: {exc.reason}",
                        "check again, read what will change, and confirm it")
    except UpdateBusy as exc:
        return _refused(root, request["id"], "apply", request["channel"], str(exc),
                        "wait until it has finished, then request the update again")


class CheckSkipped(Exception):
    """The daily check did not run now; the message says why."""


def scheduled_check(root: Path | None = None, if_due: bool = False) -> dict:
    """The update notice's check of the installed channel (what the daily timer and
    `alga-appliance check-updates` run): the notice written. Raises CheckSkipped while a
    setup or update runs or waits, before setup has completed, and, `if_due`, within a
    day of the last check."""
    from host.update.check import check_installed  # the resolver: not for the web service

    root = paths.host_root(root)
    if if_due and not notice.due(root):
        raise CheckSkipped("the installed channel was checked less than "
                           f"{notice.DUE_AFTER.total_seconds() / 3600:g} h ago")
    refused = busy.waiting(root) or _refusal(root)
    if refused:
        raise CheckSkipped(f"not checked now: {refused}; the daily check tries again")
    return check_installed(root)


def _refusal(root: Path) -> str | None:
    """The busy rule asked again under the setup lock, for a check as for an apply (a check
    takes the lock only to ask: it changes nothing a setup phase reads, and a phase must
    not fail for want of the lock while one runs; an apply takes it again for its run)."""
    try:
        with runlock.held(root):
            return busy.running(root, holding_lock=True) or _not_installed(root)
    except runlock.Busy as exc:
        return busy.lock_holder(root, exc)


def _refused(root: Path, request_id: str | None, action: str, channel: str | None,
             cause: str, next_step: str) -> dict:
    """A failed entry for a web request that was not run: the UI learns why from history."""
    current = state.read(state.SELECTED_RELEASE, root)
    channel = channel or (current["channel"] if current else channels.DEFAULT_CHANNEL)
    operation = history.start(root, action, channel, "web", current, request_id,
                              writes_log=action == "apply")  # a check writes no log
    return operation.finished("failed", {"category": REFUSED_CATEGORY,
                                         "suspected_cause": cause, "next_step": next_step})
