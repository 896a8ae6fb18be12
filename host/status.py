"""The status snapshot: one schema-validated document (status.json) of how far the
appliance has got, what blocks it, and what to do next. The web UI, the console and the
support bundle all read it; none of them work the answer out again.
"""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from host.cluster import alga, app_stage, readiness
from host.cluster.kube import Kube, KubeError
from host.cluster.probe import app_on_node, probe_login
from host.cluster.readiness import ClusterView, Verdict
from host.core import hostcmd, paths, state, words
from host.core.failures import SUPPORT_COMMAND
from host.net import addresses
from host.releases import channels, source

HEALTHY_INTERVAL = 60  # seconds between collections once fully healthy (the timer ticks 10 s)
DISK_PATHS = (paths.K3S_DATA_DIR, paths.STATE_DIR)
# A data path's file system fuller than this is a warning blocker: k3s stops pulling images
# and evicts pods near 85-90 % (its image GC and eviction thresholds), the database next.
DISK_WARN_PERCENT = 85
TIME_SYNC = {True: "synchronized", False: "not synchronized", None: "unknown"}
K3S_BOOT_GRACE_SECONDS = 300  # k3s serves its API within this after a boot, or something is wrong
PROBLEM_REASONS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerError",
                   "CreateContainerConfigError")
K3S_LOG = "the log of k3s says why"
CRASH_LOG = "the log of its last run says why it stopped"
UNSCHEDULABLE = "Unschedulable"  # the scheduler's reason for a pod it cannot place
LAYERS = ("host", "k3s", "flux", "core", "bootstrap", "login", "background")
PLATFORM_LAYERS = ("host", "k3s", "flux")
COMPONENT_LAYER = {**dict.fromkeys(("db", "redis", "pgbouncer"), "core"),
                   alga.ALGA_CORE: "login", "bootstrap": "bootstrap",
                   **dict.fromkeys(alga.BACKGROUND, "background")}


@dataclass(frozen=True)
class Cluster:
    view: ClusterView
    pods: list[dict]
    events: list[dict]


def read_cluster(kube: Kube) -> Cluster:
    view = readiness.read_view(kube)
    return Cluster(view, kube.list("pods", alga.APP_NAMESPACE),
                   kube.list("events", alga.APP_NAMESPACE))


def take_snapshot(root: Path | None, kube: Kube, probe=probe_login) -> dict:
    """Work out, write and return the status snapshot."""
    install = state.read(state.INSTALL_STATE, root)
    inputs = state.read(state.SETUP_INPUTS, root)
    previous = state.read(state.STATUS, root)
    cluster, api_error = None, None
    if _phase_done(install, "k3s"):
        try:
            cluster = read_cluster(kube)
        except KubeError as exc:
            api_error = str(exc)
    view = cluster.view if cluster else ClusterView()
    app_address = app_on_node(view, addresses.node_ip())
    login_probe = (probe(app_address) if cluster and inputs
                   else Verdict(False, "the app is not installed yet"))
    seen = bool(previous and previous["bootstrap_seen"])
    verdicts = readiness.tiers(view, login_probe, seen)
    at = state.timestamp()
    host = _host(root, view)
    channel = inputs["channel"] if inputs else channels.DEFAULT_CHANNEL
    blockers = _blockers(cluster, api_error, verdicts, _k3s_starting(host), channel)
    blockers += _disk_blockers(host)
    if verdicts["login"].ready:
        blockers += _public_url_blockers(inputs["app_url"], app_address, probe)
    tiers = _tiers(verdicts, previous, at, blockers, api_error, _k3s_starting(host))
    stage = _app_stage(install, tiers, at)
    app_failure = stage and cluster and app_stage.failure(
        stage, cluster.view, verdicts, blockers, _events(cluster), kube, app_address)
    if app_failure:
        for name in app_stage.BLOCKED_TIERS[app_failure["category"]]:
            if tiers[name]["state"] == "waiting":
                tiers[name]["state"] = "failing"
    snapshot = {
        "collected_at": at,
        "rollup": _labelled(_rollup(install, inputs, tiers, blockers, app_failure)),
        "app_failure": app_failure or None,
        "install": _install_summary(install),
        "release": _release(root),
        "tiers": tiers,
        "bootstrap_seen": seen or verdicts["bootstrap"].ready,
        "components": _components(cluster),
        "flux": _flux(cluster),
        "blockers": blockers,
        "events": _events(cluster),
        "host": host,
    }
    state.write(state.STATUS, snapshot, root)
    return snapshot


def due(root: Path | None) -> bool:
    """Whether the 10 s timer should collect now: always, but every 60 s once healthy."""
    previous = state.read(state.STATUS, root)
    if not previous or previous["rollup"]["state"] != "fully_healthy":
        return True
    path = state.STATUS.path(root)
    return time.time() - path.stat().st_mtime >= HEALTHY_INTERVAL


def _app_stage(install: dict | None, tiers: dict, at: str) -> app_stage.Stage | None:
    """A first install's app stage: setup has succeeded, and neither login nor the
    background has been up and dropped out since (that is degraded, not installing)."""
    release = (install or {}).get("phases", {}).get("release") or {}
    if not (install and install["status"] == "succeeded" and release.get("finished_at")):
        return None
    if tiers["login"]["degraded"] or tiers["background"]["degraded"] or \
            tiers["fully_healthy"]["ready"]:
        return None
    login = tiers["login"]
    return app_stage.Stage(state.moment(release["finished_at"]),
                           state.moment(login["since"]) if login["ready"] else None,
                           state.moment(at))


def _phase_done(install: dict | None, name: str) -> bool:
    record = (install or {}).get("phases", {}).get(name)
    return bool(record) and record["state"] in ("succeeded", "skipped")


def _release(root: Path | None) -> dict | None:
    """The installed release: its source, version and digest."""
    selection = state.read(state.SELECTED_RELEASE, root)
    return source.summary(selection) if selection else None


def _install_summary(install: dict | None) -> dict:
    if install is None:
        return {"status": "not_started", "current_phase": None, "phases": {}}
    return {"status": install["status"], "current_phase": install["current_phase"],
            "phases": {name: r["state"] for name, r in install["phases"].items()}}


def _tiers(verdicts: dict[str, Verdict], previous: dict | None, at: str,
           blockers: list[dict], api_error: str | None, k3s_starting: bool) -> dict:
    tiers = {}
    for name, verdict in verdicts.items():
        before = previous["tiers"][name] if previous else None
        title, meaning = words.TIERS[name]
        if api_error:  # nothing is known of the cluster: not "does not exist yet"
            tiers[name] = _unknown_tier(before, k3s_starting)
        else:
            changed = before is None or before["ready"] != verdict.ready
            # Once ready, a tier that drops out is degraded since then, not installing again.
            degraded = not verdict.ready and bool(before) and (
                before["ready"] or before["degraded"])
            tiers[name] = {"ready": verdict.ready, "reason": verdict.reason,
                           "since": at if changed else before["since"], "degraded": degraded,
                           "state": _tier_state(name, verdict.ready, degraded, blockers)}
        tiers[name] |= {"title": title, "meaning": meaning}
    return tiers


def _unknown_tier(before: dict | None, k3s_starting: bool) -> dict:
    """A tier while the cluster API does not answer: unknown, since when it last changed as
    far as anyone knows, and degraded if it was ready before."""
    return {"ready": False, "reason": words.API_STARTING if k3s_starting else words.API_DOWN,
            "since": before["since"] if before else None,
            "degraded": bool(before) and (before["ready"] or before["degraded"]),
            "state": "unknown"}


def _tier_state(name: str, ready: bool, degraded: bool, blockers: list[dict]) -> str:
    """ready; degraded (was ready); failing (a problem stands in its way); or waiting: not
    reached yet while the install works towards it, which is no fault. A background
    problem is a warning (login works without it), yet it fails the background tier
    unless it is a pod waiting for room."""
    if ready or degraded:
        return "ready" if ready else "degraded"
    failing = [b for b in blockers if b["severity"] == "critical"]
    if name == "platform":
        failing = [b for b in failing if b["layer"] in PLATFORM_LAYERS]
    elif name in ("background", "fully_healthy"):
        failing += [b for b in blockers if _background_failure(b)]
        if name == "background":
            failing = [b for b in failing if b["layer"] == "background"]
    else:  # core, bootstrap and login stand or fall together
        failing = [b for b in failing if b["blocks_login"]]
    return "failing" if failing else "waiting"


def _background_failure(blocker: dict) -> bool:
    """A background problem (a warning: login works without it) that fails the background
    all the same: anything but a pod waiting for room to run."""
    detail = blocker["detail"]
    return blocker["layer"] == "background" and bool(detail) and not (
        detail["kind"] == "Pod" and detail["reason"] not in PROBLEM_REASONS)


def _component_of(pod: dict) -> str:
    owners = pod["metadata"].get("ownerReferences", [])
    name = pod["metadata"]["name"]
    if name.startswith(alga.BOOTSTRAP_JOB_PREFIX):
        return "bootstrap"
    if owners and owners[0]["kind"] == "StatefulSet":
        return owners[0]["name"]
    if owners and owners[0]["kind"] == "ReplicaSet":
        return owners[0]["name"].rsplit("-", 1)[0]
    return name


def _pod_problems(pod: dict) -> list[dict]:
    """What is wrong with a pod, as Kubernetes says it: {reason, message}; an unschedulable
    pod's reason is its PodScheduled condition's (Unschedulable)."""
    problems = []
    for container in pod.get("status", {}).get("containerStatuses", []):
        waiting = container.get("state", {}).get("waiting")
        if waiting and waiting.get("reason") in PROBLEM_REASONS:
            problems.append({"reason": waiting["reason"], "message": waiting.get("message", "")})
    unschedulable = readiness.condition(pod, "PodScheduled")
    if pod.get("status", {}).get("phase") == "Pending" and unschedulable and \
            unschedulable["status"] == "False":
        problems.append({"reason": unschedulable.get("reason") or UNSCHEDULABLE,
                         "message": unschedulable.get("message", "unschedulable")})
    return problems


def _problem_words(problem: dict) -> str:
    """A pod's problem as the pods table has always listed it."""
    if problem["reason"] in PROBLEM_REASONS:
        return problem["reason"]
    return f"Pending: {problem['message']}"


def _blocker(severity, component, layer, reason, next_action, detail,
             blocks_login=None, label=None) -> dict:
    """A problem: in plain words (label, reason, next_action) with the Kubernetes object
    and what it says in `detail` (None when no Kubernetes object is concerned)."""
    return {"severity": severity, "component": component,
            "label": label or words.label(component), "layer": layer, "reason": reason,
            "next_action": next_action, "detail": detail,
            "blocks_login": layer != "background" if blocks_login is None else blocks_login}


def _detail(kind: str, name: str, reason: str, message: str) -> dict:
    return {"kind": kind, "name": name, "reason": reason, "message": message}


def _blockers(cluster: Cluster | None, api_error: str | None, verdicts: dict,
              k3s_starting: bool, channel: str) -> list[dict]:
    found = []
    if api_error and k3s_starting:
        found.append(_blocker("warning", "kubernetes-api", "k3s",
                              "k3s is starting; the cluster API answers once it has started",
                              "wait; k3s takes a minute or two to start after a boot",
                              _detail("Service", "k3s", "Starting", api_error)))
    elif api_error:
        found.append(_blocker("critical", "kubernetes-api", "k3s",
                              "the cluster API is not answering",
                              f"{words.read_log('k3s', K3S_LOG)}; "
                              f"then send the support bundle ({SUPPORT_COMMAND})",
                              _detail("Service", "k3s", "Unreachable", api_error)))
    if cluster is None:
        return found
    node = readiness.node_ready(cluster.view)
    if not node.ready:
        found.append(_blocker("critical", "node", "k3s",
                              "this appliance's cluster node is not ready: nothing can run",
                              f"check free memory and disk under Host on the status page; "
                              f"{words.read_log('k3s', K3S_LOG)}",
                              _detail("Node", ", ".join(n["metadata"]["name"]
                                                        for n in cluster.view.nodes),
                                      "NotReady", node.reason)))
    for kind, items in cluster.view.flux_objects().items():
        for obj in items:
            ready = readiness.flux_failure(obj, cluster.view)
            if ready:
                name = obj["metadata"]["name"]
                label = words.flux_label(kind, name)
                message = ready.get("message", "")
                layer = _flux_layer(name)
                found.append(_blocker(
                    "warning" if layer == "background" else "critical", f"{kind}/{name}", layer,
                    f"{label} failed" + (f": {message}" if message else ""),
                    _flux_next_action(obj, ready, channel),
                    _detail(kind, f"{obj['metadata']['namespace']}/{name}",
                            ready.get("reason", ""), message), label=label))
    if "failed" in verdicts["bootstrap"].reason:
        job = readiness.bootstrap_job(cluster.view)
        failed = readiness.condition(job, "Failed") or {}
        found.append(_blocker("critical", "bootstrap", "bootstrap",
                              "the app's first-run setup failed",
                              f"{words.read_log('bootstrap', 'its log says why')}; then "
                              f"send the support bundle ({SUPPORT_COMMAND}) to Alga support",
                              _detail("Job", job["metadata"]["name"],
                                      failed.get("reason", "Failed"),
                                      failed.get("message", ""))))
    for pod in cluster.pods:
        for problem in _pod_problems(pod):
            component = _component_of(pod)
            layer = COMPONENT_LAYER.get(component, "background")
            found.append(_blocker(_pod_severity(problem, layer), component, layer,
                                  _pod_reason(component, problem),
                                  _pod_next_action(component, problem),
                                  _detail("Pod", pod["metadata"]["name"], problem["reason"],
                                          problem["message"])))
    return sorted(found, key=lambda b: (not b["blocks_login"], b["severity"] != "critical",
                                        LAYERS.index(b["layer"])))


def _pod_severity(problem: dict, layer: str) -> str:
    """Critical only when it keeps people from logging in: a background service's problem
    never takes login away (the rollup says so too), and a pod waiting for room is often
    brief while installing."""
    if layer == "background" or problem["reason"] not in PROBLEM_REASONS:
        return "warning"
    return "critical"


def _public_url_blockers(app_url: str, app_address: str, probe) -> list[dict]:
    """A warning when the public app URL does not answer from the appliance itself. That is
    often fine for the admin's browser, so it never blocks login nor hides "Open Alga"."""
    if _same_origin(app_url, app_address):
        return []
    verdict = probe(app_url)
    if verdict.ready:
        return []
    return [_blocker(
        "warning", "app-url", "login",
        f"the app URL does not answer from the appliance ({verdict.reason}), though Alga "
        f"answers at {app_address}. Often harmless: TLS may end on a proxy or load balancer "
        f"in front of the appliance, the name may resolve to another address inside the site "
        f"(split-horizon DNS), or the router may not send the public address back inside "
        f"(hairpin NAT)",
        f"open {app_url} from a computer on your network; if it does not open there, check "
        f"its DNS record and the proxy or load balancer in front of this node (Alga listens "
        f"on {app_address})", None, blocks_login=False)]


def _same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _flux_next_action(obj: dict, ready: dict, channel: str) -> str:
    kind = obj["kind"]
    if kind == "OCIRepository" and "MANIFEST_UNKNOWN" in ready.get("message", ""):
        # The registry no longer has the pinned config bundle: Flux runs on what it stored
        # until it must pull again (after a restart), and only another release mends that.
        return ("the installed release's config bundle is no longer published (withdrawn): "
                "update to what the channel names now (Updates on the status page, or "
                f"`sudo alga-appliance update --channel {channel}`)")
    log = words.flux_log(kind)
    return (f"{words.read_log(log, f'the log of {log} says why')}; then send the support bundle "
            f"({SUPPORT_COMMAND})")


def _flux_layer(name: str) -> str:
    """background for the background Kustomization and the background services' releases
    and charts: their failures never take login away."""
    background = name == alga.BACKGROUND_KUSTOMIZATION or _release_of(name) in alga.BACKGROUND
    return "background" if background else "flux"


def _release_of(name: str) -> str:
    """The Helm release a Flux object belongs to by name: a HelmChart is named
    <release namespace>-<release>, a HelmRelease after itself."""
    return name.removeprefix(f"{alga.ALGA_SYSTEM}-")


def _pod_reason(component: str, problem: dict) -> str:
    label = words.label(component)
    if problem["reason"] == "CrashLoopBackOff":
        return f"{label} keeps stopping and restarting (a crash loop)"
    if problem["reason"] in ("ImagePullBackOff", "ErrImagePull"):
        return f"{label} cannot download its software (container image)"
    if problem["reason"] in PROBLEM_REASONS:
        return f"{label} cannot start: its container cannot be created"
    return f"{label} is waiting for room to run (storage or capacity)"


def _pod_next_action(component: str, problem: dict) -> str:
    log = words.log_of(component)
    if problem["reason"] in ("ImagePullBackOff", "ErrImagePull"):
        return ("check that this appliance reaches ghcr.io (proxy, firewall), and see Recent "
                f"warning events on the status page; then send the support bundle "
                f"({SUPPORT_COMMAND})")
    if problem["reason"] not in PROBLEM_REASONS:
        return ("check free disk and memory under Host on the status page, and see Recent "
                "warning events there; while installing this is often brief")
    if problem["reason"] == "CrashLoopBackOff" and log:  # it ran and stopped: its log says why
        return (f"{words.read_log(log, CRASH_LOG)}; then send "
                f"the support bundle ({SUPPORT_COMMAND})")
    return (f"see Recent warning events on the status page: they say why; then send the support "
            f"bundle ({SUPPORT_COMMAND})")


def _labelled(rollup: dict) -> dict:
    return {**rollup, "label": words.ROLLUP[rollup["state"]]}


def _rollup(install, inputs, tiers, blockers, app_failure) -> dict:
    if inputs is None and install is None:
        return {"state": "setup_required", "message": "Setup has not been submitted.",
                "next_action": _open_setup(addresses.node_ip())}
    if install and install["status"] == "failed":
        name, record = next((n, r) for n, r in install["phases"].items()
                            if r["state"] == "failed")
        return {"state": "failed_action_required",
                "message": f"Setup failed in {name}: {record['failure']['suspected_cause']}",
                "next_action": record["failure"]["next_step"]}
    if app_failure:
        return _app_stage_rollup(app_failure, tiers["login"]["ready"])
    login, background = tiers["login"], tiers["background"]
    if login["ready"]:
        wrong = [b for b in blockers if b["severity"] == "critical" or _background_failure(b)]
        if background["ready"] and tiers["platform"]["ready"] and not wrong:
            return {"state": "fully_healthy", "message": "Alga is up, with every service.",
                    "next_action": "log in"}
        if blockers:  # the app answers, but something (background, Flux, the node) is wrong
            return {"state": "ready_with_background_issues",
                    "message": f"You can log in, but {blockers[0]['reason']}",
                    "next_action": blockers[0]["next_action"]}
        return {"state": "ready_to_log_in",
                "message": "You can log in; background services are still starting.",
                "next_action": "log in"}
    critical = [b for b in blockers if b["blocks_login"] and b["severity"] == "critical"]
    if login["degraded"] or critical:
        reason = critical[0]["reason"] if critical else login["reason"]
        since = f" (degraded since {login['since']})" if login["degraded"] else ""
        return {"state": "failed_action_required", "message": f"Alga is not available{since}: "
                f"{reason}", "next_action": critical[0]["next_action"] if critical
                else f"wait a minute; if it persists, {SUPPORT_COMMAND}"}
    waiting = next((b for b in blockers if b["blocks_login"]), None)
    if waiting:  # e.g. a pod Pending on storage: often brief while installing, so a warning
        return {"state": "installing", "message": f"Installing; {waiting['reason']}",
                "next_action": waiting["next_action"]}
    return {"state": "installing", "message": f"Installing: {login['reason']}",
            "next_action": "wait; this page updates by itself"}


def _app_stage_rollup(failure: dict, login_ready: bool) -> dict:
    message = f"Setup's app stage failed [{failure['category']}]: {failure['suspected_cause']}"
    if login_ready:  # only the background services: the app itself is usable
        return {"state": "ready_with_background_issues",
                "message": f"You can log in, but {failure['suspected_cause']}",
                "next_action": failure["next_step"]}
    return {"state": "failed_action_required", "message": message,
            "next_action": failure["next_step"]}


def _open_setup(node_ip: str) -> str:
    if node_ip == "127.0.0.1":  # no network yet (before DHCP): no address to give
        return (f"connect this node to a network, then open http://<its address>:"
                f"{paths.WEB_PORT}/setup")
    return f"open http://{node_ip}:{paths.WEB_PORT}/setup"


def _components(cluster: Cluster | None) -> dict:
    if cluster is None:
        return {"workloads": [], "pods": []}
    restarts: dict[str, int] = {}
    for pod in cluster.pods:
        restarts[_component_of(pod)] = restarts.get(_component_of(pod), 0) + sum(
            c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", []))
    workloads = []
    for kind, items in (("StatefulSet", cluster.view.statefulsets),
                        ("Deployment", cluster.view.deployments), ("Job", cluster.view.jobs)):
        for obj in items:
            containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get(
                "containers", [])
            status = obj.get("status", {})
            workloads.append({
                "kind": kind, "name": obj["metadata"]["name"],
                "desired": obj.get("spec", {}).get("replicas", obj.get("spec", {}).get(
                    "completions", 1)),
                "ready": status.get("readyReplicas", status.get("succeeded", 0)),
                "restarts": restarts.get("bootstrap" if kind == "Job" else
                                         obj["metadata"]["name"], 0),
                "images": [c.get("image", "") for c in containers]})
    pods = []
    for pod in cluster.pods:
        statuses = pod.get("status", {}).get("containerStatuses", [])
        terminated = [c.get("lastState", {}).get("terminated") for c in statuses]
        pods.append({
            "name": pod["metadata"]["name"], "component": _component_of(pod),
            "phase": pod.get("status", {}).get("phase", "Unknown"),
            "reasons": [_problem_words(p) for p in _pod_problems(pod)],
            "restarts": sum(c.get("restartCount", 0) for c in statuses),
            "last_termination": next((t.get("reason") for t in terminated if t), None)})
    return {"workloads": workloads, "pods": pods}


def _flux(cluster: Cluster | None) -> list[dict]:
    if cluster is None:
        return []
    out = []
    for kind, items in cluster.view.flux_objects().items():
        for obj in items:
            ready = readiness.condition(obj, "Ready")
            status = obj.get("status", {})
            revision = status.get("artifact", {}).get("revision") or status.get(
                "lastAppliedRevision") or status.get("lastAttemptedRevision")
            out.append({
                "kind": kind, "name": obj["metadata"]["name"],
                "ready": None if ready is None else ready["status"] == "True",
                "reason": (ready or {}).get("reason", ""),
                "message": (ready or {}).get("message", ""), "revision": revision,
                "generation_current": status.get("observedGeneration") == obj["metadata"].get(
                    "generation")})
    return out


def _events(cluster: Cluster | None) -> list[dict]:
    if cluster is None:
        return []
    warnings = [e for e in cluster.events if e.get("type") == "Warning"]
    warnings.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
                  reverse=True)
    return [{"time": e.get("lastTimestamp") or e.get("eventTime"),
             "object": f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}",
             "reason": e.get("reason", ""), "message": e.get("message", "")}
            for e in warnings[:20]]


def _k3s_starting(host: dict) -> bool:
    """After a boot k3s is queued, then `activating` until its API serves (Type=notify):
    that takes a minute or two and is no fault yet."""
    return host["k3s_state"] == "activating" or (
        host["k3s_state"] != "failed" and host["uptime_seconds"] < K3S_BOOT_GRACE_SECONDS)


def uptime_seconds() -> float:
    return float(Path(paths.UPTIME).read_text().split()[0])


def _host(root: Path | None, view: ClusterView) -> dict:
    try:
        k3s_state = hostcmd.run(["systemctl", "is-active", "k3s.service"]).strip()
    except hostcmd.CommandFailed as exc:
        k3s_state = str(exc).rsplit(": ", 1)[-1] or "inactive"
    disk = []
    for path in DISK_PATHS:
        target = paths.on_host(path, root)
        while not target.exists():
            target = target.parent
        usage = shutil.disk_usage(target)
        used = round(100 * (usage.total - usage.free) / usage.total, 1) if usage.total else 0
        disk.append({"path": path, "free_bytes": usage.free, "total_bytes": usage.total,
                     "used_percent": used})
    return {"k3s_state": k3s_state,
            "k3s_version": readiness.k3s_version(view),
            "disk": disk, "disk_warn_percent": DISK_WARN_PERCENT, "memory": memory(),
            "time_sync": TIME_SYNC[hostcmd.ntp_synchronized()],
            "node_ip": addresses.node_ip(), "uptime_seconds": uptime_seconds()}


def memory() -> dict | None:
    """Total and available memory from /proc/meminfo; None when it does not say both."""
    try:
        text = Path(paths.MEMINFO).read_text(errors="replace")
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        number, _, unit = value.strip().partition(" ")
        # isdigit() alone takes "²", which int() refuses; the kernel writes ASCII digits.
        if name in ("MemTotal", "MemAvailable") and number.isascii() and number.isdigit() \
                and unit == "kB":
            found[name] = int(number) * 1024
    if len(found) != 2:
        return None
    return {"total_bytes": found["MemTotal"], "available_bytes": found["MemAvailable"]}


def _disk_blockers(host: dict) -> list[dict]:
    """A data path's file system over DISK_WARN_PERCENT: a warning, with where to see what
    fills it (the bundle lists /var/lib/rancher's largest directories, where images and the
    app's volumes grow)."""
    return [_blocker("warning", f"disk {d['path']}", "host",
                     f"the file system holding {d['path']} is {d['used_percent']:.0f} % full "
                     f"(warning above {DISK_WARN_PERCENT} %); when it fills, k3s evicts the "
                     "app's pods and the database stops writing",
                     "grow the disk (then its file system) or free space: the support "
                     f"bundle (`{SUPPORT_COMMAND}`) lists the largest directories",
                     None, blocks_login=False)
            for d in host["disk"] if d["used_percent"] > DISK_WARN_PERCENT]
