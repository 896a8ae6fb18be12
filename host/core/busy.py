"""The one busy rule for setup, resume and update requests: one setup run or update at a
time, whoever asks (the web, the console, the CLI, a oneshot).

It is asked twice: when a request is submitted (by the unprivileged web service and the
console, which can only read the state files and the spool) and again when a root oneshot
accepts it, holding the setup lock (runlock.py), since the state may have moved between.
What each kind of request needs besides (setup not completed, a stopped run to resume,
setup completed before an update) is its own module's rule, asked after this one.

Support bundles are not part of it: making one only reads (the state files, the journal,
the cluster), so it may run beside setup or an update, and is most wanted exactly then; a
second bundle waits for the first through its own status (host/support/request.py).
"""

import datetime
from pathlib import Path

from host.core import runlock, spool, state

# Between two setup phases no process owns the run: the next phase's unit is starting. It
# has this long to record itself before the run counts as interrupted.
HANDOVER_SECONDS = 60
# The request kinds that start a setup run, an app update or a self-update (not the support
# bundle, above).
EXCLUSIVE_KINDS = (spool.SETUP, spool.UPDATE, spool.SELF_UPDATE)


def busy(root: Path | None = None) -> str | None:
    """What runs, or waits to run, that a new setup, resume or update would collide with;
    None when nothing does. For a submission: nothing is locked, the state files say it."""
    return running(root) or waiting(root)


def running(root: Path | None = None, holding_lock: bool = False) -> str | None:
    """The setup run or update under way, or None. With `holding_lock` (an acceptor that
    holds the setup lock) an update recorded as running is a dead one: an update holds the
    lock for as long as it runs (the status collector marks it interrupted so too)."""
    install = state.read(state.INSTALL_STATE, root)
    if under_way(install):
        return _setup_running(install)
    if holding_lock:
        return None
    journal = state.read(state.SELF_UPDATE_JOURNAL, root)
    if journal:  # a self-update holds the lock throughout; boot settles a dead one
        return (f"a self-update to version {journal['to_version']} is running "
                f"({journal['step']}) since {journal['started_at']}")
    history = state.read(state.UPDATE_HISTORY, root)
    updating = [e for e in (history["entries"] if history else ()) if e["result"] == "running"]
    return _update_running(updating[0]) if updating else None


def lock_holder(root: Path | None, refused: runlock.Busy) -> str:
    """Why the setup lock could not be taken: what the state files say runs (an update
    holds the lock throughout; a setup phase while it runs), else the lock's own holder."""
    found = running(root)
    return (f"{found}, holding the setup lock ({refused.holder}); wait for it to finish, then "
            "retry") if found else str(refused)


def waiting(root: Path | None = None) -> str | None:
    """A setup or update request spooled but not yet taken up, or None. An acceptor does not
    ask this: of two requests waiting at once, the first to take the lock runs and the
    other is refused by what it then finds running."""
    for kind in EXCLUSIVE_KINDS:
        if spool.pending(kind, root):
            return f"{kind.one} is already waiting to start"
    return None


def in_flight(install: dict | None) -> bool:
    """Accepted (pending with an owner) or running."""
    return bool(install) and (install["status"] == "running" or
                              (install["status"] == "pending" and "owner" in install))


def under_way(install: dict | None, now: datetime.datetime | None = None) -> bool:
    """In flight, and its owner may still be at work: alive, or between two phases for
    less than HANDOVER_SECONDS in this boot."""
    if not in_flight(install):
        return False
    owner = install.get("owner")
    if runlock.alive(owner):
        return True
    handing_over = owner is not None and owner["boot_id"] == runlock.boot_id() and not any(
        record["state"] == "running" for record in install["phases"].values())
    return handing_over and _age(install["updated_at"], now) < HANDOVER_SECONDS


def _age(stamp: str, now: datetime.datetime | None) -> float:
    then = datetime.datetime.strptime(stamp, state.TIMESTAMP_FORMAT).replace(
        tzinfo=datetime.UTC)
    return ((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds()


def _setup_running(install: dict) -> str:
    phase = install["current_phase"]
    if phase is None:
        return f"setup is starting (its request was accepted at {install['updated_at']})"
    since = install["phases"].get(phase, {}).get("started_at") or install["updated_at"]
    return f"setup is already running ({phase}) since {since}"


def _update_running(entry: dict) -> str:
    what = "an update to" if entry["action"] == "apply" else "an update check of"
    return (f"{what} {entry['channel']} is running ({entry['step'] or 'starting'}) since "
            f"{entry['started_at']}")
