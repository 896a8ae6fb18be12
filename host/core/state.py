"""The appliance's state files: where each lives, its schema and mode, and the only
code that reads or writes them.

Every write is validated first, then made atomic: a temporary file in the same
directory, fsync, rename, fsync of the directory. Every read is validated; a file that
fails is reported by name, path and JSON pointer and is never silently replaced.
All paths sit under the root prefix of host.core.paths, which tests move.
"""

import datetime
import json
import os
import tempfile
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
    migrate: Callable[[dict], dict] | None = None  # an older shape → the current, on read

    def path(self, root: Path | None = None) -> Path:
        return paths.on_host(self.directory, root) / self.filename


SETUP_INPUTS = StateFile("setup inputs", paths.CONFIG_DIR, "setup-inputs.json",
                         "setup-inputs.schema.json", 0o640, migrations.setup_inputs)
INSTALL_STATE = StateFile("install state", paths.STATE_DIR, "install-state.json",
                          "install-state.schema.json", 0o640, migrations.install_state)
PREFLIGHT_REPORT = StateFile("preflight report", paths.STATE_DIR, "preflight-report.json",
                             "preflight-report.schema.json", 0o640,
                             migrations.preflight_report)
SELECTED_RELEASE = StateFile("selected release", paths.STATE_DIR, "selected-release.json",
                             "selected-release.schema.json", 0o640, migrations.selected_release)
ENDPOINTS = StateFile("endpoint overrides", paths.CONFIG_DIR, "endpoints.json",
                      "endpoints.schema.json", 0o644)
HOST_CHANGES = StateFile("host changes", paths.STATE_DIR, "host-changes.json",
                         "host-changes.schema.json", 0o640)
STATUS = StateFile("status snapshot", paths.STATE_DIR, "status.json", "status.schema.json",
                   0o640, migrations.status)
MAINTENANCE = StateFile("maintenance metadata", paths.STATE_DIR, "maintenance.json",
                        "maintenance.schema.json", 0o640)
SUPPORT_BUNDLE_STATUS = StateFile("support bundle status", paths.STATE_DIR,
                                  "support-bundle-status.json",
                                  "support-bundle-status.schema.json", 0o640)
UPDATE_HISTORY = StateFile("update history", paths.STATE_DIR, "update-history.json",
                           "update-history.schema.json", 0o640, migrations.update_history)
# Where releases come from, as the release engineer built it into the payload.
RELEASE_SOURCE = StateFile("release source", paths.INSTALL_DIR, "release-source.json",
                           "release-source.schema.json", 0o644)


class StateFileInvalid(Exception):
    """A state file exists but is unreadable or fails its schema."""

    def __init__(self, state: StateFile, path: Path, pointer: str, message: str):
        self.state, self.path, self.pointer = state, path, pointer
        super().__init__(f"{state.name} ({path}) is invalid at {pointer or '/'}: {message}; "
                         "it was left as it is for support to inspect")


def read(state: StateFile, root: Path | None = None) -> dict | None:
    """The validated document, or None if the file does not exist yet."""
    path = state.path(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
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


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`: readers see the old file or the new one, never a mix."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fp:
            os.fchmod(fp.fileno(), mode)
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """Make a rename in `path` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
