"""The update history (update-history.json): every check and apply, newest first, the
newest HISTORY_LIMIT kept. A running apply keeps its step current there; the web UI and
the CLI read progress and results from it. An apply whose process died (a reboot, a kill)
is marked interrupted when the setup lock shows nobody holds it."""

import contextlib
import datetime
import fcntl
import secrets
from collections.abc import Iterator
from pathlib import Path

from host.core import failures, paths, runlock, state
from host.core.operation import Operation
from host.releases import source

HISTORY_LIMIT = 100
# No failure category names a refused request (the app stays as it was); this one is the
# closest.
REFUSED_CATEGORY = "app-readiness"


class UpdateOperation(Operation):
    """One check or apply: its history entry is its record."""

    def finished(self, result: str, failure: dict | None = None) -> dict:
        self.record.update(result=result, finished_at=state.timestamp(), failure=failure,
                           duration_s=self.elapsed())
        self.log(f"{self.record['action']} {result}")
        self.save()
        return self.record

    def failed(self, error: Exception, category: str) -> dict:
        self.log(f"failed: {error}")
        return self.finished("failed", failures.failure_record(error, category))


def start(root: Path, action: str, channel: str, who: str, current: dict | None,
          request_id: str | None, writes_log: bool) -> UpdateOperation:
    """A new entry, recorded at its first step (a check changes nothing, not even the
    log: `writes_log` off)."""
    started = datetime.datetime.now(datetime.UTC)
    entry = {"id": f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
             "request_id": request_id, "action": action, "who": who, "channel": channel,
             "started_at": state.timestamp(started), "finished_at": None, "result": "running",
             "step": None, "from": summary(current), "to": None, "changes": None,
             "duration_s": None, "failure": None}
    return UpdateOperation(entry, "step", lambda: save(root, entry),
                           paths.on_host(paths.UPDATE_LOG, root) if writes_log else None)


def summary(selection: dict | None) -> dict | None:
    return None if selection is None else source.summary(selection)


def entries(root: Path | None = None) -> list[dict]:
    """Every recorded check and apply, newest first."""
    document = state.read(state.UPDATE_HISTORY, root)
    return document["entries"] if document else []


@contextlib.contextmanager
def _locked(root: Path | None) -> Iterator[None]:
    """Checks run beside an apply, so every change to the file is read-modify-write under
    this lock."""
    path = paths.on_host(paths.UPDATE_HISTORY_LOCK, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        yield


def save(root: Path, entry: dict) -> None:
    """Write `entry` in place, or as the newest; the newest HISTORY_LIMIT are kept."""
    with _locked(root):
        found = entries(root)
        index = next((i for i, e in enumerate(found) if e["id"] == entry["id"]), None)
        if index is None:
            found.insert(0, entry)
        else:
            found[index] = entry
        state.write(state.UPDATE_HISTORY, {"entries": found[:HISTORY_LIMIT]}, root)


def discard(root: Path, entry_id: str) -> None:
    with _locked(root):
        kept = [e for e in entries(root) if e["id"] != entry_id]
        state.write(state.UPDATE_HISTORY, {"entries": kept}, root)


def mark_interrupted(root: Path | None = None) -> bool:
    """Mark an apply recorded as running whose process is gone (the setup lock is free) as
    interrupted; whether there was one."""
    if not any(entry["result"] == "running" for entry in entries(root)):
        return False  # the lock is only touched when there is something to mark
    try:
        with runlock.held(root):
            return interrupt_running(root)
    except runlock.Busy:
        return False  # its process, or a setup phase, still runs


def interrupt_running(root: Path | None) -> bool:
    """Only call with the setup lock held: then no running apply has a live process."""
    with _locked(root):
        found = entries(root)
        running = [e for e in found if e["result"] == "running"]
        for entry in running:
            started = datetime.datetime.strptime(entry["started_at"], state.TIMESTAMP_FORMAT)
            took = datetime.datetime.now(datetime.UTC) - started.replace(tzinfo=datetime.UTC)
            entry.update(result="interrupted", finished_at=state.timestamp(),
                         duration_s=max(0.0, round(took.total_seconds(), 1)))
        if running:
            state.write(state.UPDATE_HISTORY, {"entries": found}, root)
    return bool(running)


def summary_lines(entry: dict) -> list[str]:
    """The entry as text: what changes, the result and, for a failure, the next step."""
    before, target, changes = entry["from"], entry["to"], entry["changes"]
    lines = []
    if target is not None:
        was = f"{before['channel']} {before['release_version']}" if before else "nothing"
        lines.append(f"{was} → {target['channel']} {target['release_version']} "
                     f"(app {target['app_version']}) from {target.get('location', '?')}")
    if changes is not None:
        lines += [f"  {line}" for line in change_lines(changes)]
    took = f" in {entry['duration_s']:g} s" if entry["duration_s"] is not None else ""
    lines.append(f"{entry['action']}: {entry['result'].replace('_', ' ')}{took}")
    lines += [f"  warning: {warning}" for warning in entry.get("warnings", ())]
    if entry["failure"]:
        failure = entry["failure"]
        lines += [f"  [{failure['category']}] {failure['suspected_cause']}",
                  f"  next step: {failure['next_step']}"]
    return lines


def change_lines(changes: dict) -> list[str]:
    """What a plan changes, a line each (the history's summary and the update notice)."""
    lines = [f"{key.replace('_', ' ')} {changes[key]['from']} → {changes[key]['to']}"
             for key in ("source", "branch", "values_profile", "config_digest")
             if changes.get(key)]
    lines += [f"{item['name']} {item['from']} → {item['to']}"
              for item in (*changes["images"], *changes.get("charts", ()))]
    if changes["needs_confirmation"]:
        lines.append(f"needs confirmation: {changes['confirmation_reason']}")
    return lines
