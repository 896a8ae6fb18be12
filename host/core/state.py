"""The appliance's state files: where each lives, its schema and mode, and the only
code that reads or writes them.

Every write is validated first, then made atomic: a temporary file in the same
directory, fsync, rename, fsync of the directory. Every read is validated; a file that
cannot be read or fails is reported by name, path, JSON pointer and the next step, and is
never silently replaced.
All paths sit under the root prefix of host.core.paths, which tests move.
"""

import datetime
import glob
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.core import migrations, paths
from host.core.validation import DocumentInvalid, validate

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC to the second, as the state files record times


def timestamp(at: datetime.datetime | None = None) -> str:
    """`at` (default: now) as the state files record it."""
    return (at or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC).strftime(
        TIMESTAMP_FORMAT)

def moment(text: str) -> datetime.datetime:
    """A state file's timestamp as an aware UTC datetime."""
    return datetime.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class StateFile:
    name: str  # what support and error messages call it
    directory: str  # one of the host directories in host.paths
    filename: str
    schema: str
    mode: int
    without: str  # what happens once a broken copy is moved aside: the admin's next step
    migrate: Callable[[dict], dict] | None = None  # an older shape → the current, on read
    # The shape this code reads and writes; a host release lists each file's, so an
    # appliance can tell which files the new version migrates (host/releases/host_release.py).
    schema_version: int = 1

    def path(self, root: Path | None = None) -> Path:
        return paths.on_host(self.directory, root) / self.filename


SETUP_INPUTS = StateFile(
    "setup inputs", paths.CONFIG_DIR, "setup-inputs.json", "setup-inputs.schema.json", 0o640,
    "setup asks for its answers again", migrations.setup_inputs)
INSTALL_STATE = StateFile(
    "install state", paths.STATE_DIR, "install-state.json", "install-state.schema.json", 0o640,
    "setup shows as never run: submit it again with the same answers (the phases check what "
    "is already done)", migrations.install_state)
PREFLIGHT_REPORT = StateFile(
    "preflight report", paths.STATE_DIR, "preflight-report.json",
    "preflight-report.schema.json", 0o640, "the next preflight writes it again",
    migrations.preflight_report)
SELECTED_RELEASE = StateFile(
    "selected release", paths.STATE_DIR, "selected-release.json",
    "selected-release.schema.json", 0o640,
    "run an update check: the next update selects the release again",
    migrations.selected_release)
ENDPOINTS = StateFile("endpoint overrides", paths.CONFIG_DIR, "endpoints.json",
                      "endpoints.schema.json", 0o644, "the default endpoints are used")
HOST_CHANGES = StateFile(
    "host changes", paths.STATE_DIR, "host-changes.json", "host-changes.schema.json", 0o640,
    "the record of what setup changed on the host starts again (the bundle keeps the old one)")
STATUS = StateFile("status snapshot", paths.STATE_DIR, "status.json", "status.schema.json",
                   0o640, "the status timer writes a new one within a minute",
                   migrations.status)
MAINTENANCE = StateFile("maintenance metadata", paths.STATE_DIR, "maintenance.json",
                        "maintenance.schema.json", 0o640,
                        "the next install or update writes it again", migrations.maintenance)
SUPPORT_BUNDLE_STATUS = StateFile(
    "support bundle status", paths.STATE_DIR, "support-bundle-status.json",
    "support-bundle-status.schema.json", 0o640, "the next support bundle writes it again")
UPDATE_HISTORY = StateFile(
    "update history", paths.STATE_DIR, "update-history.json", "update-history.schema.json",
    0o640, "the update history starts again (the bundle keeps the old one)",
    migrations.update_history)
# Whether the installed channel names a newer release (the daily check, and every check of
# the installed channel); what the status page and the console banner show.
UPDATE_NOTICE = StateFile(
    "update notice", paths.STATE_DIR, "update-notice.json", "update-notice.schema.json",
    0o640, "no update notice shows until the next check (sudo alga-appliance check-updates)")
SETUP_REFUSAL = StateFile(
    "setup refusal", paths.STATE_DIR, "setup-refusal.json", "setup-refusal.schema.json", 0o640,
    "the last refused setup request is forgotten; the next refusal writes it again")
# Where releases come from, as the release engineer built it into the payload.
RELEASE_SOURCE = StateFile(
    "release source", paths.CURRENT_DIR, "release-source.json", "release-source.schema.json",
    0o644, "setup and updates have no release source: send the bundle to support")
# Which host releases this appliance trusts: the artifact repository and the public keys
# (current and next) built into the payload by `isobuild build --host-release-key`.
HOST_RELEASE_TRUST = StateFile(
    "host release trust", paths.CURRENT_DIR, "host-release-trust.json",
    "host-release-trust.schema.json", 0o644,
    "self-updates are refused until it is restored: send the support bundle to support")
# The admin account the seed created, as the release engineer built it into the payload.
ADMIN_ACCOUNT = StateFile(
    "admin account", paths.CURRENT_DIR, "admin-account.json", "admin-account.schema.json",
    0o644, "setup cannot set the admin password: send the bundle to support")
# What the credentials unit did for the last setup request (no secret in it).
ADMIN_CREDENTIALS = StateFile(
    "admin credentials outcome", paths.STATE_DIR, "admin-credentials.json",
    "admin-credentials.schema.json", 0o640,
    "the progress views no longer say whether the admin password was set; the next setup "
    "writes it again")
# Network diagnostics on demand (host/setup/diagnostics.py): the run, and its report in
# preflight's own format (the same schema, so every view of preflight renders it).
NETWORK_DIAGNOSTICS = StateFile(
    "network diagnostics status", paths.STATE_DIR, "network-diagnostics.json",
    "network-diagnostics.schema.json", 0o640, "the next network diagnostics write it again")
NETWORK_DIAGNOSTICS_REPORT = StateFile(
    "network diagnostics report", paths.STATE_DIR, "network-diagnostics-report.json",
    "preflight-report.schema.json", 0o640, "the next network diagnostics write it again")
NETWORK = StateFile(
    "network settings", paths.CONFIG_DIR, "network.json", "network.schema.json", 0o640,
    "the interfaces it named show as DHCP in the Network entry; set them again there")
NETWORK_CHANGE = StateFile(
    "network change", paths.STATE_DIR, "network-change.json", "network-change.schema.json",
    0o640, "a pending network change is no longer rolled back at boot: check the address "
    "(sudo alga-appliance network show) and set it again if needed")
# The bootstrap job's log, kept by the status collector once the job ended (the job
# deletes itself 300 s later); redacted, its last 256 KiB.
BOOTSTRAP_LOG = StateFile(
    "kept bootstrap log", paths.STATE_DIR, "bootstrap-log.json", "bootstrap-log.schema.json",
    0o640, "the bootstrap job's log is no longer kept; a support bundle still has it while "
    "the job exists")
# The self-update under way (host/update/self_update.py); gone once it is settled.
SELF_UPDATE_JOURNAL = StateFile(
    "self-update journal", paths.SELF_UPDATE_DIR, "journal.json",
    "self-update-journal.schema.json", 0o640,
    "a self-update cut short is no longer finished or undone at boot: check which version "
    "runs (alga-appliance --version) and apply the wanted one again")
# What the last self-update check found, for the Updates page (host/update/self_update.py).
SELF_UPDATE_CHECK = StateFile(
    "self-update check", paths.STATE_DIR, "self-update-check.json",
    "self-update-check.schema.json", 0o640,
    "the Updates page lists no appliance software versions until the next check")
STATE_FILES = (SETUP_INPUTS, INSTALL_STATE, PREFLIGHT_REPORT, SELECTED_RELEASE, ENDPOINTS,
               HOST_CHANGES, STATUS, MAINTENANCE, SUPPORT_BUNDLE_STATUS, UPDATE_HISTORY,
               SETUP_REFUSAL, RELEASE_SOURCE, ADMIN_ACCOUNT, ADMIN_CREDENTIALS, NETWORK,
               NETWORK_CHANGE, UPDATE_NOTICE, BOOTSTRAP_LOG, HOST_RELEASE_TRUST,
               SELF_UPDATE_JOURNAL, SELF_UPDATE_CHECK)
STALE_TEMP_AGE = 60.0  # seconds: a temporary file this old lost its writer (see write_atomically)


class StateFileInvalid(Exception):
    """A state file exists but is unreadable or fails its schema. Every reader that cannot
    go on without the file shows this message: the file, what is wrong and the next step."""

    def __init__(self, state: StateFile, path: Path, pointer: str, message: str):
        self.state, self.path, self.pointer = state, path, pointer
        self.problem = f"invalid at {pointer or '/'}: {message}"
        self.next_step = (
            "make a support bundle (the Support page, or: sudo alga-appliance support-bundle), "
            f"then move the file aside (sudo mv {path} {aside(path)}): {state.without}; "
            "see docs/support/common-fixes.md, \"A broken state file\"")
        super().__init__(f"{state.name} ({path}) is {self.problem}; it was left as it is for "
                         f"support to inspect; next step: {self.next_step}")


def aside(path: Path) -> Path:
    """Where a broken state file is moved to: support bundles collect it there too."""
    return path.with_name(f"{path.name}.broken")


def set_aside(state: StateFile, root: Path | None = None) -> None:
    """Move a broken `state` aside (replacing an older broken copy), for a writer that
    may start afresh without it."""
    path = state.path(root)
    os.replace(path, aside(path))


def read(state: StateFile, root: Path | None = None) -> dict | None:
    """The validated document, or None if the file does not exist yet."""
    path = state.path(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory in its place, no permission, an I/O error
        raise StateFileInvalid(state, path, "", f"unreadable ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise StateFileInvalid(state, path, "", f"not UTF-8 text ({exc.reason} at byte "
                               f"{exc.start})") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StateFileInvalid(state, path, "", f"not JSON ({exc})") from exc
    if state.migrate is not None and isinstance(document, dict):
        document = state.migrate(document)
    try:
        validate(document, state.schema, name=state.name, source=str(path))
    except DocumentInvalid as exc:
        raise StateFileInvalid(state, path, exc.pointer, exc.message) from exc
    return document


def write(state: StateFile, document: dict, root: Path | None = None) -> Path:
    """Validate `document`, then replace the file atomically with it."""
    path = state.path(root)
    validate(document, state.schema, name=state.name, source=f"write to {path}")
    write_atomically(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode(),
                     state.mode)
    return path


def write_atomically(path: Path, data: bytes, mode: int,
                     owner: tuple[int, int] | None = None) -> None:
    """Replace `path` with `data`: readers see the old file or the new one, never a mix.
    `owner` (uid, gid) is set before the file appears, for files root writes for a user."""
    remove_stale_temps(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path))
    try:
        with os.fdopen(fd, "wb") as fp:
            os.fchmod(fp.fileno(), mode)
            if owner is not None:
                os.fchown(fp.fileno(), *owner)
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temps(path: Path) -> None:
    """Remove what writers of `path` killed mid-write left. Writers may run concurrently
    (the status timer beside a phase), so only temporary files older than STALE_TEMP_AGE:
    a live writer holds one for the milliseconds of a write and fsync. One whose fsync
    stalls longer only fails its rename, leaving the old file in place."""
    cutoff = time.time() - STALE_TEMP_AGE
    for temp in path.parent.glob(f"{glob.escape(temp_prefix(path))}*"):
        try:
            if temp.lstat().st_mtime < cutoff:
                temp.unlink()
        except FileNotFoundError:
            pass  # another writer removed it first


def fsync_directory(path: Path) -> None:
    """Make a rename in `path` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
