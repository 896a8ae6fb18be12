"""Status scenarios (plain helpers): the stages of a fresh install and a background
crash-loop as cluster views, and `collect`, the status collector run on a host root
against the fake cluster (support.cluster) and a real login probe."""

import json
from pathlib import Path

from host import status
from host.cluster.alga import BACKGROUND
from host.cluster.kube import Kube
from host.cluster.readiness import ClusterView
from support.builders import healthy, job, node, pod, store_for, workload


def collect(root: Path, view: ClusterView | None = None, pods=(), events=()) -> dict:
    if view is not None:
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
