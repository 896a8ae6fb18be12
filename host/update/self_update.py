"""Self-update: apply a staged host release (host/releases/host_release.py `stage`: its
signature, every file's hash, size and mode already checked) to this appliance.

The release goes into a version directory beside the installed one; `current` is switched
to it by renaming a new link over the old; the new version's own code migrates the state
files (so a newer shape is written only after the switch); the units restart; a health
check proves the new version works. Any failure switches back, restores the state files
from the snapshot taken first, and records why.

A journal (paths.SELF_UPDATE_DIR/journal.json) names the step under way, written before
each step. A power loss at any point is settled at boot by `recover` (the
alga-appliance-self-update-recover unit, before the web service): a journal at COMMIT is
finished, any other is undone. So the appliance runs the old version or the new, never a
mix of the two.
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host.core import busy, hostcmd, maintenance, paths, runlock, spool, state, token, unitfiles
from host.core.version import version_key
from host.releases import host_release

# The steps, in order; the journal names the one under way. Recovery undoes every step but
# COMMIT, which it finishes; ROLLBACK it carries on.
SNAPSHOT, INSTALL, SWITCH, MIGRATE, RESTART, HEALTH, COMMIT, ROLLBACK = (
    "snapshot", "install", "switch", "migrate", "restart", "health", "commit", "rollback")
# The services that run the appliance's code for long: restarted onto the new version.
# The oneshots started by timers and .path units run the new version on their next start.
# Not the consoles: an admin may be applying from the console's shell, which a restart of
# its service would kill with the apply; they run the new version from their next start
# (the version they started from is kept).
LONG_RUNNING = ("alga-appliance.service",)
# Files the ISO build made for this site (isobuild --release-source, --admin-user): an
# update keeps the installed ones, whatever the release carries.
SITE_FILES = (state.RELEASE_SOURCE.filename, state.ADMIN_ACCOUNT.filename)
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")  # what a host release's version is
HEALTH_SECONDS = 60  # how long the restarted web service has to answer /healthz
VERSION_FILE = "VERSION"
SNAPSHOT_WHOLE = ".whole"  # in the snapshot directory, written once every file is in it


class Refused(Exception):
    """The apply was refused before anything changed: the cause and the next step."""


class RolledBack(Exception):
    """The apply failed and the appliance is back on the version it had: why, and the
    history entry that records it."""

    def __init__(self, reason: str, entry: dict):
        super().__init__(reason)
        self.entry = entry


@dataclass(frozen=True)
class Outcome:
    from_version: str
    to_version: str
    result: str  # applied, rolled-back
    entry: dict | None = field(default=None, compare=False)  # the history's record of it


def installed_version(root: Path | None = None) -> str:
    """The version `current` names (its VERSION file)."""
    return (_current(root) / VERSION_FILE).read_text(encoding="utf-8").strip()


def refusal(root: Path | None, staged, force_downgrade: bool) -> str | None:
    """Why `staged` may not be applied here, or None."""
    installed, wanted = installed_version(root), staged.version
    if not VERSION.fullmatch(wanted):
        return (f"{wanted!r} is not a release version (major.minor.patch): this release "
                "cannot be ordered against the installed one; ask its publisher")
    if version_key(wanted) == version_key(installed):
        return f"version {wanted} is already installed: nothing to do"
    if version_key(wanted) < version_key(installed) and not force_downgrade:
        return (f"version {wanted} is older than the installed {installed}; going back is "
                "for support to decide: add --force-downgrade if support asked for it")
    minimum = staged.manifest["min_upgrade_from"]
    if version_key(minimum) > version_key(installed):
        return (f"version {wanted} can only be applied to {minimum} or newer, and {installed} "
                f"is installed: apply {minimum} (or a later release that allows "
                f"{installed}) first")
    return None


def check(root: Path | None = None) -> dict:
    """What the pinned repository offers against what is installed, recorded in the
    maintenance record: {"installed", "available": [{version, notes, created}], "entry"}."""
    started, installed = time.monotonic(), installed_version(root)
    try:
        offered = host_release.available(root)
    except host_release.Refused as exc:
        entry = record(root, "check", started, "failed", from_version=installed,
                       to_version=None, signer=None, reason=exc.reason)
        return {"installed": installed, "available": [], "entry": entry}
    offered = [a for a in offered if VERSION.fullmatch(a.version)]  # not "latest" and such
    newer = [a for a in offered if version_key(a.version) > version_key(installed)]
    found = {"installed": installed, "available": [
        {"version": a.version, "notes": a.notes, "created": a.created} for a in offered]}
    state.write(state.SELF_UPDATE_CHECK, {"checked_at": state.timestamp(), **found}, root)
    entry = record(root, "check", started, "available" if newer else "up-to-date",
                   from_version=installed, to_version=newer[0].version if newer else None,
                   signer=None)
    return {**found, "entry": entry}


def offer(root: Path | None, installed: str | None) -> dict | None:
    """What the last check found that is newer than `installed` (every version when that
    is unknown): {checked_at, available}, None before any check succeeded."""
    found = state.read(state.SELF_UPDATE_CHECK, root)
    if found is None:
        return None
    newer = [a for a in found["available"]
             if installed is None or version_key(a["version"]) > version_key(installed)]
    return {"checked_at": found["checked_at"], "available": newer}


def run(root: Path | None, version: str | None, force_downgrade: bool = False) -> dict:
    """Stage `version` (default: the newest the pinned repository offers), apply it and
    record how it went; the maintenance record's entry."""
    started, installed = time.monotonic(), installed_version(root)
    started_at = state.timestamp()
    staging = paths.on_host(paths.SELF_UPDATE_DIR, root) / "staging"
    staged = None
    try:
        version = version or _newest(root, installed)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        staged = host_release.stage(root, version, staging)
        outcome = apply(root, staged, force_downgrade, started_at=started_at)
    except host_release.Refused as exc:
        return record(root, "apply", started, "refused", from_version=installed,
                      to_version=version, signer=None, reason=exc.reason)
    except Refused as exc:
        return record(root, "apply", started, "refused", from_version=installed,
                      to_version=version, signer=staged.signer if staged else None,
                      reason=str(exc))
    except RolledBack as exc:
        return exc.entry
    except OSError as exc:  # staging: a full disk, say; an apply under way is undone at boot
        return record(root, "apply", started, "failed", from_version=installed,
                      to_version=version, signer=staged.signer if staged else None,
                      reason=f"{_file_problem(exc)}; check the disk (df -h), then apply "
                             "again")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return outcome.entry


def accept(root: Path | None = None) -> dict | None:
    """Take the self-update request the web spooled and do it (what its .path unit's
    oneshot runs): the maintenance record's entry, None when none was waiting. Raises
    spool.Malformed for a request its schema refuses (removed, nothing done)."""
    request = spool.take(spool.SELF_UPDATE, root)
    if request is None:
        return None
    if request["action"] == "check":
        return check(root)["entry"]
    return run(root, request.get("version"))


def check_lines(found: dict) -> list[str]:
    """What a check found, for a terminal: installed, offered (with notes), or why not."""
    entry = found["entry"]
    lines = [f"installed: {found['installed']}"]
    if entry["outcome"] == "failed":
        return [*lines, f"check failed: {entry['reason']}"]
    for offered in found["available"]:
        lines.append(f"available: {offered['version']} (published {offered['created']})")
        lines += [f"  {line}" for line in offered["notes"].splitlines()]
    lines.append(f"to apply it: sudo alga-appliance self-update --apply {entry['to_version']}"
                 if entry["outcome"] == "available" else "up to date")
    return lines


def entry_line(entry: dict) -> str:
    """One history entry in words."""
    what = f"{entry['action']} {entry['from_version']} → {entry['to_version'] or '(none)'}"
    signer = f", signed by {entry['signer']}" if entry["signer"] else ""
    reason = f": {entry['reason']}" if entry["reason"] else ""
    return f"self-update {what}: {entry['outcome']} in {entry['duration_s']} s{signer}{reason}"


def _newest(root: Path | None, installed: str) -> str:
    newer = [a.version for a in host_release.available(root)
             if VERSION.fullmatch(a.version) and version_key(a.version) > version_key(installed)]
    if not newer:
        raise Refused(f"no release newer than the installed {installed} is available: "
                      "nothing to do")
    return newer[0]


def apply(root: Path | None, staged, force_downgrade: bool = False,
          health: Callable[[Path | None], str | None] | None = None,
          started_at: str | None = None) -> Outcome:
    """Apply `staged`, holding the setup lock, and record how it ended in the history (as
    started at `started_at`, default now). Raises Refused (nothing changed, nothing
    recorded) or RolledBack (the old version runs again, its state files restored)."""
    health = health or check_health
    try:
        with runlock.held(root):
            running = busy.running(root, holding_lock=True)
            if running:
                raise Refused(f"{running}; self-update waits for it: retry once it finished")
            recover(root, at_boot=False)  # one killed without a reboot since
            problem = refusal(root, staged, force_downgrade)
            if problem:
                raise Refused(problem)
            return _apply(root, staged, health, started_at or state.timestamp())
    except runlock.Busy as exc:
        raise Refused(busy.lock_holder(root, exc)) from exc


def _file_problem(exc: OSError) -> str:
    """Which file, and what went wrong with it. shutil.copytree gathers its failures in one
    shutil.Error of (source, target, why) triples: the first names the cause."""
    if isinstance(exc, shutil.Error) and exc.args and exc.args[0]:
        _, target, why = exc.args[0][0]
        return f"{target}: {why}" + (f" (and {len(exc.args[0]) - 1} more)"
                                     if len(exc.args[0]) > 1 else "")
    return f"{exc.filename or 'a file'}: {exc.strerror or exc}"


def _apply(root: Path | None, staged, health: Callable[[Path | None], str | None],
           started_at: str) -> Outcome:
    journal = {"from_version": installed_version(root), "to_version": staged.version,
               "signer": staged.signer, "started_at": started_at, "step": SNAPSHOT,
               "reason": None, "rolled_back_from": None}
    _write_journal(root, journal)
    _snapshot(root)
    try:
        _step(root, journal, INSTALL)
        _install(root, staged, journal["from_version"])
        _step(root, journal, SWITCH)
        _switch(root, staged.version)
        problem = _after_switch(root, journal, health)
    except OSError as exc:  # a full disk, a file in the way: the old version is kept
        problem = f"{_file_problem(exc)}; check the disk (df -h)"
    if problem:
        reason = (f"version {staged.version} failed ({problem}); the appliance is back on "
                  f"{journal['from_version']} with its state files as they were")
        raise RolledBack(reason, _rollback(root, journal, reason, at_boot=False))
    _step(root, journal, COMMIT)
    return Outcome(journal["from_version"], staged.version, "applied", _commit(root, journal))


def _after_switch(root: Path | None, journal: dict,
                  health: Callable[[Path | None], str | None]) -> str | None:
    """What went wrong on the new version, or None: migrate, restart, health."""
    try:
        _step(root, journal, MIGRATE)
        run_current(root, "migrate-state")
        _step(root, journal, RESTART)
        _restart(root)
    except hostcmd.CommandFailed as exc:
        return str(exc)
    _step(root, journal, HEALTH)
    return health(root)


def recover(root: Path | None = None, at_boot: bool = True) -> Outcome | None:
    """Settle a self-update a power loss or a kill cut short: finish one at COMMIT, undo any
    other. None when there was none."""
    journal = read_journal(root)
    if journal is None:
        return None
    if journal["step"] == COMMIT:
        entry = _commit(root, journal)
    else:
        reason = journal["reason"] or (f"interrupted during step {journal['step']} (the "
                                       "appliance restarted or the update was killed)")
        entry = _rollback(root, journal, reason, at_boot)
    return Outcome(journal["from_version"], journal["to_version"], entry["outcome"], entry)


# --- the journal and the snapshot ---------------------------------------------------------

def journal_path(root: Path | None) -> Path:
    return paths.on_host(paths.SELF_UPDATE_DIR, root) / "journal.json"


def snapshot_dir(root: Path | None) -> Path:
    return paths.on_host(paths.SELF_UPDATE_DIR, root) / "snapshot"


def read_journal(root: Path | None) -> dict | None:
    return state.read(state.SELF_UPDATE_JOURNAL, root)


def _write_journal(root: Path | None, journal: dict) -> None:
    journal_path(root).parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    state.write(state.SELF_UPDATE_JOURNAL, journal, root)


def _step(root: Path | None, journal: dict, step: str) -> None:
    journal["step"] = step
    _write_journal(root, journal)


def snapshotted() -> tuple[state.StateFile, ...]:
    """The state files a self-update may change: the host's, not the payload's."""
    return tuple(f for f in state.STATE_FILES if f.directory in (paths.CONFIG_DIR,
                                                                 paths.STATE_DIR))


def _snapshot(root: Path | None) -> None:
    """Copy every state file as it is (broken or not) into the snapshot directory; one that
    does not exist is recorded by its absence there. The mark, last, says it is whole."""
    target = snapshot_dir(root)
    _drop_snapshot(root)
    target.mkdir(mode=0o700)
    for file in snapshotted():
        try:
            data = file.path(root).read_bytes()
        except FileNotFoundError:
            continue
        state.write_atomically(target / file.filename, data, file.mode)
    state.write_atomically(target / SNAPSHOT_WHOLE, b"", 0o600)


def _drop_snapshot(root: Path | None) -> None:
    """The mark first: a snapshot cut short while being removed is never restored."""
    (snapshot_dir(root) / SNAPSHOT_WHOLE).unlink(missing_ok=True)
    if snapshot_dir(root).exists():
        state.fsync_directory(snapshot_dir(root))
    shutil.rmtree(snapshot_dir(root), ignore_errors=True)


def _restore(root: Path | None) -> None:
    """Every snapshotted state file back as it was; one that did not exist then removed.
    Only from a whole snapshot: one cut short (or being removed) was taken before anything
    changed, or after everything was settled."""
    saved = snapshot_dir(root)
    if not (saved / SNAPSHOT_WHOLE).exists():
        return
    for file in snapshotted():
        try:
            data = (saved / file.filename).read_bytes()
        except FileNotFoundError:
            file.path(root).unlink(missing_ok=True)
            continue
        state.write_atomically(file.path(root), data, file.mode)


# --- versions and the switch --------------------------------------------------------------

def _current(root: Path | None) -> Path:
    return paths.on_host(paths.CURRENT_DIR, root)


def version_dir(root: Path | None, version: str) -> Path:
    return paths.on_host(paths.VERSIONS_DIR, root) / version


def _install(root: Path | None, staged, installed: str) -> None:
    """Copy the staged tree into its version directory (replacing a partial or older copy),
    with the installed site files, every file fsynced, then the directory renamed into
    place: a version directory is complete or absent."""
    final = version_dir(root, staged.version)
    partial = _partial(final)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(staged.directory, partial, symlinks=True)
    # The pinned host-release keys: a release signed by one of them may carry new pins (key
    # rotation); one that carries none keeps the installed pins, so self-updates go on.
    trust = state.HOST_RELEASE_TRUST.filename
    kept = [*SITE_FILES, *([] if (partial / trust).exists() else [trust])]
    for name in kept:
        installed_file = version_dir(root, installed) / name
        if installed_file.exists():
            shutil.copy2(installed_file, partial / name)
    _fsync_tree(partial)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(partial, final)
    state.fsync_directory(final.parent)


def _partial(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def _fsync_tree(top: Path) -> None:
    for directory, _, files in os.walk(top):
        for name in files:
            fd = os.open(Path(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        state.fsync_directory(Path(directory))


def _switch(root: Path | None, version: str) -> None:
    """Point `current` at `version`: a new relative link renamed over the old one, so it
    names the old version or the new at every moment."""
    current = _current(root)
    link = current.with_name(".current.new")
    link.unlink(missing_ok=True)
    link.symlink_to(Path(paths.VERSIONS_DIR).relative_to(paths.INSTALL_DIR) / version)
    os.replace(link, current)
    state.fsync_directory(current.parent)


def _restart(root: Path | None) -> None:
    """Link the current version's units (new ones in, gone ones out), reload systemd and
    restart what runs for long."""
    new_units = unitfiles.link(root)
    hostcmd.run(["systemctl", "daemon-reload"])
    if new_units:
        hostcmd.run(["systemctl", "enable", *new_units])
    hostcmd.run(["systemctl", "try-restart", *LONG_RUNNING])


def _commit(root: Path | None, journal: dict) -> dict:
    """Keep the new version and the one before it (support's way back); drop the rest,
    record it, then drop the snapshot and the journal, last. The history entry."""
    keep = {journal["to_version"], journal["from_version"]}
    for directory in paths.on_host(paths.VERSIONS_DIR, root).iterdir():
        if directory.name not in keep:
            shutil.rmtree(directory, ignore_errors=True)
    entry = _record_once(root, journal, "applied")
    _forget(root)
    return entry


def _rollback(root: Path | None, journal: dict, reason: str, at_boot: bool) -> dict:
    """Back to the old version and its state files, recorded. Every part of it is
    idempotent, so a rollback cut short is simply run again (the journal says ROLLBACK).
    The history entry."""
    if journal["step"] != ROLLBACK:
        journal.update(step=ROLLBACK, reason=reason, rolled_back_from=journal["step"])
        _write_journal(root, journal)
    _switch(root, journal["from_version"])
    _restore(root)
    unitfiles.link(root)
    try:
        hostcmd.run(["systemctl", "daemon-reload"])
        if not at_boot:  # at boot the services start after recovery, on the old version
            hostcmd.run(["systemctl", "try-restart", *LONG_RUNNING])
    except hostcmd.CommandFailed:
        pass  # the old version is in place; the next boot starts it
    # Recorded before the new version's directory goes: at boot this may be that version's
    # code running, and the record's schema is read from it.
    entry = _record_once(root, journal, "rolled-back")
    for directory in (version_dir(root, journal["to_version"]),
                      _partial(version_dir(root, journal["to_version"]))):
        shutil.rmtree(directory, ignore_errors=True)
    _forget(root)
    return entry


def _record_once(root: Path | None, journal: dict, outcome: str) -> dict:
    """The history entry of the self-update the journal names, added unless it is there:
    a settlement cut short after recording it and run again finds it (by the moment the
    apply started). A rollback's restored snapshot predates the entry, so it adds it again."""
    document = state.read(state.MAINTENANCE, root)
    for entry in document["self_updates"] if document else []:
        if (entry["action"], entry["at"], entry["outcome"]) == (
                "apply", journal["started_at"], outcome):
            return entry
    since = datetime.datetime.now(datetime.UTC) - state.moment(journal["started_at"])
    return record(root, "apply", time.monotonic() - max(0.0, since.total_seconds()), outcome,
                  from_version=journal["from_version"], to_version=journal["to_version"],
                  signer=journal["signer"], reason=journal["reason"],
                  at=journal["started_at"])


def _forget(root: Path | None) -> None:
    """The snapshot, then the journal: a journal left without its snapshot restores
    nothing, and a whole snapshot is never left without its journal (it would be stale)."""
    _drop_snapshot(root)
    journal_path(root).unlink(missing_ok=True)
    state.fsync_directory(journal_path(root).parent)


# --- the new version's own code -------------------------------------------------------------

def migrate_state(root: Path | None = None) -> list[str]:
    """Bring every state file to this version's shape: read (the migrations of
    host/core/migrations.py apply on read), written back. What the new version runs right
    after the switch (`alga-appliance migrate-state`); the names of the files it wrote.
    A broken file is left as it is for support, as every reader leaves it."""
    written = []
    for file in snapshotted():
        try:
            document = state.read(file, root)
        except state.StateFileInvalid:
            continue
        if document is not None:
            state.write(file, document, root)
            written.append(file.name)
    return written


def run_current(root: Path | None, *args: str) -> str:
    """Run the CLI of the version `current` names (a new process, so the new code)."""
    argv = [str(_current(root) / "bin" / "alga-appliance"), *args]
    environment = {**os.environ, paths.ROOT_ENV: str(paths.host_root(root))}
    try:
        # From /, as systemd runs it: `python3 -m` imports from its working directory first.
        done = subprocess.run(argv, capture_output=True, encoding="utf-8", errors="replace",
                              timeout=hostcmd.TIMEOUT, env=environment, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise hostcmd.CommandFailed(f"alga-appliance {' '.join(args)} did not run: {exc}") \
            from exc
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise hostcmd.CommandFailed(f"alga-appliance {' '.join(args)} exited "
                                    f"{done.returncode}: {last[0]}")
    return done.stdout


def check_health(root: Path | None, base: str = f"http://127.0.0.1:{paths.WEB_PORT}",
                 seconds: float = HEALTH_SECONDS) -> str | None:
    """What is wrong with the new version, or None: the web service answers /healthz and
    runs the new version's code, the status collector runs and the console banner renders."""
    problem = _web_answers(f"{base}/healthz", seconds) or _web_runs(root, base)
    if problem:
        return problem
    for command in ("collect-status", "console-banner"):
        try:
            run_current(root, command)
        except hostcmd.CommandFailed as exc:
            return str(exc)
    return None


def _web_answers(url: str, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return None
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            return f"the web service did not answer {url} within {seconds:.0f} s ({last})"
        time.sleep(1)


def _web_runs(root: Path | None, base: str) -> str | None:
    """Whether the web service that answers runs the installed version (a unit that starts
    other code than `current`'s would keep the old version serving)."""
    wanted = installed_version(root)
    try:
        request = urllib.request.Request(f"{base}/api/self-update", headers={
            "Authorization": f"Bearer {token.read_token(root)}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            serving = json.load(response)["serving"]
    except (token.NoValidToken, OSError, ValueError, KeyError, TypeError) as exc:
        return f"the web service did not say which version it runs ({exc})"
    if serving != wanted:
        return (f"the web service runs version {serving}, not {wanted}: it did not restart "
                "onto the new version's code")
    return None


def record(root: Path | None, action: str, started: float, outcome: str, *,
           from_version: str | None, to_version: str | None, signer: str | None,
           reason: str | None = None, at: str | None = None) -> dict:
    """Add a check or apply to the maintenance record's self-update history, as of `at`
    (default now; an apply that got as far as its journal: when it started)."""
    entry = {"action": action, "at": at or state.timestamp(), "from_version": from_version,
             "to_version": to_version, "signer": signer, "outcome": outcome, "reason": reason,
             "duration_s": round(time.monotonic() - started, 1)}
    maintenance.add_self_update(root, entry)
    return entry
