"""Kubernetes and Flux objects in the real API formats, as the cluster reports them, and
the views and stores the readiness, status and bundle code read (plain helpers)."""

import dataclasses
from pathlib import Path

from host.cluster.alga import BACKGROUND
from host.cluster.readiness import ClusterView
from host.core import state
from host.setup import chain
from support.base import make_host_root

INSTALLED = {"status": "succeeded", "current_phase": None, "updated_at": "2026-11-27T10:00:00Z",
             "phases": {p: {"state": "succeeded", "started_at": None, "finished_at": None,
                            "last_action": None, "failure": None}
                        for p in chain.NAMES}}

# Selected releases (selected-release.json) of each source kind, for building objects.
GIT_SELECTION = {"source": "git", "channel": "stable", "release_version": "1.0",
                 "app_version": "1.0", "release_branch": "release/1.0.0",
                 "repo_url": "https://github.com/Nine-Minds/alga-psa",
                 "repo_branch": "release/1.0.0",
                 "images": {"algaCore": "eaec6253", "workflowWorker": "a2cbb43",
                            "emailService": "61e4a00e", "temporalWorker": "b77"}}
OCI_SELECTION = {"source": "oci", "channel": "stable", "release_version": "1.0.3",
                 "app_version": "1.0.3", "registry": "ghcr.io",
                 "repository": "nine-minds/alga-appliance-release",
                 "manifest_digest": "sha256:" + "a" * 64, "images": {"algaCore": "62cdce38"},
                 "config": {"repository": "ghcr.io/nine-minds/alga-appliance-config",
                            "tag": "1.0.3", "digest": "sha256:" + "b" * 64}}


def workload(kind: str, name: str, ready: int, replicas: int = 1, generation: int = 1,
             observed: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "msp", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": replicas,
                       "readyReplicas": ready}}


def flux(kind: str, api: str, name: str, namespace: str, ready: str, reason: str = "Succeeded",
         message: str = "", generation: int = 1, observed: int = 1) -> dict:
    return {"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "generation": generation},
            "status": {"observedGeneration": observed, "conditions": [
                {"type": "Ready", "status": ready, "reason": reason, "message": message,
                 "lastTransitionTime": "2026-11-27T10:00:00Z"}]}}


K3S_RUNNING = "v1.33.4+k3s1"  # not the pin: status must say what runs


def node(ready: str = "True", address: str | None = None) -> dict:
    """The k3s node as the API reports it: at `address` (its InternalIP) when given."""
    addresses = [{"type": "InternalIP", "address": address}] if address else []
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "alga-appliance"},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "addresses": [*addresses, {"type": "Hostname",
                                                  "address": "alga-appliance"}],
                       "nodeInfo": {"kubeletVersion": K3S_RUNNING}}}


def job(name: str, complete: bool = False, failed: bool = False) -> dict:
    conditions = ([{"type": "Complete", "status": "True"}] if complete else []) + (
        [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
        if failed else [])
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "msp"}, "status": {"conditions": conditions}}


def healthy() -> ClusterView:
    return ClusterView(
        nodes=[node()],
        statefulsets=[workload("StatefulSet", "db", 1), workload("StatefulSet", "redis", 1)],
        deployments=[workload("Deployment", n, 1) for n in
                     ("pgbouncer", "alga-core-sebastian", *BACKGROUND)],
        jobs=[job("alga-core-sebastian-bootstrap-r1", complete=True)],
        gitrepositories=[flux("GitRepository", "source.toolkit.fluxcd.io/v1", "alga-appliance",
                              "flux-system", "True")],
        kustomizations=[flux("Kustomization", "kustomize.toolkit.fluxcd.io/v1", "alga-platform",
                             "flux-system", "True")],
        helmreleases=[flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core", "alga-system",
                           "True")])


CONFIG_URL = "oci://ghcr.io/nine-minds/alga-appliance-config"
CONFIG_DIGEST = "sha256:" + "5e" * 32


def oci_source(ready: str = "True", reason: str = "Succeeded", message: str = "") -> dict:
    """OCIRepository alga-appliance pinned to CONFIG_DIGEST, as source-controller reports it:
    Ready with its artifact at the digest, or failing with `reason` and `message`."""
    obj = flux("OCIRepository", "source.toolkit.fluxcd.io/v1", "alga-appliance", "flux-system",
               ready, reason, message or f"stored artifact for digest '{CONFIG_DIGEST}'")
    obj["spec"] = {"url": CONFIG_URL, "ref": {"digest": CONFIG_DIGEST}, "interval": "1m"}
    if ready == "True":
        path = f"ocirepository/flux-system/alga-appliance/{CONFIG_DIGEST}.tar.gz"
        obj["status"]["artifact"] = {
            "path": path, "revision": CONFIG_DIGEST, "digest": "sha256:" + "a1" * 32,
            "url": f"http://source-controller.flux-system.svc.cluster.local./{path}",
            "lastUpdateTime": "2026-11-27T10:00:00Z", "size": 4096}
    return obj


def kustomization(name: str, source_kind: str, ready: str = "True",
                  reason: str = "ReconciliationSucceeded", message: str = "") -> dict:
    """A Kustomization in flux-system reconciling from the alga-appliance source of
    `source_kind`."""
    obj = flux("Kustomization", "kustomize.toolkit.fluxcd.io/v1", name, "flux-system", ready,
               reason, message)
    obj["spec"] = {"interval": "5m", "path": "./base", "prune": True,
                   "sourceRef": {"kind": source_kind, "name": "alga-appliance"}}
    return obj


def oci_release() -> ClusterView:
    """A healthy cluster installed from an OCI release: the OCIRepository in place of the
    GitRepository, the root Kustomization on it, the chart repository and a chart."""
    view = healthy()
    view.gitrepositories = []
    view.ocirepositories = [oci_source()]
    root = kustomization("alga-appliance", "OCIRepository",
                         message=f"Applied revision: {CONFIG_DIGEST}")
    root["status"]["lastAppliedRevision"] = root["status"]["lastAttemptedRevision"] = \
        CONFIG_DIGEST
    view.kustomizations = [root, *view.kustomizations]
    view.helmrepositories = [{  # type oci: a static object, without status
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "alga-charts", "namespace": "flux-system", "generation": 1},
        "spec": {"type": "oci", "url": "oci://ghcr.io/nine-minds/charts", "interval": "5m"}}]
    view.helmcharts = [flux("HelmChart", "source.toolkit.fluxcd.io/v1", "alga-system-alga-core",
                            "flux-system", "True", "ChartPullSucceeded",
                            "pulled 'sebastian' chart with version '0.0.1'")]
    return view


def pod(name: str, owner_kind: str, owner: str, phase: str = "Running", waiting: str = "",
        restarts: int = 0, unschedulable: str = "") -> dict:
    container = {"name": "main", "restartCount": restarts, "ready": not waiting,
                 "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}
    if restarts:
        container["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1}}
    conditions = ([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": unschedulable}] if unschedulable else [])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "msp",
                         "ownerReferences": [{"kind": owner_kind, "name": owner}]},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [] if unschedulable else [container]}}


def event(name: str, reason: str, message: str, at: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason,
            "message": message, "lastTimestamp": at,
            "metadata": {"name": f"{name}.1", "namespace": "msp"},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": "msp"}}


def store_for(view: ClusterView, pods=(), events=()) -> dict:
    store = {}
    kinds = [getattr(view, f.name) for f in dataclasses.fields(view)]
    for items in (*kinds, pods, events):
        for obj in items:
            key = "/".join([obj["kind"], obj["metadata"].get("namespace", ""),
                            obj["metadata"]["name"]])
            store[key] = obj
    return store


def installed_root(root: Path) -> Path:
    """A host root where setup has completed: setup inputs and a succeeded install state."""
    make_host_root(root)
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://127.0.0.1:1",
                                     "dns": {"mode": "system"}, "proxy": None, "overrides": {}},
                root)
    state.write(state.INSTALL_STATE, INSTALLED, root)
    return root
