"""The update notice (update-notice.json): whether the installed channel names a newer
release, in the words the status page, the Updates page and the console banner show as
written (one source for them).

It is written after every check of the installed channel (the daily timer's, the Updates
page's, `alga-appliance update --check`'s) and after an apply; it never applies anything.
A failed check keeps what the last successful one found and says when that was: a release
source that is down for a day is no alarm, so it never becomes a status blocker.
"""

import datetime
from pathlib import Path

from host.core import state
from host.releases import source

# At most daily: the timer fires once a day (a random delay on top); a check of the
# installed channel on demand counts too, so the next timer run after it does nothing.
DUE_AFTER = datetime.timedelta(hours=20)
UPDATES_PAGE = "the Updates page"


def _previous(root: Path | None) -> dict | None:
    """The notice so far, for its writer and the schedule. A broken one is moved aside
    (`<file>.broken`, which the support bundle collects) and the check starts afresh: until
    then the status page names it (a 503 with the next step), and the daily check heals it."""
    try:
        return state.read(state.UPDATE_NOTICE, root)
    except state.StateFileInvalid:
        state.set_aside(state.UPDATE_NOTICE, root)
        return None


def due(root: Path | None = None, now: datetime.datetime | None = None) -> bool:
    """Whether the daily check should run: never checked, or not within DUE_AFTER."""
    notice = _previous(root)
    now = now or datetime.datetime.now(datetime.UTC)
    return notice is None or now - state.moment(notice["checked_at"]) >= DUE_AFTER


def found(root: Path | None, current: dict, target: dict, newer: bool,
          what_changes: list[str]) -> dict:
    """A check that reached the release source: `target` is what the installed channel
    (`current`'s) names now; `newer` whether it is a newer release than `current`."""
    channel = current["channel"]
    available = _release(target) if newer else None
    now = state.timestamp()
    return _write(root, {
        "channel": channel, "checked_at": now, "installed": _release(current),
        "available": available,
        "headline": f"Alga {target['release_version']} is available on {channel}."
        if newer else None,
        "what_changes": what_changes if newer else [],
        "next_step": "Nothing changes until you apply it: review it and apply it on "
                     f"{UPDATES_PAGE}, or at the console with:" if newer else None,
        "command": f"sudo alga-appliance update --channel {channel} --check"
        if newer else None,
        "last_success_at": now, "failure": None})


def failed(root: Path | None, current: dict, failure: dict) -> dict:
    """A check that failed: what the last successful check found stands (while the same
    release is installed), with this failure beside it."""
    before = _previous(root)
    kept = before if before and before["installed"] == _release(current) else None
    return _write(root, {
        "channel": current["channel"], "checked_at": state.timestamp(),
        "installed": _release(current),
        "available": kept["available"] if kept else None,
        "headline": kept["headline"] if kept else None,
        "what_changes": kept["what_changes"] if kept else [],
        "next_step": kept["next_step"] if kept else None,
        "command": kept["command"] if kept else None,
        "last_success_at": before["last_success_at"] if before else None,
        "failure": {key: failure[key] for key in ("category", "suspected_cause", "next_step")}})


def lines(notice: dict) -> list[str]:
    """The notice as text, for the CLI."""
    if notice["headline"]:
        shown = [notice["headline"], *[f"  {line}" for line in notice["what_changes"]],
                 notice["next_step"], f"  {notice['command']}"]
    else:
        installed = notice["installed"]["release_version"]
        shown = [f"No newer release on {notice['channel']}: {installed} is installed."]
    if notice["failure"]:
        failure, last = notice["failure"], notice["last_success_at"] or "never"
        shown = [f"The update check at {notice['checked_at']} failed: "
                 f"{failure['suspected_cause']}", f"  next step: {failure['next_step']}",
                 f"  last successful check: {last}",
                 *(shown if notice["last_success_at"] else [])]
    return shown


def _release(selection: dict) -> dict:
    """A selected release as the notice names it: its versions and exactly where it is."""
    return {"release_version": selection["release_version"],
            "app_version": selection["app_version"], "location": source.describe(selection)}


def _write(root: Path | None, notice: dict) -> dict:
    state.write(state.UPDATE_NOTICE, notice, root)
    return notice
