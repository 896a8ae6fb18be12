"""The support bundle: one archive that explains the appliance's state, with no secrets.

    create(root=None, output=None, *, obfuscate_network=False, redact=True, kube=None,
           progress=None, collectors=COLLECTORS) -> Path

Runs every collector (host/bundle_collectors.py) with its own timeout, a few at a time; a
collector that fails or hangs is recorded in the manifest and never stops the bundle.
Every member then goes through host/redact.py, and the archive
`alga-appliance-support-<host>-<UTC stamp>.tar.gz` (mode 0600; bundle.json first, then
SUMMARY.md) is written to a temporary file beside its final name and renamed into place,
so a full disk leaves no partial archive behind.

- `root`: the root prefix (None: ALGA_APPLIANCE_ROOT, else /).
- `output`: a directory, an archive path, or None for /var/lib/alga-appliance/support
  (under the root prefix), where only the newest KEEP bundles are kept.
- `obfuscate_network`: replace IP addresses and the site's host names; the mapping goes
  beside the archive (`<archive>.network-map.json`, 0600), never into it.
- `redact=False` (`--no-redact`): root only, and stamped in the manifest.
- `kube`: the cluster to read (default: k3s's kubeconfig).
- `progress(step, done, total)`: called as collectors finish and members are written.

Returns the archive's path. Raises BundleError, naming the cause and the next step, when
no bundle could be written. The CLI is `alga-appliance support-bundle`; the web UI runs
the same function from a root oneshot unit.
"""

import contextlib
import datetime
import errno
import gzip
import json
import os
import queue
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from host.cluster.kube import Kube, KubeError
from host.core import paths, state, words
from host.core.validation import validate
from host.core.version import __version__
from host.net.dnsquery import DnsError
from host.net.https import FetchError
from host.setup import timing
from host.setup.progress import describe
from host.support.collectors import (
    COLLECTORS,
    Collector,
    CollectorFailed,
    CollectorTimedOut,
    Context,
    Output,
    local_known_values,
    site_names,
)
from host.support.redact import KnownValue, NetworkMap, Redactor, Report

NAME_PREFIX = "alga-appliance-support-"
KEEP = 5
PARALLEL = 4  # collectors at a time: most wait on kubectl, the network or the disk
GRACE = 2.0  # seconds past its timeout before a collector is abandoned (its commands' own
# timeouts fire first and say which command hung)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_RESULTS = threading.Lock()  # a collector's result and its abandonment never interleave
MANIFEST = "bundle.json"
SUMMARY = "SUMMARY.md"
NOT_REDACTED = ("NOT REDACTED: created with --no-redact by root on the host. It contains "
                "passwords, tokens and keys; share it only as support directs.")

Progress = Callable[[str, int, int], None]


class BundleError(Exception):
    """No bundle could be written; says why and what to do."""


@dataclass
class Outcome:
    """What one collector did, for the manifest."""

    collector: Collector
    status: str = "timed_out"  # until it reports: ok, missing, failed or timed_out
    duration_ms: int = 0
    error: str | None = None
    exception: BaseException | None = None
    output: Output | None = None
    started: float = field(default_factory=time.monotonic)


def create(root: Path | None = None, output: Path | None = None, *,
           obfuscate_network: bool = False, redact: bool = True, kube: Kube | None = None,
           progress: Progress | None = None,
           collectors: Sequence[Collector] = COLLECTORS) -> Path:
    """Write one support bundle and return its path (see the module docstring)."""
    if not redact and os.geteuid() != 0:
        raise BundleError("--no-redact is only for root on the host: run it with sudo, or "
                          "leave it out")
    started, now = time.monotonic(), datetime.datetime.now(datetime.UTC)
    progress = progress or (lambda step, done, total: None)
    directory, name = _destination(root, output)
    network = NetworkMap(*site_names(root)) if obfuscate_network else None
    host = _host_name(network)
    final = _unique(directory / (name or f"{NAME_PREFIX}{host}-{now:%Y%m%dT%H%M%SZ}.tar.gz"))
    try:
        known = local_known_values(root)
    except PermissionError as exc:
        raise BundleError(f"cannot read {exc.filename}: the support bundle must run as root "
                          "(sudo alga-appliance support-bundle)") from exc
    with _out_of_space_is_an_error(directory):
        work = Path(tempfile.mkdtemp(dir=directory, prefix=".support-bundle-work-"))
        try:
            context = Context(paths.host_root(root), Kube(
                kube.kubeconfig if kube else paths.K3S_KUBECONFIG))
            outcomes = run_collectors(collectors, context, work / "staging", progress)
            known += [value for outcome in outcomes if outcome.output
                      for value in outcome.output.known]
            redactor = Redactor(known, patterns=redact, network=network)
            members = _redacted_members(outcomes, redactor, root, work, now, host, progress)
            manifest = _manifest(outcomes, members, redactor, known, now, host, started,
                                 obfuscate_network, redact)
            _write_archive(final, manifest, members, work, network, progress)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if output is None:
        prune(directory)
    return final


@contextlib.contextmanager
def _out_of_space_is_an_error(directory: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise BundleError(f"not enough space in {directory} for the support bundle "
                              f"({exc.strerror}); nothing was written. Free some space (see "
                              f"`df -h {directory}`) or write it elsewhere with -o PATH") from exc
        raise


def mapping_path(archive: Path) -> Path:
    """Where --obfuscate-network keeps its private mapping: beside the archive."""
    return archive.with_name(archive.name.removesuffix(".tar.gz") + ".network-map.json")


def prune(directory: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the newest `keep` bundles (and their mappings) in `directory`."""
    bundles = sorted(directory.glob(f"{NAME_PREFIX}*.tar.gz"),
                     key=lambda path: (path.stat().st_mtime, path.name), reverse=True)
    for old in bundles[keep:]:
        old.unlink(missing_ok=True)
        mapping_path(old).unlink(missing_ok=True)
    return bundles[keep:]


def terminal_progress(stream: TextIO = sys.stderr) -> Progress | None:
    """One updating line on a terminal; nothing when output goes elsewhere."""
    if not stream.isatty():
        return None

    def show(step: str, done: int, total: int) -> None:
        stream.write(f"\r[{done}/{total}] {step}\x1b[K" + ("\n" if done == total else ""))
        stream.flush()
    return show


# --- collecting --------------------------------------------------------------------------


def run_collectors(collectors: Sequence[Collector], context: Context, staging: Path,
                   progress: Progress) -> list[Outcome]:
    """Run every collector, PARALLEL at a time, each in its own thread and staging folder.
    One that outlives its timeout is abandoned: its thread may go on, but whatever it
    writes is refused (threads are daemons, so it cannot hold the process either)."""
    names = [collector.name for collector in collectors]
    assert len(set(names)) == len(names), "collector names must be unique"
    outcomes = [Outcome(collector) for collector in collectors]
    finished: queue.Queue[int] = queue.Queue()
    waiting, running = list(range(len(collectors))), set()
    try:
        while waiting or running:
            while waiting and len(running) < PARALLEL:
                index = waiting.pop(0)
                _start(outcomes[index], context, staging / str(index), finished, index)
                running.add(index)
            for index in _next_ended(outcomes, running, finished):
                running.discard(index)
                _raise_if_out_of_space(outcomes[index])
                progress(f"collected {outcomes[index].collector.name}",
                         len(outcomes) - len(waiting) - len(running), len(outcomes))
    except BaseException:
        for index in running:
            _abandon(outcomes[index])
        raise
    return outcomes


def _start(outcome: Outcome, context: Context, staging: Path, finished: queue.Queue,
           index: int) -> None:
    outcome.output, outcome.started = Output(staging), time.monotonic()
    threading.Thread(target=_collect, args=(outcome, context, finished, index),
                     name=f"collector {outcome.collector.name}", daemon=True).start()


def _next_ended(outcomes: list[Outcome], running: set[int], finished: queue.Queue) -> list[int]:
    """The next collector to finish, or the ones whose time is up (abandoned)."""
    def deadline(index: int) -> float:
        return outcomes[index].started + outcomes[index].collector.timeout + GRACE

    try:
        index = finished.get(timeout=max(0.0, min(map(deadline, running)) - time.monotonic()))
    except queue.Empty:
        late = [index for index in running if time.monotonic() >= deadline(index)]
        for index in late:
            _abandon(outcomes[index])
        return late
    return [index] if index in running else []


def _collect(outcome: Outcome, context: Context, finished: queue.Queue, index: int) -> None:
    result: dict = {}
    try:
        outcome.collector.gather(context, outcome.output)
        result["status"] = "ok" if outcome.output.members else "missing"
    except CollectorTimedOut as exc:
        result.update(status="timed_out", error=str(exc))
    except Exception as exc:  # every failure goes in the manifest; none stops the bundle
        result.update(status="failed", error=_describe(exc), exception=exc)
    with _RESULTS:
        if outcome.output.abandoned:
            return  # too late: the manifest already says it timed out
        result["duration_ms"] = int((time.monotonic() - outcome.started) * 1000)
        for key, value in result.items():
            setattr(outcome, key, value)
    finished.put(index)


def _abandon(outcome: Outcome) -> None:
    with _RESULTS:
        outcome.output.abandoned = True
    outcome.status = "timed_out"
    outcome.duration_ms = int((time.monotonic() - outcome.started) * 1000)
    outcome.error = f"no result within its timeout of {outcome.collector.timeout:g} s"


def _describe(error: Exception) -> str:
    """Our own errors already say what failed; anything else is named by its type."""
    explained = (CollectorFailed, KubeError, state.StateFileInvalid, DnsError, FetchError)
    text = str(error) or type(error).__name__
    return text if isinstance(error, explained) else f"{type(error).__name__}: {text}"


def _raise_if_out_of_space(outcome: Outcome) -> None:
    """A full disk is the bundle's own failure, not the collector's: stop there."""
    error = outcome.exception
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        raise error


# --- redacting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    path: Path  # the redacted file in the work folder
    truncated: bool


def _redacted_members(outcomes: list[Outcome], redactor: Redactor, root: Path | None,
                      work: Path, now: datetime.datetime, host: str,
                      progress: Progress) -> list[Member]:
    """Every member, redacted into work/redacted: SUMMARY.md first, then in name order.
    Each staged original is deleted as soon as its redacted copy exists."""
    summary = work / SUMMARY
    summary.write_text(_summary(root, outcomes, now, host, redactor.patterns))
    collected = sorted((name, outcome.output.staging / name, name in outcome.output.truncated)
                       for outcome in outcomes if outcome.status in ("ok", "missing")
                       for name in outcome.output.members)
    sources = [(SUMMARY, summary, False), *collected]
    members = []
    for number, (name, source, truncated) in enumerate(sources, 1):
        shown = redactor.network.replace(name, name, Report()) if redactor.network else name
        target = work / "redacted" / shown
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(redactor.member(shown, source.read_bytes()))
        source.unlink()
        members.append(Member(shown, target, truncated))
        progress(f"redacted {shown}", number, len(sources))
    return members


# --- the summary and the manifest --------------------------------------------------------


def _summary(root: Path | None, outcomes: list[Outcome], now: datetime.datetime, host: str,
             redacted: bool) -> str:
    """SUMMARY.md: the failure first (as the console shows it), then the status rollup,
    then what the bundle could not collect."""
    lines = ["# Alga appliance support bundle", "",
             f"Created {now:%Y-%m-%d %H:%M:%S} UTC on {host} by alga-appliance {__version__}; "
             + ("secrets redacted." if redacted else NOT_REDACTED), "", "## Setup", "", "```"]
    try:
        install = state.read(state.INSTALL_STATE, root)
        # With each step's time: how long setup took, and where it stalled.
        lines += describe(install, state.read(state.PREFLIGHT_REPORT, root), None,
                          timing.current(install, root) if install else None)
        if install is None:
            lines.append("(no install state: setup has not been submitted)")
    except state.StateFileInvalid as exc:
        lines.append(str(exc))
    lines += ["```", "", "## Status", "", *_status_lines(root)]
    problems = [o for o in outcomes if o.status in ("failed", "timed_out")]
    lines += ["", "## Collection", "",
              f"{len(outcomes) - len(problems)} of {len(outcomes)} collectors succeeded "
              "(details in bundle.json)."]
    # No colon after a name: "kubernetes/secrets: …" would read as a secret's field.
    lines += [f"- {o.collector.name} {o.status}: {o.error}" for o in problems]
    return "\n".join(lines) + "\n"


def _status_lines(root: Path | None) -> list[str]:
    try:
        status = state.read(state.STATUS, root)
    except state.StateFileInvalid as exc:
        return [str(exc)]
    if status is None:
        return ["No status snapshot (the status timer has not run)."]
    rollup = status["rollup"]
    return [f"At {status['collected_at']}: **{rollup['label']}** ({rollup['state']}): "
            f"{rollup['message']}", f"Next: {rollup['next_action']}", "",
            *(f"- {tier['title']}: {tier['state']}: {tier['reason']}"
              for tier in (status["tiers"][key] for key in words.TIERS)), "",
            *(_blocker_line(b) for b in status["blockers"][:10])]


def _blocker_line(blocker: dict) -> str:
    detail = blocker["detail"]
    kubernetes = (f" [{detail['kind']} {detail['name']}: {detail['reason']}: "
                  f"{detail['message']}]" if detail else "")
    return (f"- {blocker['severity']} {blocker['label']} ({blocker['component']}, "
            f"{blocker['layer']}): {blocker['reason']}; {blocker['next_action']}{kubernetes}")


def _manifest(outcomes: list[Outcome], members: list[Member], redactor: Redactor,
              known: list[KnownValue], now: datetime.datetime, host: str, started: float,
              obfuscate_network: bool, redact: bool) -> dict:
    """bundle.json, validated against schemas/support-bundle.schema.json. Errors and notes
    are redacted like any member (they quote commands and their output)."""
    def scrub(text: str) -> str:
        return redactor.text(text, MANIFEST)

    collectors = [{
        "name": o.collector.name, "status": o.status, "timeout_s": o.collector.timeout,
        "duration_ms": o.duration_ms, "error": scrub(o.error) if o.error else None,
        "notes": [scrub(note) for note in o.output.notes] if o.output else [],
        "members": sorted(o.output.members) if o.status in ("ok", "missing") else []}
        for o in outcomes]
    kinds: dict[str, int] = {}
    for value in known:
        kinds[value.kind] = kinds.get(value.kind, 0) + 1
    manifest = {
        "format_version": 1,
        "tool": {"name": "alga-appliance", "version": __version__},
        "created_at": state.timestamp(now),
        "host": host,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "options": {"redact": redact, "obfuscate_network": obfuscate_network},
        "redaction": {"enabled": redact, "known_values": dict(sorted(kinds.items())),
                      "rules": redactor.report.as_dict()},
        "collectors": collectors,
        "members": [{"path": m.name, "bytes": m.path.stat().st_size, "truncated": m.truncated}
                    for m in members],
    }
    if not redact:
        manifest["warning"] = NOT_REDACTED
    validate(manifest, "support-bundle.schema.json", name="support bundle manifest",
             source=MANIFEST)
    return manifest


# --- the archive -------------------------------------------------------------------------


def _write_archive(final: Path, manifest: dict, members: list[Member], work: Path,
                   network: NetworkMap | None, progress: Progress) -> None:
    """The archive, atomically: a temporary file beside `final`, fsync, rename; the network
    mapping first, so that no archive is ever published without it."""
    top = final.name.removesuffix(".tar.gz")
    manifest_path = work / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    entries = [(MANIFEST, manifest_path)] + [(m.name, m.path) for m in members]
    temp = None
    try:
        if network is not None:
            state.write_atomically(mapping_path(final), json.dumps(
                network.mapping(), indent=2).encode(), 0o600)
        fd, temp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.",
                                    suffix=".partial")
        with os.fdopen(fd, "wb") as raw:
            os.fchmod(raw.fileno(), 0o600)
            with gzip.GzipFile(f"{top}.tar", "wb", 6, raw) as compressed, \
                    tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for number, (name, path) in enumerate(entries, 1):
                    _add(tar, f"{top}/{name}", path)
                    progress(f"archived {name}", number, len(entries))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, final)
    except BaseException:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        if network is not None:
            mapping_path(final).unlink(missing_ok=True)
        raise
    state.fsync_directory(final.parent)


def _add(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = path.stat().st_size, int(time.time()), 0o600
    info.uname = info.gname = "root"
    with open(path, "rb") as data:
        tar.addfile(info, data)


# --- where it goes -----------------------------------------------------------------------


def _destination(root: Path | None, output: Path | None) -> tuple[Path, str | None]:
    """The directory to write in, and the archive's name if the caller chose one."""
    if output is None:
        directory = paths.on_host(paths.SUPPORT_DIR, root)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory, None
    output = Path(output)
    if output.is_dir():
        return output, None
    if not output.name.endswith(".tar.gz") or not output.parent.is_dir():
        raise BundleError(f"-o {output}: give an existing directory, or a path ending in "
                          ".tar.gz in one")
    return output.parent, output.name


def _host_name(network: NetworkMap | None) -> str:
    name = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
    return network.replace(name, "", Report()) if network else name


def _unique(path: Path) -> Path:
    """`path`, or with -2, -3, … before .tar.gz when two bundles start in the same second."""
    stem, number = path.name.removesuffix(".tar.gz"), 1
    while path.exists():
        number += 1
        path = path.with_name(f"{stem}-{number}.tar.gz")
    return path
