"""Requests from the unprivileged web service (and the console) to systemd, through the
spool directory: one table of request kinds, one way to submit and to take them.

A request is validated against its kind's schema, given an id, and written here
atomically; the kind's .path unit sees it and starts a root oneshot (`alga-appliance
accept-<kind>`), which takes it, validates it again (it trusts nothing from the web
process), acts, and records the id in the state it writes (install state, update history,
support bundle status), so whoever asked can follow their own request. Data moves one way:
web → spool → unit → state.
"""

import datetime
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from host.core import elapsed, paths, state, validation

REQUEST_ID_FORMAT = "%Y%m%dT%H%M%SZ"
# A .path unit starts its oneshot within a second or two of a request landing; one still
# waiting after this long was not picked up, and whoever asked is told what to check.
PICKUP_SECONDS = 30


@dataclass(frozen=True)
class RequestKind:
    name: str  # what messages call it
    filename: str  # in paths.SPOOL_DIR, which the kind's .path unit watches
    schema: str  # what a request must be, checked before spooling and after taking
    accept_command: str  # the `alga-appliance` command the kind's oneshot runs

    @property
    def watcher(self) -> str:
        """The .path unit that starts this kind's oneshot when a request lands."""
        return f"alga-appliance-{self.filename.removesuffix('.request')}-request.path"

    @property
    def one(self) -> str:
        """"a setup request", "an update request": how messages name one."""
        return f"{'an' if self.name[0] in 'aeiou' else 'a'} {self.name} request"


SETUP = RequestKind("setup", "setup.request", "setup-request.schema.json", "accept-setup")
UPDATE = RequestKind("update", "update.request", "update-request.schema.json", "accept-update")
SUPPORT_BUNDLE = RequestKind("support bundle", "support-bundle.request",
                             "support-bundle-request.schema.json", "accept-support-bundle")
NETWORK_DIAGNOSTICS = RequestKind("network diagnostics", "network-diagnostics.request",
                                  "network-diagnostics-request.schema.json",
                                  "accept-network-diagnostics")
LOGS = RequestKind("log", "logs.request", "logs-request.schema.json", "accept-logs")
SELF_UPDATE = RequestKind("self-update", "self-update.request", "self-update-request.schema.json",
                          "accept-self-update")
KINDS = (SETUP, UPDATE, SUPPORT_BUNDLE, NETWORK_DIAGNOSTICS, LOGS, SELF_UPDATE)


class AlreadyPending(Exception):
    """A request of this kind is already waiting for systemd."""


class Malformed(Exception):
    """A spooled request that is not what its kind's schema says; it was removed."""

    def __init__(self, kind: RequestKind, request_id: str | None, reason: str):
        self.kind, self.request_id = kind, request_id
        super().__init__(f"the {kind.name} request was malformed ({reason}); it was removed "
                         "and nothing was done")


def new_id() -> str:
    """A request id: when it was made, and 32 random bits."""
    return f"{datetime.datetime.now(datetime.UTC):{REQUEST_ID_FORMAT}}-{secrets.token_hex(4)}"


def spool_file(kind: RequestKind, root: Path | None = None) -> Path:
    return paths.on_host(paths.SPOOL_DIR, root) / kind.filename


def pending(kind: RequestKind, root: Path | None = None) -> bool:
    return spool_file(kind, root).exists()


def problems(kind: RequestKind, fields: dict) -> list[dict]:
    """What is wrong with a request of `fields` (submit gives it its id), field by field."""
    return validation.problems({**fields, "id": new_id()}, kind.schema)


def submit(kind: RequestKind, request: dict, root: Path | None = None) -> str:
    """Spool `request` (given an id) complete and durable, unless a request of this kind is
    already waiting: linking the finished temp file into place fails if one exists, so of
    concurrent submissions exactly one wins. Returns the id; raises DocumentInvalid for a
    request its schema refuses, AlreadyPending."""
    request = {**request, "id": new_id()}
    validation.validate(request, kind.schema, name=f"{kind.name} request", source="submission")
    path = spool_file(kind, root)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{kind.filename}.")
    try:
        with os.fdopen(fd, "wb") as fp:
            os.fchmod(fp.fileno(), 0o640)
            fp.write((json.dumps(request, sort_keys=True) + "\n").encode())
            fp.flush()
            os.fsync(fp.fileno())
        try:
            os.link(temp, path)
        except FileExistsError as exc:
            raise AlreadyPending(f"{kind.one} is already waiting to start") from exc
        state.fsync_directory(path.parent)
    finally:
        os.unlink(temp)
    return request["id"]


def take(kind: RequestKind, root: Path | None = None) -> dict | None:
    """The waiting request, removed from the spool; None if there is none. Raises Malformed
    (naming the request's id where it has a usable one) for a request its schema refuses."""
    path = spool_file(kind, root)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    path.unlink()
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise Malformed(kind, None, "not JSON") from exc
    except RecursionError as exc:  # no request of ours nests: a hostile or corrupt file
        raise Malformed(kind, None, "nested too deeply to be a request") from exc
    problems = validation.problems(request, kind.schema) if isinstance(request, dict) else [
        {"field": "", "message": "not a JSON object"}]
    if problems:
        usable_id = isinstance(request, dict) and not any(p["field"] == "id" for p in problems)
        raise Malformed(kind, request["id"] if usable_id else None, "; ".join(
            f"{p['field'] or 'request'}: {p['message']}" for p in problems))
    return request


def waiting(kind: RequestKind, root: Path | None = None, now: float | None = None) -> dict | None:
    """The request of `kind` waiting in the spool (None when none is): how long it has
    waited, by its file's time, and once that passes PICKUP_SECONDS, what to check. A file
    dated in the future (a clock set back since) has waited no time."""
    try:
        landed = spool_file(kind, root).stat().st_mtime
    except FileNotFoundError:
        return None
    waited = int(max(0.0, (time.time() if now is None else now) - landed))
    late = waited > PICKUP_SECONDS
    return {"kind": kind.name, "waited_seconds": waited, "not_picked_up": late,
            "message": not_picked_up(kind) if late else None}


def not_picked_up(kind: RequestKind) -> str:
    """What a request of `kind` left waiting says, the same however long it waited (a
    serial console prints each new line once)."""
    return (f"{kind.one.capitalize()} has waited more than {elapsed.words(PICKUP_SECONDS)} "
            f"and the appliance has not picked it up: {kind.watcher} normally starts it "
            f"within seconds. On the appliance's console run: sudo alga-appliance "
            f"{kind.accept_command} (it does what the watcher would); if it says none is "
            f"waiting, it has just been picked up.")
