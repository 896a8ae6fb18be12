"""Logs the web UI asks for that only root can read: the cluster's pod and controller logs
and the k3s journal (host/support/logs.py says which).

The web service spools a request and waits for its answer (`fetch`), bounded:
alga-appliance-logs-request.path starts a root oneshot that runs `accept-logs` (`accept`),
which validates the request again against the sources' table, reads the log (kubectl and
journalctl under their own timeouts), redacts it and writes the answer to
paths.WEB_LOGS_DIR/<request id>.json (0640, group alga-appliance), where the web service,
which keeps no cluster client, reads it. The newest KEEP answers are kept.
"""

import json
import os
import pwd
import time
from pathlib import Path

from host.core import paths, spool, state, validation
from host.support import logs

KEEP = 20
PICKUP_SECONDS = 30.0  # a request systemd has not taken by then will not be: say so
ANSWER_SECONDS = 60.0  # from pickup: kubectl's own timeouts end well before
POLL_SECONDS = 0.1
SCHEMA = "log-excerpt.schema.json"


class NotAnswered(Exception):
    """The host did not take the request or did not answer it in time; the message says
    what to check."""


def answer_path(request_id: str, root: Path | None = None) -> Path:
    return paths.on_host(paths.WEB_LOGS_DIR, root) / f"{request_id}.json"


def fetch(query: logs.Query, root: Path | None = None, clock=time.monotonic,
          sleep=time.sleep) -> dict:
    """Spool `query` and wait for its answer (a log excerpt). While another log request
    waits, this one waits its turn. Raises NotAnswered."""
    request = {"requested_at": state.timestamp(), "source": query.source.name,
               "lines": query.lines, "previous": query.previous}
    deadline = clock() + PICKUP_SECONDS
    while True:
        try:
            request_id = spool.submit(spool.LOGS, request, root)
            break
        except spool.AlreadyPending:
            if clock() >= deadline:
                raise NotAnswered(_not_picked_up()) from None
            sleep(POLL_SECONDS)
    path = answer_path(request_id, root)
    taken_at = None  # when the oneshot took it, by `clock`
    while not path.exists():
        now = clock()
        if taken_at is None and not _spooled(request_id, root):
            taken_at = now
        if taken_at is None and now >= deadline:
            raise NotAnswered(_not_picked_up())
        if taken_at is not None and now >= taken_at + ANSWER_SECONDS:
            raise NotAnswered(f"the log was asked for but not read within {ANSWER_SECONDS:.0f} "
                              "s; on the host run: sudo journalctl -u "
                              "alga-appliance-logs-request.service")
        sleep(POLL_SECONDS)
    return read_answer(path)


def _spooled(request_id: str, root: Path | None) -> bool:
    """Whether our request still waits in the spool (not another one spooled after it)."""
    try:
        return request_id in spool.spool_file(spool.LOGS, root).read_text()
    except FileNotFoundError:
        return False


def _not_picked_up() -> str:
    return (f"the host did not pick the log request up within {PICKUP_SECONDS:.0f} s; check "
            "that its watcher runs: systemctl status alga-appliance-logs-request.path")


def read_answer(path: Path) -> dict:
    document = json.loads(path.read_text(encoding="utf-8"))
    validation.validate(document, SCHEMA, name="log excerpt", source=str(path))
    return document


def accept(root: Path | None = None, kube=None, owner: str = paths.SERVICE_USER) -> str | None:
    """Answer the waiting log request; its id (None when none waits). Raises
    spool.Malformed."""
    try:
        request = spool.take(spool.LOGS, root)
    except spool.Malformed as exc:
        if exc.request_id:  # the web service waits for it: tell it
            _write(_answer(exc.request_id, "unknown", False) | {"error": str(exc)}, root,
                   owner)
        raise
    if request is None:
        return None
    answer = _answer(request["id"], request["source"], request["previous"])
    try:
        query = logs.parse(request["source"], request["lines"], request["previous"])
        answer.update(logs.read(query, root, kube).as_dict(query))
    except (logs.BadQuery, logs.LogUnavailable, state.StateFileInvalid) as exc:
        answer["error"] = str(exc)
    _write(answer, root, owner)
    return request["id"]


def _answer(request_id: str, source: str, previous: bool) -> dict:
    return {"request_id": request_id, "fetched_at": state.timestamp(), "source": source,
            "label": source, "previous": previous, "lines": [], "live": False, "note": None,
            "error": None}


def _write(answer: dict, root: Path | None, owner: str) -> None:
    validation.validate(answer, SCHEMA, name="log excerpt", source="accept-logs")
    directory = paths.on_host(paths.WEB_LOGS_DIR, root)
    directory.mkdir(exist_ok=True)
    group = pwd.getpwnam(owner).pw_gid
    os.chown(directory, -1, group)
    directory.chmod(0o750)  # the unit's umask is 0077: open it to the web service's group
    data = (json.dumps(answer, indent=1) + "\n").encode()
    state.write_atomically(answer_path(answer["request_id"], root), data, 0o640,
                           owner=(os.geteuid(), group))
    _prune(directory)


def _prune(directory: Path) -> None:
    answers = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in answers[KEEP:]:
        old.unlink(missing_ok=True)
