"""Every layer's log by one name, for the Logs page and `alga-appliance logs`: the setup
phases' logs, the appliance's and k3s's journals, the update log, each Flux controller's
log, and each Alga component's pod logs (current or previous container), chosen by the
name admins know, never by a pod name.

A query is validated here (a source from the fixed table, a bounded line count, previous
only where a container restarts) and every answer is bounded (the last LOG_BYTES of at
most LINES_MAX lines, kubectl and journalctl under timeouts) and redacted with the
support bundle's Redactor before anyone reads it. Sources that need root (the cluster, and
the k3s journal, which can carry the k3s token only root may read to redact) are read by
the root oneshot a spooled request starts (host/support/log_request.py) or by the CLI
under sudo; the web process reads the others itself.

The bootstrap Job deletes itself 300 s after it ends, so the status collector keeps its
log once it has completed or failed (`keep_bootstrap_log`): `bootstrap` then reads the
kept copy.
"""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from host.cluster import alga
from host.cluster.kube import Kube, KubeError
from host.core import paths, state, words
from host.setup import chain
from host.support import collectors
from host.support.redact import KnownValue, Redactor

LINES_DEFAULT = 200
LINES_MAX = 2000
LOG_BYTES = 256 * 1024  # the most of any log read for one answer, and of the kept bootstrap log
LINE_CHARS = 4096  # a longer line is cut: a log line is for reading
JOURNAL_TIMEOUT = 10.0
KUBECTL_REQUEST_TIMEOUT = 10  # seconds kubectl waits for the API server and the kubelet
PHASE_PREFIX = "phase-"
BOOTSTRAP = "bootstrap"
APPLIANCE_UNITS = "alga-appliance*"
# Characters that rewrite a terminal or a line (not the tab): escaped as \x1b, \u202e.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class BadQuery(Exception):
    """A log query that is not one we answer; `fields` says what is wrong, field by field."""

    def __init__(self, fields: list[dict]):
        self.fields = fields
        super().__init__("; ".join(f"{f['field']}: {f['message']}" for f in fields))


class LogUnavailable(Exception):
    """The source cannot be read now; the message names the cause and the next step."""


@dataclass(frozen=True)
class Source:
    name: str  # what the Logs page, the CLI and next steps call it
    label: str  # what the Logs page shows
    group: str  # the Logs page's group of sources
    privileged: bool = False  # read as root: through the spool, or `sudo alga-appliance logs`
    namespace: str = ""
    targets: tuple[str, ...] = ()  # kubectl logs targets, in `namespace`
    unit: str = ""  # a journal's systemd unit pattern

    @property
    def has_previous(self) -> bool:
        """Whether a restarted container's previous run can be asked for."""
        return bool(self.targets)


def _label(name: str) -> str:
    """An Alga component as the status page names it (host/core/words.py), and its name."""
    known = words.label(name)
    return f"{known[0].upper()}{known[1:]} ({name})"


def _component(name: str, *targets: str, label: str = "") -> Source:
    return Source(name, label or _label(name), "Alga components", True, alga.APP_NAMESPACE,
                  targets)


def _controller(name: str) -> Source:
    return Source(name, f"Flux {name}", "Flux controllers", True, alga.FLUX_NAMESPACE,
                  (f"deployment/{name}",))


WORKERS = ("workflow-worker", "temporal-worker", "email-service")
SOURCES: tuple[Source, ...] = (
    Source("appliance", "The appliance's services (journal)", "Appliance",
           unit=APPLIANCE_UNITS),
    Source("update", "App updates (update log)", "Appliance"),
    Source("k3s", "k3s, the Kubernetes service (journal)", "Appliance", True,
           unit="k3s.service"),
    _component("alga-core", f"deployment/{alga.ALGA_CORE}"),
    _component("db", "statefulset/db"),
    _component("redis", "statefulset/redis"),
    _component("pgbouncer", "deployment/pgbouncer"),
    _component("temporal", "deployment/temporal"),
    _component("workers", *(f"deployment/{w}" for w in WORKERS),
               label="All background workers"),
    _component("workflow-worker", "deployment/workflow-worker"),
    _component("temporal-worker", "deployment/temporal-worker"),
    _component("email-service", "deployment/email-service"),
    # Its target is the newest bootstrap job, found when read.
    Source(BOOTSTRAP, _label(BOOTSTRAP), "Alga components", True,
           alga.APP_NAMESPACE),
    *(_controller(name) for name in ("source-controller", "kustomize-controller",
                                     "helm-controller", "notification-controller")),
)


@dataclass(frozen=True)
class Query:
    source: Source
    lines: int = LINES_DEFAULT
    previous: bool = False

    @property
    def phase(self) -> str | None:
        return self.source.name.removeprefix(PHASE_PREFIX) if self.source.group == "Setup" \
            else None


def phase_source(phase: str) -> Source:
    return Source(f"{PHASE_PREFIX}{phase}", f"Setup phase: {phase}", "Setup")


PHASES = tuple(phase_source(name) for name in chain.NAMES)
ALL = (*SOURCES, *PHASES)
BY_NAME = {source.name: source for source in ALL}


def parse(source: str, lines: str | int | None = None,
          previous: str | bool | None = None) -> Query:
    """The query for these raw values (from a URL's query or the command line). Raises
    BadQuery naming each bad field."""
    errors = []
    chosen = BY_NAME.get(source)
    if chosen is None:
        errors.append({"field": "source", "message": f"one of: {', '.join(BY_NAME)}"})
    count = _count(lines)
    if count is None:
        errors.append({"field": "lines", "message": f"a whole number from 1 to {LINES_MAX}"})
    wants_previous = _flag(previous)
    if wants_previous is None:
        errors.append({"field": "previous", "message": "true or false"})
    elif wants_previous and chosen is not None and not chosen.has_previous:
        errors.append({"field": "previous", "message": "only a component's or a Flux "
                       "controller's log has a previous container"})
    if errors:
        raise BadQuery(errors)
    return Query(chosen, count, wants_previous)


def _count(lines: str | int | None) -> int | None:
    if lines is None:
        return LINES_DEFAULT
    text = str(lines)
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(LINES_MAX))):
        return None
    return int(text) if 1 <= int(text) <= LINES_MAX else None


def _flag(value: str | bool | None) -> bool | None:
    if isinstance(value, bool):
        return value
    return {None: False, "": False, "false": False, "0": False, "true": True,
            "1": True}.get(value)


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Excerpt:
    lines: list[str]
    live: bool  # the source still grows: following it shows more
    note: str | None = None  # what the reader should know: why empty, where a kept copy is from

    def as_dict(self, query: Query) -> dict:
        return {"source": query.source.name, "label": query.source.label,
                "previous": query.previous, "lines": self.lines, "live": self.live,
                "note": self.note}


def read(query: Query, root: Path | None = None, kube: Kube | None = None,
         known: list[KnownValue] | None = None) -> Excerpt:
    """The redacted end of the query's log. `known` are the secrets to take out besides
    the patterns (as root: collectors.local_known_values). Raises LogUnavailable."""
    if known is None:
        known = (collectors.local_known_values(root) if query.source.privileged
                 else collectors.service_known_values(root))
    source = query.source
    if query.phase is not None:
        excerpt = _phase_log(query, root)
    elif source.unit:
        excerpt = Excerpt(journal(source.unit, query.lines), live=True)
    elif source.name == "update":
        excerpt = _update_log(query, root)
    elif source.name == BOOTSTRAP:
        excerpt = _bootstrap(query, root, kube or Kube())
    else:
        excerpt = _pods(query, kube or Kube())
    return redacted(excerpt, known)


def redacted(excerpt: Excerpt, known: list[KnownValue]) -> Excerpt:
    """Secrets out (the known values, then the patterns), as the support bundle does; then
    control characters escaped, so that no log line can rewrite the terminal showing it."""
    redactor = Redactor(known)
    text = _CONTROL.sub(_escaped, redactor.text("\n".join(excerpt.lines), "log"))
    return Excerpt([line[:LINE_CHARS] for line in text.split("\n")] if excerpt.lines else [],
                   excerpt.live, excerpt.note and redactor.text(excerpt.note, "log note"))


def _escaped(match: re.Match) -> str:
    char = match.group(0)
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _phase_log(query: Query, root: Path | None) -> Excerpt:
    install = state.read(state.INSTALL_STATE, root) or {"phases": {}}
    record = install["phases"].get(query.phase) or {}
    running = record.get("state") == "running"
    lines = tail(paths.on_host(paths.LOG_DIR, root) / f"{query.phase}.log", query.lines)
    note = None if running else (
        "this phase has not run yet" if not lines else
        f"the phase is not running ({record.get('state', 'not recorded')}): this log no "
        "longer grows")
    return Excerpt(lines, running, note)


def _update_log(query: Query, root: Path | None) -> Excerpt:
    history = state.read(state.UPDATE_HISTORY, root) or {"entries": []}
    running = any(entry["result"] == "running" for entry in history["entries"])
    lines = tail(paths.on_host(paths.UPDATE_LOG, root), query.lines)
    note = None if running else ("no update has run yet" if not lines else
                                 "no update is running: this log grows with the next one")
    return Excerpt(lines, running, note)


def tail(path: Path, count: int) -> list[str]:
    """The last `count` lines of a file within its last LOG_BYTES ([] when it is missing)."""
    try:
        with open(path, "rb") as fp:
            size = fp.seek(0, 2)
            fp.seek(max(0, size - LOG_BYTES))
            return _last_lines(fp.read(), count, cut=size > LOG_BYTES)
    except FileNotFoundError:
        return []


def _last_lines(data: bytes, count: int, cut: bool) -> list[str]:
    """The last `count` lines of `data`; its first line is dropped when the byte bound
    `cut` it."""
    lines = data.decode("utf-8", "replace").splitlines()
    return (lines[1:] if cut else lines)[-count:]


def journal(unit: str, count: int) -> list[str]:
    """The last `count` journal lines of `unit` (a pattern)."""
    command = ["journalctl", "--no-pager", "--quiet", "--output", "short-iso",
               "--lines", str(count), "--unit", unit]
    try:
        result = subprocess.run(command, capture_output=True, timeout=JOURNAL_TIMEOUT,
                                check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LogUnavailable(f"the journal cannot be read ({exc}); on the host run: "
                             f"journalctl -u '{unit}'") from exc
    return _last_lines(result.stdout[-LOG_BYTES:], count, cut=len(result.stdout) > LOG_BYTES)


def _pods(query: Query, kube: Kube) -> Excerpt:
    """The query's containers' logs; with several targets (workers), each line says whose."""
    found, missing = [], []
    for target in query.source.targets:
        try:
            text = pod_log(kube, query.source.namespace, target, query.lines, query.previous)
        except KubeError as exc:
            missing.append(f"{target.split('/')[-1]}: {_kube_problem(exc, query.previous)}")
            continue
        lines = text.splitlines()
        prefix = f"[{target.split('/')[-1]}] " if len(query.source.targets) > 1 else ""
        found += [f"{prefix}{line}" for line in lines]
    if len(query.source.targets) > 1:
        found.sort(key=lambda line: line.split("] ", 1)[-1])  # by the kubelet's timestamps
    note = "; ".join(missing) or ("the previous container's log: it no longer grows"
                                  if query.previous else None)
    if missing and len(missing) == len(query.source.targets):
        return Excerpt([], False, note)
    return Excerpt(found[-query.lines:], not query.previous, note)


def pod_log(kube: Kube, namespace: str, target: str, lines: int, previous: bool) -> str:
    """The last `lines` lines of every container of the pod `target` names, as kubectl reads
    them through the API server, cut to the last LOG_BYTES."""
    text = collectors.logs(kube, namespace, target, "--all-containers",
                           *(["--previous"] if previous else []), lines=lines,
                           request_timeout=KUBECTL_REQUEST_TIMEOUT)
    data = text.encode()
    return "\n".join(_last_lines(data[-LOG_BYTES:], lines, cut=len(data) > LOG_BYTES))


def _kube_problem(exc: KubeError, previous: bool) -> str:
    if previous and "previous terminated container" in exc.stderr:
        return "its container has not restarted, so there is no previous log"
    if exc.not_found or "no pods" in exc.stderr or "not found" in exc.stderr.lower():
        return "it has no pod yet (not deployed yet, or not started): nothing to read"
    return (f"the cluster did not give its log ({exc.stderr or exc}); check the Status page "
            "for the cluster's state")


# --- the bootstrap job's log, kept -------------------------------------------------------


def _bootstrap(query: Query, root: Path | None, kube: Kube) -> Excerpt:
    """The bootstrap job's log while the job exists, else the copy kept once it ended."""
    job = None
    try:
        job = newest_bootstrap_job(kube)
    except KubeError as exc:
        if state.read(state.BOOTSTRAP_LOG, root) is None:
            raise LogUnavailable(f"the cluster API is not answering ({exc.stderr}); the Status "
                                 "page says what to do") from exc
    if job is not None:
        name, outcome = job["metadata"]["name"], _outcome(job)
        job_source = Source(BOOTSTRAP, query.source.label, query.source.group, True,
                            alga.APP_NAMESPACE, (f"job/{name}",))
        excerpt = _pods(Query(job_source, query.lines), kube)
        if outcome is None:
            return excerpt
        if excerpt.lines:
            return Excerpt(excerpt.lines, False, f"job {name} {outcome}: its log no longer "
                           "grows, and is kept when the job deletes itself 5 minutes later")
    kept = state.read(state.BOOTSTRAP_LOG, root)
    if kept is None:
        return Excerpt([], False, "the bootstrap job has not run yet: it starts once the "
                       "database and the web app are up")
    return Excerpt(kept["lines"][-query.lines:], False,
                   f"kept at {kept['kept_at']} when job {kept['job']} {kept['outcome']} "
                   "(the job deletes itself 5 minutes after it ends)")


def newest_bootstrap_job(kube: Kube) -> dict | None:
    jobs = [job for job in kube.list("jobs", alga.APP_NAMESPACE)
            if job["metadata"]["name"].startswith(alga.BOOTSTRAP_JOB_PREFIX)]
    return max(jobs, key=lambda job: job["metadata"].get("creationTimestamp", ""),
               default=None)


def _outcome(job: dict) -> str | None:
    """"succeeded" or "failed" once the job has ended, else None."""
    for condition in job.get("status", {}).get("conditions", []):
        if condition.get("status") == "True" and condition.get("type") in ("Complete",
                                                                           "Failed"):
            return "succeeded" if condition["type"] == "Complete" else "failed"
    return None


def bootstrap_log_wanted(job_names: list[str], root: Path | None) -> bool:
    """Whether a bootstrap job the snapshot saw may not be kept yet: the collector then asks
    the cluster (once it is kept, it asks no more for that job)."""
    jobs = {name for name in job_names if name.startswith(alga.BOOTSTRAP_JOB_PREFIX)}
    kept = state.read(state.BOOTSTRAP_LOG, root)
    return bool(jobs) and not (kept and jobs == {kept["job"]})


def keep_bootstrap_log(root: Path | None, kube: Kube) -> str | None:
    """Keep the newest bootstrap job's log (its last LOG_BYTES, redacted) once it has ended,
    once per job; the job's name when this run kept it. As root (the status collector)."""
    job = newest_bootstrap_job(kube)
    outcome = job and _outcome(job)
    if not outcome:
        return None
    name = job["metadata"]["name"]
    kept = state.read(state.BOOTSTRAP_LOG, root)
    if kept and kept["job"] == name:
        return None
    text = pod_log(kube, alga.APP_NAMESPACE, f"job/{name}", collectors.LOG_LINES, False)
    excerpt = redacted(Excerpt(text.splitlines(), False), collectors.local_known_values(root))
    state.write(state.BOOTSTRAP_LOG, {"job": name, "outcome": outcome,
                                      "kept_at": state.timestamp(), "lines": excerpt.lines},
                root)
    return name
