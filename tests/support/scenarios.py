"""Status scenarios (plain helpers): the stages of a fresh install and a background
crash-loop as cluster views, and `collect`, the status collector run on a host root
against the fake cluster (support.cluster) and a real login probe of alga_server, the app
where alga-core serves it."""

import json
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from host import status
from host.cluster.alga import APP_PORT, BACKGROUND
from host.cluster.kube import Kube
from host.cluster.readiness import ClusterView
from host.core import state
from support.builders import healthy, job, node, pod, store_for, workload
from support.netlab import HttpsServer, Route, free_loopback_address


def alga_server(routes: dict[str, Route]) -> HttpsServer:
    """alga-core's server as it listens: plain HTTP on the node's address, port 3000."""
    return HttpsServer(None, routes, address=free_loopback_address(), port=APP_PORT)


def collect(root: Path, view: ClusterView | None = None, pods=(), events=()) -> dict:
    """The collector; the view's node is where the lab's app (the app URL) listens."""
    if view is not None:
        address = urlsplit(state.read(state.SETUP_INPUTS, root)["app_url"]).hostname
        view = replace(view, nodes=[node(n["status"]["conditions"][0]["status"], address)
                                    for n in view.nodes])
        (root / "store.json").write_text(json.dumps(store_for(view, pods, events)))
    return status.take_snapshot(root, Kube(str(root / "k3s.yaml")),
                          probe=lambda url: status.probe_login(url, timeout=1.0))


def stage(name: str) -> ClusterView:
    view = healthy()
    if name == "empty":
        return ClusterView(nodes=[node()])
    if name == "platform":
        return ClusterView(nodes=view.nodes, gitrepositories=view.gitrepositories,
                           kustomizations=view.kustomizations)
    if name == "core":
        view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
        view.jobs, view.helmreleases = [job("alga-core-sebastian-bootstrap-r1")], []
        return view
    if name == "bootstrap":
        view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
        return view
    if name == "login":
        view.deployments = [d for d in view.deployments
                            if d["metadata"]["name"] not in BACKGROUND]
        return view
    return view


def temporal_worker_crashloop() -> tuple[ClusterView, list[dict]]:
    """Everything healthy but a background worker, crash-looping."""
    view = healthy()
    view.deployments = [workload("Deployment", "temporal-worker", 0)
                        if d["metadata"]["name"] == "temporal-worker" else d
                        for d in view.deployments]
    return view, [pod("temporal-worker-5d9c-x1", "ReplicaSet", "temporal-worker-5d9c",
                      waiting="CrashLoopBackOff", restarts=7)]


def assert_kubectl_runs_as_written(text: str, root) -> None:
    """Every kubectl command in `text` works on the appliance as written: with sudo (k3s's
    kubeconfig is root's), no placeholders, only options kubectl has, naming objects that
    exist (asked of the cluster as `kubectl get`)."""
    kube = Kube(str(root / "k3s.yaml"))
    commands = [c for c in re.findall(r"`([^`]*)`", text) if "kubectl" in c]
    for command in commands:
        assert command.startswith("sudo kubectl ") and not re.search("[<>…]", command), command
        words = command.split()[2:]
        namespace = None
        if words[0] == "-n":
            namespace, words = words[1], words[2:]
        verb, *rest = words
        if verb in ("describe", "delete"):
            assert len(rest) == 2 and kube.get(rest[0], rest[1], namespace), command
        elif verb == "logs":
            target, *options = rest
            kind, name = target.split("/") if "/" in target else ("pod", target)
            assert kube.get(kind, name, namespace), command
            assert set(options) <= {"--all-containers", "--previous"}, command
        else:
            assert verb == "get" and len(rest) == 1, command
            for resource in rest[0].split(","):
                kube.list(resource, namespace)  # KubeError for a type kubectl does not know
