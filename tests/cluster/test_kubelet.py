"""The stand-in kubelet (support.kubelet) against the real API server: what it writes is
accepted by the real pods/status and nodes/status validation, and the appliance's readiness
code reads it as it reads a real node. Pods are bound to the node directly (spec.nodeName),
as the scheduler would bind them."""

import json
import os
import time

import pytest
from support.kubelet import NODE_NAME, Api, Kubelet

from host.cluster import readiness
from host.cluster.kube import Kube

NAMESPACE = "msp"


@pytest.fixture
def api(real_api):
    real_api.kubectl("create", "namespace", NAMESPACE)
    # What kube-controller-manager's service account controller would create (not run here);
    # the API server's admission refuses pods without it.
    real_api.kubectl("create", "serviceaccount", "default", "--namespace", NAMESPACE)
    return real_api


def pod(name: str, owner_kind: str | None = None) -> dict:
    metadata = {"name": name, "namespace": NAMESPACE}
    if owner_kind:  # an owner that does not exist is fine for the API server
        metadata["ownerReferences"] = [{"apiVersion": "batch/v1" if owner_kind == "Job"
                                        else "apps/v1", "kind": owner_kind,
                                        "name": name.rsplit("-", 1)[0],
                                        "uid": "00000000-0000-0000-0000-000000000001"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {
        "nodeName": NODE_NAME, "restartPolicy": "Never" if owner_kind == "Job" else "Always",
        "containers": [{"name": "main", "image": f"ghcr.io/nine-minds/{name}:1.0"}]}}


def wait_for(api, kubelet: Kubelet, name: str, done, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = api.get("pod", name, NAMESPACE)
        if done(found.get("status", {})):
            return found
        assert time.monotonic() < deadline, (found.get("status"), kubelet.last_error)
        time.sleep(0.2)


def test_the_node_registers_ready_as_a_kubelet_reports_it(api):
    with Kubelet(Api.from_kubeconfig(api.kubeconfig)):
        node = api.get("node", NODE_NAME)
    ready = readiness.condition(node, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.3+k3s1"
    view = readiness.read_view(Kube(str(api.kubeconfig)))
    assert readiness.node_ready(view).ready


def test_pods_run_ready_and_job_pods_succeed(api):
    for name, owner in (("pgbouncer-7d4b9-x1", "ReplicaSet"),
                        ("alga-core-sebastian-bootstrap-r1-abcde", "Job")):
        api.kubectl("apply", "-f", "-", input=json.dumps(pod(name, owner)))
    with Kubelet(Api.from_kubeconfig(api.kubeconfig)) as kubelet:
        running = wait_for(api, kubelet, "pgbouncer-7d4b9-x1",
                           lambda s: s.get("phase") == "Running")
        done = wait_for(api, kubelet, "alga-core-sebastian-bootstrap-r1-abcde",
                        lambda s: s.get("phase") == "Succeeded")
        # A pod being deleted goes once the kubelet confirms it (its grace period is 30 s).
        started = time.monotonic()
        api.kubectl("delete", "pod", "pgbouncer-7d4b9-x1", "--namespace", NAMESPACE,
                    "--wait=true", "--timeout=20s")
        assert time.monotonic() - started < 20
    assert kubelet.last_error is None
    assert readiness.condition(running, "Ready")["status"] == "True"
    [container] = running["status"]["containerStatuses"]
    assert container["ready"] and "running" in container["state"]
    assert running["status"]["qosClass"] == "BestEffort"  # filled in by the real API server
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert readiness.condition(done, "Ready")["reason"] == "PodCompleted"


def test_knobs_write_what_a_kubelet_writes_for_failing_pods(api):
    for name in ("temporal-worker-5d9c-x1", "email-service-6f8-x1", "workflow-worker-77-x1"):
        api.kubectl("apply", "-f", "-", input=json.dumps(pod(name, "ReplicaSet")))
    with Kubelet(Api.from_kubeconfig(api.kubeconfig), crash_looping={"temporal-worker"},
                 image_pull_failing={"email-service"}, pending={"workflow-worker"}) as kubelet:
        looping = wait_for(api, kubelet, "temporal-worker-5d9c-x1",
                           lambda s: s.get("containerStatuses"))
        pulling = wait_for(api, kubelet, "email-service-6f8-x1",
                           lambda s: s.get("containerStatuses"))
        time.sleep(1)
        pending = api.get("pod", "workflow-worker-77-x1", NAMESPACE)
    assert kubelet.last_error is None
    [container] = looping["status"]["containerStatuses"]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["restartCount"] >= 1 and not container["ready"]
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert readiness.condition(looping, "Ready")["reason"] == "ContainersNotReady"
    waiting = pulling["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "ImagePullBackOff",
                       "message": 'Back-off pulling image "ghcr.io/nine-minds/'
                                  'email-service-6f8-x1:1.0"'}
    assert pulling["status"]["phase"] == "Pending"
    assert pending["status"].get("phase") == "Pending" and "containerStatuses" not in pending[
        "status"]


# --- with the controller manager and the scheduler --------------------------------------


def deployment(name: str) -> dict:
    labels = {"app.kubernetes.io/name": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main",
                                         "image": f"ghcr.io/nine-minds/{name}:1.0"}]}}}}


def bootstrap_job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "bootstrap", "image": "ghcr.io/nine-minds/setup:1.0"}]}}}}


def wait_until(what: str, condition, kubelet: Kubelet, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while (found := condition()) is None:
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s " \
                                            f"({kubelet.last_error})"
        time.sleep(0.5)
    return found


@pytest.fixture(scope="module")
def cluster(control_plane):
    """The control plane with the app's namespace, once for this module: the server is the
    session's own, discarded after it, so nothing is deleted here (without a kubelet running
    to confirm them, deleting pods would wait on their grace period)."""
    control_plane.kubectl("create", "namespace", NAMESPACE)
    return control_plane


def test_workloads_come_up_on_the_real_control_plane_and_readiness_reads_them(cluster,
                                                                             monkeypatch):
    monkeypatch.setenv("PATH", f"{cluster.bin}:{os.environ['PATH']}")
    kube = Kube(str(cluster.kubeconfig))
    kube.apply([deployment("pgbouncer"), deployment("temporal-worker"),
                bootstrap_job("alga-core-sebastian-bootstrap-r1")])
    with Kubelet(Api.from_kubeconfig(cluster.kubeconfig),
                 crash_looping={"temporal-worker"}) as kubelet:
        available = wait_until("available pgbouncer", lambda: next(
            (d for d in kube.list("deployments", NAMESPACE) if d["metadata"]["name"] ==
             "pgbouncer" and d.get("status", {}).get("availableReplicas") == 1), None), kubelet)
        job = wait_until("a complete bootstrap job", lambda: next(
            (j for j in kube.list("jobs", NAMESPACE)
             if readiness.condition(j, "Complete")), None), kubelet)
        looping = wait_until("a crash-looping temporal-worker pod", lambda: next(
            (p for p in kube.list("pods", NAMESPACE) if p["metadata"]["name"].startswith(
                "temporal-worker") and p.get("status", {}).get("containerStatuses")), None),
            kubelet)
        view = readiness.read_view(kube)
    assert kubelet.last_error is None
    # The deployment controller's own status, from the kubelet's pod status.
    assert readiness.condition(available, "Available")["status"] == "True"
    assert readiness.condition(job, "Complete")["status"] == "True"
    assert looping["spec"]["nodeName"] == "alga-appliance"  # bound by the real scheduler
    worker = next(d for d in view.deployments if d["metadata"]["name"] == "temporal-worker")
    assert worker.get("status", {}).get("readyReplicas", 0) == 0
    assert readiness.node_ready(view).ready
