"""What the support bundle collects, as data (in the style of sos plugins): each collector
has a name (the stem of the members it writes), a timeout, and what it runs or reads.

Collectors only gather. They never scrub: every member goes through host/redact.py on its
way into the archive. Files that hold credentials are never read at all (NEVER_COLLECTED),
and the values support must not see are handed to the redactor as known values. Host files
are read under the root prefix; commands and /proc are this machine's, as in host/status.py.
"""

import base64
import contextlib
import fnmatch
import gzip
import ipaddress
import json
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from host.cluster import alga, readiness
from host.cluster.kube import Kube, KubeError
from host.core import paths, state, token
from host.net import dnsquery, endpoints, resolvers
from host.setup import diagnostics, preflight
from host.support.redact import KnownValue

LOG_LIMIT = 2 << 20  # bytes kept of each host log (phases, journal): its end, after a marker
OUTPUT_LIMIT = 1 << 20  # bytes kept of other command output: its start, before a marker
LOG_LINES = 5000  # lines asked of journalctl and kubectl logs: the end of each log
CONTAINER_LOG_BYTES = 256 << 10  # bytes kept of each container log: its end, after a marker
# What kubectl may send at most, so a log of huge lines cannot fill memory. (--limit-bytes
# keeps the start of what --tail selected, so it is only a safety net: the bundle cuts.)
KUBECTL_LOG_BYTES = 16 << 20
MAX_FAILING_PODS = 25  # pods whose container logs are collected, in the API's order
KUBECTL_REQUEST_TIMEOUT = 20
# Read by no collector, whatever a directory listing turns up.
NEVER_COLLECTED = (paths.TOKEN_FILE, f"{paths.STATE_DIR}/*token*", paths.ISSUE_FILE,
                   paths.K3S_KUBECONFIG, *paths.K3S_TOKENS, "/var/lib/rancher/k3s/server/tls/*",
                   "*.key", "*-key.pem", "*token*")
# Before setup is submitted, network checks run as setup's defaults would.
DEFAULT_INPUTS = diagnostics.DEFAULT_INPUTS  # before setup: as the network checks run
# Names that identify no site: what setup contacts, and the ISO's default host name
# (isobuild/options.py), which also names the appliance's units, paths and user.
PUBLIC_NAMES = frozenset({*endpoints.Endpoints().dns_names, "githubusercontent.com",
                          "localhost", "alga-appliance"})
PACKAGES = ("python3", "python3-yaml", "python3-requests", "python3-jsonschema",
            "systemd", "containerd", "iptables")


class CollectorFailed(Exception):
    """A collector could not gather what it is for; the message says why."""


class CollectorTimedOut(CollectorFailed):
    pass


def list_all(kube: Kube, resource: str) -> dict:
    return kube.list_all_namespaces(resource, f"--request-timeout={KUBECTL_REQUEST_TIMEOUT}s")


def logs(kube: Kube, namespace: str, target: str, *extra: str, lines: int = LOG_LINES,
         request_timeout: int = KUBECTL_REQUEST_TIMEOUT) -> str:
    """The last `lines` lines of a pod's, deployment's or job's logs."""
    return kube.logs(namespace, target, "--timestamps", f"--tail={lines}",
                     f"--limit-bytes={KUBECTL_LOG_BYTES}",
                     f"--request-timeout={request_timeout}s", *extra)


@dataclass(frozen=True)
class Context:
    root: Path
    kube: Kube


class Output:
    """Where one collector puts what it found: its own staging folder (so a collector that
    timed out can be dropped whole), notes, and values for the redactor."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.members: list[str] = []
        self.notes: list[str] = []
        self.known: list[KnownValue] = []
        self.truncated: set[str] = set()
        self.abandoned = False
        staging.mkdir(parents=True)

    def add_log(self, member: str, text: str, limit: int) -> None:
        """Stage the end of a log its source already cut to LOG_LINES lines, saying so
        when it did."""
        if text.count("\n") >= LOG_LINES:
            text = f"[support bundle: only the last {LOG_LINES} lines were asked for]\n{text}"
        self.add(member, text, limit=limit, keep="end")

    def add(self, member: str, data: bytes | str, *, limit: int | None = None,
            keep: str = "start") -> None:
        """Stage `member`, cut to `limit` bytes (keeping its start or its end) with a
        marker that says so."""
        if self.abandoned:
            raise CollectorTimedOut("the collector ran past its timeout")
        data = data.encode() if isinstance(data, str) else data
        if limit is not None and len(data) > limit:
            data = _keep_end(data, limit) if keep == "end" else _keep_start(data, limit)
            self.truncated.add(member)
        folder = self.staging
        for part in Path(member).parent.parts:
            folder /= part
            folder.mkdir(exist_ok=True)  # never parents=True: a removed staging folder stays
        (folder / Path(member).name).write_bytes(data)
        self.members.append(member)


def _keep_end(data: bytes, limit: int) -> bytes:
    tail = data[-limit:]
    tail = tail[tail.find(b"\n") + 1:] if b"\n" in tail else tail  # whole lines only
    return (f"[support bundle: the first {len(data) - len(tail)} of {len(data)} bytes were "
            "left out]\n").encode() + tail


def _keep_start(data: bytes, limit: int) -> bytes:
    return data[:limit] + (f"\n[support bundle: truncated after {limit} of {len(data)} "
                           "bytes]\n").encode()


@dataclass(frozen=True)
class Collector:
    name: str  # also the stem of the members it writes
    timeout: float  # seconds
    gather: Callable[[Context, Output], None]  # raises CollectorFailed when it finds nothing


# --- building blocks -------------------------------------------------------------------


def never_collected(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(Path(path).name, pattern)
               for pattern in NEVER_COLLECTED)


def read_host_file(root: Path, path: str) -> bytes | None:
    """A host file under the root prefix, or None when it does not exist."""
    if never_collected(path):
        raise CollectorFailed(f"{path} is never collected: it holds credentials")
    try:
        return paths.on_host(path, root).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CollectorFailed(f"cannot read {path}: {exc.strerror}") from exc


def run_command(argv: list[str], timeout: float, ok: tuple[int, ...] = (0,)) -> str:
    """The output of `argv`: stdout, then stderr when there is any."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise CollectorFailed(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise CollectorTimedOut(f"{' '.join(argv)} did not finish within {timeout:g} s") from exc
    if done.returncode not in ok:
        raise CollectorFailed(f"{' '.join(argv)} exited {done.returncode}: "
                              f"{(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout + (f"\n--- stderr ---\n{done.stderr}" if done.stderr.strip() else "")


def command(name: str, argv: list[str], timeout: float = 10, ok: tuple[int, ...] = (0,),
            limit: int = OUTPUT_LIMIT, keep: str = "start") -> Collector:
    def gather(ctx: Context, out: Output) -> None:
        out.add(f"{name}.txt", run_command(argv, timeout, ok), limit=limit, keep=keep)
    return Collector(name, timeout, gather)


def host_file(name: str, path: str, limit: int = OUTPUT_LIMIT) -> Collector:
    def gather(ctx: Context, out: Output) -> None:
        data = read_host_file(ctx.root, path)
        if data is None:
            out.notes.append(f"{path} does not exist")
            return
        out.add(name, data, limit=limit)
    return Collector(name, 5, gather)


def proc_file(name: str, path: str) -> Collector:
    def gather(ctx: Context, out: Output) -> None:
        out.add(name, Path(path).read_bytes())
    return Collector(name, 5, gather)


def state_file(source: state.StateFile) -> Collector:
    """The file as it is on disk, valid or not; its validity goes in the notes."""
    name = f"state/{source.filename}"

    def gather(ctx: Context, out: Output) -> None:
        host_path = Path(source.directory) / source.filename
        broken = state.aside(host_path)
        data = read_host_file(ctx.root, str(broken))
        if data is not None:
            out.add(f"state/{broken.name}", data)
            out.notes.append(f"{broken} is a broken {source.name} moved aside")
        data = read_host_file(ctx.root, str(host_path))
        if data is None:
            out.notes.append(f"no {source.name} yet")
            return
        out.add(name, data)
        try:
            state.read(source, ctx.root)
        except state.StateFileInvalid as exc:
            out.notes.append(str(exc))
    return Collector(name.removesuffix(".json"), 5, gather)


def journal(name: str, unit: str) -> Collector:
    def gather(ctx: Context, out: Output) -> None:
        out.add_log(f"{name}.txt", run_command(
            ["journalctl", "--boot", "--no-pager", "--output", "short-iso", "--unit", unit,
             "--lines", str(LOG_LINES)], 30), LOG_LIMIT)
    return Collector(name, 30, gather)


# --- appliance logs --------------------------------------------------------------------


def phase_logs(ctx: Context, out: Output) -> None:
    """Every setup and update log, rotated ones decompressed (the bundle holds no nested
    archives), each cut to its end."""
    folder = paths.on_host(paths.LOG_DIR, ctx.root)
    if not folder.is_dir():
        out.notes.append(f"{paths.LOG_DIR} does not exist: no phase has run")
        return
    for path in sorted(folder.iterdir()):
        host_path = f"{paths.LOG_DIR}/{path.name}"
        if not path.is_file() or never_collected(host_path):
            continue
        data = read_host_file(ctx.root, host_path)
        if path.suffix == ".gz":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:  # one damaged rotation never hides the rest
                out.notes.append(f"{host_path} is not a readable gzip file: {exc}")
                continue
        out.add(f"logs/phases/{path.name.removesuffix('.gz')}", data, limit=LOG_LIMIT,
                keep="end")


# --- Kubernetes and Flux ---------------------------------------------------------------


def _ready_condition(obj: dict) -> str:
    ready = readiness.condition(obj, "Ready")
    if ready is None:
        return "no Ready condition"
    return f"Ready={ready['status']} {ready.get('reason', '')}: {ready.get('message', '')}"


def _pod_state(pod: dict) -> str:
    status = pod.get("status", {})
    statuses = status.get("containerStatuses", [])
    ready = sum(bool(c.get("ready")) for c in statuses)
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    waiting = [c["state"]["waiting"].get("reason", "") for c in
               [*status.get("initContainerStatuses", []), *statuses]
               if "waiting" in c.get("state", {})]
    return (f"{status.get('phase', 'Unknown')} ready {ready}/{len(statuses)} restarts "
            f"{restarts}" + (f" waiting: {', '.join(waiting)}" if waiting else ""))


def _replicas(obj: dict) -> str:
    status = obj.get("status", {})
    return (f"ready {status.get('readyReplicas', 0)}/{obj.get('spec', {}).get('replicas', 1)}"
            f" generation {obj['metadata'].get('generation')} observed "
            f"{status.get('observedGeneration')}")


def _job_state(job: dict) -> str:
    status = job.get("status", {})
    conditions = [f"{c['type']}={c['status']}" for c in status.get("conditions", [])]
    return (f"succeeded {status.get('succeeded', 0)} failed {status.get('failed', 0)} "
            f"{' '.join(conditions)}")


def _event_line(event: dict) -> str:
    involved = event.get("involvedObject", {})
    return (f"{event.get('lastTimestamp') or event.get('eventTime') or ''} "
            f"{event.get('type', '')} {event.get('reason', '')} "
            f"{involved.get('kind', '')}/{involved.get('name', '')}  {event.get('message', '')}")


def _keys(secret: dict) -> list[str]:
    return sorted({*secret.get("data", {}), *secret.get("stringData", {})})


# How each kind is summarised, one line per object (the JSON beside it has everything).
SUMMARIES: dict[str, Callable[[dict], str]] = {
    "namespaces": lambda ns: ns.get("status", {}).get("phase", ""),
    "nodes": lambda node: (f"{_ready_condition(node)} kubelet "
                           f"{node.get('status', {}).get('nodeInfo', {}).get('kubeletVersion')}"),
    "pods": _pod_state,
    "deployments": _replicas,
    "statefulsets": _replicas,
    "jobs": _job_state,
    "persistentvolumeclaims": lambda pvc: (
        f"{pvc.get('status', {}).get('phase', '')} "
        f"{pvc.get('status', {}).get('capacity', {}).get('storage', '')} "
        f"class {pvc.get('spec', {}).get('storageClassName')}"),
    "events": _event_line,
    "secrets": lambda secret: f"{secret.get('type', '')} keys: {', '.join(_keys(secret))}",
}


def summary_lines(resource: str, items: list[dict]) -> list[str]:
    describe = SUMMARIES.get(resource, _ready_condition)
    if resource == "events":
        items = sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    # No colon after the name: "db-credentials: …" would read as a secret's field.
    return [f"{item['metadata'].get('namespace', '-')}/{item['metadata']['name']}  "
            f"{describe(item)}" for item in items]


def kube_objects(name: str, resource: str, timeout: float = 30) -> Collector:
    """Every object of `resource` in every namespace, as JSON and one line each; a note
    instead when the cluster has no such resource (Flux not installed yet)."""
    def gather(ctx: Context, out: Output) -> None:
        try:
            document = list_all(ctx.kube, resource)
        except KubeError as exc:
            if not exc.no_such_resource:
                raise
            out.notes.append(f"the cluster has no {resource}: {exc.stderr}")
            return
        if resource == "secrets":
            out.known += secret_values(document["items"])
        out.add(f"{name}.json", json.dumps(document))
        out.add(f"{name}.txt", "\n".join(summary_lines(resource, document["items"])) + "\n")
    return Collector(name, timeout, gather)


def secret_values(secrets: list[dict]) -> list[KnownValue]:
    """Every text value of every Secret, for the redactor to remove wherever it appears."""
    found = []
    for secret in secrets:
        auth = secret["metadata"].get("name") == alga.AUTH_SECRET
        values = {key: value.encode() for key, value in secret.get("stringData", {}).items()}
        for key, value in secret.get("data", {}).items():
            with contextlib.suppress(ValueError):  # not base64: the Secret is dropped anyway
                values[key] = base64.b64decode(value)
        for key, raw in values.items():
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                continue  # binary: only its base64 form exists, in the Secret itself
            kind = "alga-auth-key" if auth and key == alga.AUTH_KEY else \
                "kubernetes-secret"
            found.append(KnownValue(kind, text))
    return found


def _failing(pod: dict) -> bool:
    status = pod.get("status", {})
    containers = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    return status.get("phase") in ("Pending", "Failed", "Unknown") or any(
        "waiting" in c.get("state", {}) or c.get("restartCount", 0) > 0 or (
            "running" in c.get("state", {}) and not c.get("ready")) for c in containers)


def failing_pod_logs(ctx: Context, out: Output) -> None:
    """The end of each container's logs (and its previous run's) in failing pods."""
    failing = [pod for pod in list_all(ctx.kube, "pods")["items"] if _failing(pod)]
    if len(failing) > MAX_FAILING_PODS:
        out.notes.append(f"logs of the first {MAX_FAILING_PODS} of {len(failing)} failing pods")
    problems = []
    for pod in failing[:MAX_FAILING_PODS]:
        namespace, name = pod["metadata"].get("namespace", "default"), pod["metadata"]["name"]
        status = pod.get("status", {})
        for container in [*status.get("initContainerStatuses", []),
                          *status.get("containerStatuses", [])]:
            runs = [("", ())] + ([(".previous", ("--previous",))]
                                 if container.get("restartCount", 0) else [])
            for suffix, extra in runs:
                member = f"kubernetes/pod-logs/{namespace}/{name}/{container['name']}{suffix}.log"
                try:
                    out.add_log(member, logs(ctx.kube, namespace, name, "--container",
                                                      container["name"], *extra),
                                CONTAINER_LOG_BYTES)
                except KubeError as exc:  # one container's logs never stop the rest
                    problems.append(f"{namespace}/{name}/{container['name']}{suffix}: {exc}")
    out.notes += problems


def controller_logs(controller: str) -> Collector:
    name = f"flux/logs/{controller}"

    def gather(ctx: Context, out: Output) -> None:
        out.add_log(f"{name}.log", logs(ctx.kube, alga.FLUX_NAMESPACE,
                                                 f"deployment/{controller}", "--all-containers"),
                    CONTAINER_LOG_BYTES)
    return Collector(name, 30, gather)


def bootstrap_job(ctx: Context, out: Output) -> None:
    """The app's first-run job: its status, and its logs while its pods still exist."""
    jobs = [job for job in list_all(ctx.kube, "jobs")["items"]
            if job["metadata"]["name"].startswith(alga.BOOTSTRAP_JOB_PREFIX)]
    if not jobs:
        out.notes.append("no bootstrap job exists (not started yet, or removed after its TTL)")
        return
    out.add("kubernetes/bootstrap-job.json", json.dumps({"items": jobs}))
    for job in jobs:
        name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
        try:
            out.add_log(f"kubernetes/bootstrap-job/{name}.log",
                        logs(ctx.kube, namespace, f"job/{name}", "--all-containers"),
                        CONTAINER_LOG_BYTES)
        except KubeError as exc:  # the status alone still helps
            out.notes.append(f"logs of job {name}: {exc}")


# --- network ---------------------------------------------------------------------------


def _inputs(root: Path) -> dict:
    return state.read(state.SETUP_INPUTS, root) or DEFAULT_INPUTS


def dns_lookups(ctx: Context, out: Output) -> None:
    """Every name setup contacts, asked of every resolver setup uses, for A and AAAA."""
    site = endpoints.load(ctx.root)
    servers = resolvers.for_setup(_inputs(ctx.root), ctx.root)
    if not servers:
        raise CollectorFailed("no resolvers are configured (resolv.conf names none)")
    lines = []
    for name in site.dns_names:
        for server in servers:
            for qtype in resolvers.QUERY_TYPES:
                try:
                    answer = ", ".join(dnsquery.resolve(name, server, qtype, timeout=2.0))
                except dnsquery.DnsError as exc:
                    answer = f"error: {exc}"
                lines.append(f"{name} {qtype} via {server}: {answer}")
    out.add("network/dns-lookups.txt", "\n".join(lines) + "\n")


def preflight_rerun(ctx: Context, out: Output) -> None:
    """Preflight's checks, run again now with setup's inputs (nothing is written)."""
    inputs = _inputs(ctx.root)
    result = preflight.run_checks(inputs, endpoints.load(ctx.root), paths.host_root(ctx.root),
                                  write_report=False)
    results = result.report["checks"]
    out.add("network/preflight-rerun.json", json.dumps({
        "checked_at": state.timestamp(),
        "inputs": "setup inputs" if inputs is not DEFAULT_INPUTS else "defaults (no setup yet)",
        "checks": results}))


# --- host ------------------------------------------------------------------------------


def rancher_usage(ctx: Context, out: Output) -> None:
    """The largest directories under /var/lib/rancher (images, volumes, etcd)."""
    target = paths.on_host(paths.K3S_DATA_DIR, ctx.root)
    if not target.is_dir():
        out.notes.append(f"{paths.K3S_DATA_DIR} does not exist: k3s is not installed")
        return
    listing = run_command(["du", "-x", "-k", "--max-depth=3", str(target)], timeout=55, ok=(0, 1))
    sizes = []
    for line in listing.splitlines():
        size, _, path = line.partition("\t")
        if size.isdigit():
            sizes.append((int(size), path))
    lines = [f"{size / 1024:10.1f} MiB  {path}" for size, path in sorted(sizes, reverse=True)[:40]]
    out.add("host/rancher-usage.txt", "\n".join(lines) + "\n")


# --- known values ----------------------------------------------------------------------


def local_known_values(root: Path | None) -> list[KnownValue]:
    """The secrets on this host that support must never see, wherever they turn up: the
    setup token, the k3s server token and the proxy password. Sources that do not exist
    yet are skipped; one that cannot be read (not root) is an error."""
    found = service_known_values(root)
    for path in paths.K3S_TOKENS:
        with contextlib.suppress(FileNotFoundError):
            found.append(KnownValue("k3s-token", paths.on_host(path, root).read_text().strip()))
    return found


def service_known_values(root: Path | None) -> list[KnownValue]:
    """The secrets the web service's user can read too: the setup token and the proxy
    password (its log lines are scrubbed of them)."""
    found = []
    with contextlib.suppress(token.NoValidToken):  # no token, nothing to keep out
        setup_token = token.read_token(root)
        # Both ways it is written: grouped on the banner and in links, compact when typed.
        found += [KnownValue("token", token.for_people(setup_token)),
                  KnownValue("token", setup_token)]
    # Read leniently: an invalid inputs file, and one moved aside, are collected too, and
    # may hold the password.
    inputs_path = state.SETUP_INPUTS.path(root)
    for path in (inputs_path, state.aside(inputs_path)):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, ValueError,
                                 AttributeError):
            inputs = json.loads(path.read_text())
            found += _proxy_credentials(inputs.get("proxy") or {})
    return found


def _proxy_credentials(proxy: dict) -> list[KnownValue]:
    """The proxy password, and the user and password as a Proxy-Authorization header carries
    them; also from an inputs file older than the user and password fields (in the URL)."""
    user, password = proxy.get("user"), proxy.get("password")
    legacy = urlsplit(proxy.get("url") or "")
    if legacy.password:
        user, password = unquote(legacy.username or ""), unquote(legacy.password)
    if not password:
        return []
    return [KnownValue("proxy-password", password),
            KnownValue("proxy-password", f"{user}:{password}")]


def site_names(root: Path | None) -> tuple[list[str], list[str]]:
    """What identifies the site, for --obfuscate-network: its host names (this host, the
    app's address, the proxy, mirrors) and its domains (resolv.conf's search list and the
    domains of those names). Public names setup contacts, and the product's own default
    host name, identify nothing and stay."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(paths.on_host(paths.HOSTNAME_FILE, root).read_text().strip())
    with contextlib.suppress(OSError, ValueError, AttributeError):
        inputs = json.loads(state.SETUP_INPUTS.path(root).read_text())
        names |= {_host(inputs.get("app_url")), _host((inputs.get("proxy") or {}).get("url")),
                  _host(inputs.get("overrides", {}).get("release_source"))}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        overrides = json.loads(state.ENDPOINTS.path(root).read_text())
        names |= {_host(value) for value in overrides.values() if isinstance(value, str)}
        names |= set(overrides.get("dns_names", []))
    names = {name.lower() for name in names if name and not _is_address(name)} - PUBLIC_NAMES
    domains = {name.split(".", 1)[1] for name in names if name.count(".") >= 2}
    with contextlib.suppress(OSError):
        for line in paths.on_host(paths.RESOLV_CONF, root).read_text().splitlines():
            if line.split()[:1] in (["search"], ["domain"]):
                domains |= {d.strip(".").lower() for d in line.split()[1:] if "." in d}
    return sorted(names), sorted(domains - PUBLIC_NAMES)


def _host(url: object) -> str | None:
    return urlsplit(url).hostname if isinstance(url, str) else None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def appliance_versions(ctx: Context, out: Output) -> None:
    """Which version of the appliance software runs (what `current` names) and which are
    installed beside it: after a self-update, the one before it (support's way back), and
    a `.<version>.partial` one cut short."""
    versions = paths.on_host(paths.VERSIONS_DIR, ctx.root)
    current = paths.on_host(paths.CURRENT_DIR, ctx.root)
    if not current.is_symlink():
        raise CollectorFailed(f"{paths.CURRENT_DIR} is not a link: no versioned install here")
    lines = [f"{paths.CURRENT_DIR} -> {current.readlink()}"]
    for directory in sorted(versions.iterdir()) if versions.is_dir() else ():
        marker = directory / "VERSION"
        found = marker.read_text(errors="replace").strip() if marker.is_file() else "no VERSION"
        lines.append(f"{paths.VERSIONS_DIR}/{directory.name}: {found}")
    out.add("host/appliance-versions.txt", "\n".join(lines) + "\n")


# --- the table -------------------------------------------------------------------------


def _kubernetes() -> Iterable[Collector]:
    for resource in ("namespaces", "nodes", "pods", "deployments", "statefulsets", "jobs",
                     "persistentvolumeclaims", "events", "secrets"):
        yield kube_objects(f"kubernetes/{resource}", resource)
    yield Collector("kubernetes/pod-logs", 120, failing_pod_logs)
    yield Collector("kubernetes/bootstrap-job", 30, bootstrap_job)


def _flux() -> Iterable[Collector]:
    for resource in ("gitrepositories", "ocirepositories", "kustomizations",
                     "helmrepositories", "helmcharts", "helmreleases"):
        yield kube_objects(f"flux/{resource}", resource)
    for controller in ("source-controller", "kustomize-controller", "helm-controller"):
        yield controller_logs(controller)


COLLECTORS: tuple[Collector, ...] = (
    *(state_file(source) for source in (
        state.INSTALL_STATE, state.PREFLIGHT_REPORT, state.STATUS, state.SELECTED_RELEASE,
        state.MAINTENANCE, state.SETUP_INPUTS, state.ENDPOINTS, state.HOST_CHANGES,
        state.UPDATE_HISTORY, state.SUPPORT_BUNDLE_STATUS, state.SETUP_REFUSAL,
        state.RELEASE_SOURCE, state.NETWORK, state.NETWORK_CHANGE, state.UPDATE_NOTICE,
        state.NETWORK_DIAGNOSTICS, state.NETWORK_DIAGNOSTICS_REPORT,
        state.BOOTSTRAP_LOG, state.HOST_RELEASE_TRUST, state.SELF_UPDATE_CHECK,
        state.SELF_UPDATE_JOURNAL)),
    Collector("host/appliance-versions", 5, appliance_versions),
    Collector("logs/phases", 10, phase_logs),
    journal("logs/journal-alga-appliance", "alga-appliance*"),
    journal("logs/journal-k3s", "k3s.service"),
    command("k3s/version", ["k3s", "--version"]),
    command("k3s/systemctl-status", ["systemctl", "status", "k3s.service", "--no-pager",
                                     "--full", "--lines", "50"], ok=(0, 3, 4)),
    host_file("k3s/config.yaml", paths.K3S_CONFIG),
    host_file("k3s/k3s.service.env", paths.K3S_ENV),
    *_kubernetes(),
    *_flux(),
    command("network/ip-addr", ["ip", "address", "show"]),
    command("network/ip-route", ["ip", "route", "show", "table", "all"]),
    host_file("network/resolv.conf", paths.RESOLV_CONF),
    host_file("network/resolved-upstream.conf", paths.RESOLVED_UPSTREAM),
    host_file("network/k3s-resolv.conf", paths.K3S_RESOLV_CONF),
    # The Network entry's file and journal (neither holds a secret: addresses only).
    host_file("network/netplan-alga-appliance.yaml", paths.NETPLAN_FILE),
    host_file("network/network.log", paths.NETWORK_LOG),
    command("network/resolvectl-status", ["resolvectl", "status", "--no-pager"]),
    Collector("network/dns-lookups", 60, dns_lookups),
    Collector("network/preflight-rerun", 120, preflight_rerun),
    command("host/df", ["df", "-h", "-T", "-x", "tmpfs", "-x", "devtmpfs", "-x", "squashfs",
                        "-x", "overlay"], ok=(0, 1)),
    Collector("host/rancher-usage", 60, rancher_usage),
    proc_file("host/meminfo", "/proc/meminfo"),
    proc_file("host/uptime", paths.UPTIME),
    proc_file("host/loadavg", "/proc/loadavg"),
    host_file("host/os-release", paths.OS_RELEASE),
    command("host/uname", ["uname", "-a"]),
    command("host/packages", ["dpkg-query", "--show", "--showformat",
                              "${Package} ${Version}\n", *PACKAGES], ok=(0, 1)),
)

