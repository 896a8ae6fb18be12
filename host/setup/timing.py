"""Setup's sense of time: which step of how many runs, how long each step took or has been
running, the total, and an estimate of what remains, for the host phases (install-state)
and then the app stage (status.json's tiers), so one page follows a first install from
preflight to login.

The web API serves `progress` as it is (the UI only formats moments as "2 min ago"), and
host/setup/progress.py says it in text for the console: one computation, two views.

Estimates come from this appliance's own durations once a phase has succeeded here (the
engine records them in install-state `durations`), from chain.py's typical durations
before that, and from APP_STEPS for the app stage.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from host.core import elapsed, state
from host.setup import chain

# A recorded duration longer than this is a clock jump, not a phase: not learned from.
PLAUSIBLE_SECONDS = 6 * elapsed.HOUR
# The collector writes status.json every 10 s until the app is fully healthy; older than
# this, the app stage shown is out of date and the page says so.
STATUS_BEHIND_SECONDS = 120
THIS_APPLIANCE, TYPICAL = "this appliance", "typical"


@dataclass(frozen=True)
class AppStep:
    name: str
    title: str  # what the progress views call it
    tier: str  # the status snapshot's readiness tier that says it is done
    typical_seconds: int  # documented in the admin guide


APP_STEPS = (
    AppStep("sources", "Release sources ready", "platform", 120),
    AppStep("core", "Core services (database, cache)", "core", 300),
    AppStep("bootstrap", "Bootstrap (the app's first-run setup)", "bootstrap", 300),
    AppStep("login", "Login works", "login", 180),
)


def learned(install: dict, name: str, record: dict) -> dict:
    """`install`'s durations with phase `name`'s, just succeeded as `record` says, when it
    is plausible (a clock jump teaches nothing)."""
    took = elapsed.seconds_between(_moment(record["started_at"]), _moment(record["finished_at"]))
    durations = dict(install.get("durations", {}))
    if took is not None and took <= PLAUSIBLE_SECONDS:
        durations[name] = took
    return durations


def current(install: dict | None, root: Path | None) -> dict:
    """`install`'s progress now, with the app stage from status.json; a broken status.json
    leaves the app stage unknown and says why, never stopping the host steps' view."""
    now = datetime.datetime.now(datetime.UTC)
    try:
        return progress(install, state.read(state.STATUS, root), now)
    except state.StateFileInvalid as exc:
        return {**progress(install, None, now), "status_behind": (
            f"The app stage cannot be shown: the {exc.state.name} file is {exc.problem}; "
            f"{exc.next_step}")}


def progress(install: dict | None, status: dict | None, now: datetime.datetime) -> dict:
    """Step n of m over the host phases and the app steps, each step's elapsed and expected
    seconds, the total elapsed, what remains (None once something failed: nothing is
    coming), and whether status.json is behind."""
    steps = _host_steps(install, now) + _app_steps(install, status, now)
    done = [s for s in steps if s["state"] in ("succeeded", "skipped")]
    stopped = any(s["state"] == "failed" for s in steps) or not install
    current = next((i for i, s in enumerate(steps) if s["state"] not in ("succeeded", "skipped")),
                   len(steps) - 1)
    return {"now": state.timestamp(now), "step": current + 1, "of": len(steps),
            "done": len(done), "steps": steps,
            "elapsed_seconds": sum(s["elapsed_seconds"] or 0 for s in steps),
            "remaining_seconds": None if stopped else sum(_remaining(s) for s in steps),
            "status_behind": _status_behind(install, status, now)}


def _remaining(step: dict) -> int:
    if step["state"] in ("succeeded", "skipped"):
        return 0
    return max(0, step["expected_seconds"] - (step["elapsed_seconds"] or 0))


def _host_steps(install: dict | None, now: datetime.datetime) -> list[dict]:
    records = dict(chain.ordered(install["phases"])) if install else {}
    durations = (install or {}).get("durations", {})
    steps = []
    for name in [*chain.NAMES, *(n for n in records if n not in chain.NAMES)]:
        record = records.get(name) or {"state": "pending", "started_at": None,
                                       "finished_at": None}
        own = durations.get(name)
        steps.append(_step("host", name, chain.title(name), record["state"],
                            record["started_at"], record["finished_at"], now,
                            own if own is not None else chain.typical_seconds(name),
                            THIS_APPLIANCE if own is not None else TYPICAL))
    return steps


def _step(stage: str, name: str, title: str, phase_state: str, started_at: str | None,
          finished_at: str | None, now: datetime.datetime, expected: int, source: str) -> dict:
    start, finish = _moment(started_at), _moment(finished_at)
    if phase_state in ("pending", "skipped"):  # a skipped phase took no time in this run
        took = None
    elif finish is None and phase_state == "running":
        took = elapsed.seconds_between(start, now)
    else:
        took = elapsed.seconds_between(start, finish)
    return {"stage": stage, "name": name, "title": title, "state": phase_state,
            "started_at": started_at, "finished_at": finished_at, "elapsed_seconds": took,
            "expected_seconds": expected, "expected_from": source,
            "overdue": phase_state == "running" and took is not None and took > expected}


def _app_steps(install: dict | None, status: dict | None, now: datetime.datetime) -> list[dict]:
    """The app stage after the release phase: each step runs from the one before it being
    done (the first from the release phase finishing) until its tier is ready. A tier
    failing (or dropped out again) is the step failed."""
    release = ((install or {}).get("phases") or {}).get("release") or {}
    began = _moment(release.get("finished_at")) if install and \
        install["status"] == "succeeded" else None
    tiers = ((status or {}).get("tiers") or {}) if began else {}
    steps, start, blocked = [], began, began is None
    for app_step in APP_STEPS:
        tier = tiers.get(app_step.tier)
        finish = None
        if tier and tier["ready"]:
            phase_state, finish = "succeeded", _moment(tier["since"])
            if start is not None and (finish is None or finish < start):
                finish = start  # ready before the stage began: it took no time of it
        elif tier and tier["state"] in ("failing", "degraded"):
            phase_state = "failed"
        else:
            phase_state = "pending" if blocked else "running"
        blocked = blocked or phase_state != "succeeded"
        steps.append(_step("app", app_step.name, app_step.title, phase_state,
                           _text(start) if phase_state != "pending" else None, _text(finish),
                           now, app_step.typical_seconds, TYPICAL))
        start = finish
    return steps


def _text(moment: datetime.datetime | None) -> str | None:
    return state.timestamp(moment) if moment else None


def _status_behind(install: dict | None, status: dict | None,
                   now: datetime.datetime) -> str | None:
    """Why the app stage shown may be out of date, with the command that collects now."""
    if not (install and install["status"] == "succeeded"):
        return None
    collect = "on the appliance's console run: sudo alga-appliance collect-status"
    if status is None:
        return (f"The app stage has not been collected yet (the status collector runs every "
                f"10 s); if this lasts, {collect}")
    age = elapsed.seconds_between(_moment(status["collected_at"]), now)
    if age is None or age <= STATUS_BEHIND_SECONDS:
        return None
    return (f"The app stage shown was collected {elapsed.words(age)} ago, so it may be behind "
            f"(the status collector runs every 10 s); {collect}")


def _moment(text: str | None) -> datetime.datetime | None:
    """A recorded time, or None for none (or one no clock could have written)."""
    if not text:
        return None
    try:
        return state.moment(text)
    except ValueError:
        return None
