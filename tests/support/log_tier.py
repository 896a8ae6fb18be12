"""The Alga workloads on the real Kubernetes tier with what each logged, for the log tests
(tests/cluster/test_real_logs.py, tests/web/test_ui_logs.py): a real kube-apiserver
(support/apiserver.py) holding the objects Alga's charts make (a Deployment or StatefulSet
selecting its pods, the bootstrap Job), and the stand-in kubelet (support/kubelet.py)
serving the containers' logs, secrets included, that `kubectl logs` reads through the API
server. And the log oneshot as its .path unit starts it.
"""

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from host.cluster import alga
from host.cluster.kube import Kube
from host.core import spool
from host.support import log_request
from support.kubelet import NODE_NAME, Api, Kubelet

DB_PASSWORD = "canary-db-Pa55word-7f3k"
K3S_TOKEN = "K10canaryk3stoken::server:abcdef123456"  # the host fixture writes it where k3s does
BOOTSTRAP_JOB = f"{alga.BOOTSTRAP_JOB_PREFIX}1"


def workload(kind: str, name: str, namespace: str = alga.APP_NAMESPACE) -> dict:
    labels = {"app.kubernetes.io/name": name}
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, **(
                {"serviceName": name} if kind == "StatefulSet" else {}),
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                    {"name": "main", "image": f"ghcr.io/nine-minds/{name}:1.0"}]}}}}


def pod(name: str, labels: dict, namespace: str = alga.APP_NAMESPACE,
        job: str | None = None) -> dict:
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    if job:
        metadata["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                                        "uid": "00000000-0000-0000-0000-000000000001"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {
        "nodeName": NODE_NAME, "restartPolicy": "Never" if job else "Always",
        "containers": [{"name": "main", "image": f"ghcr.io/nine-minds/{name}:1.0"}]}}


def bootstrap_job(name: str = BOOTSTRAP_JOB) -> dict:
    labels = {"job-name": name}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": alga.APP_NAMESPACE},
            "spec": {"manualSelector": True, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "restartPolicy": "Never", "containers": [
                             {"name": "bootstrap", "image": "ghcr.io/nine-minds/alga:1.0"}]}}}}


def apply(api, *objects: dict) -> None:
    api.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                      "items": list(objects)}))


def finish_job(api, name: str, outcome: str) -> None:
    """What the job controller writes when the job ends (not run here)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kind, reason = (("Complete", "Completed") if outcome == "succeeded"
                    else ("Failed", "BackoffLimitExceeded"))
    criteria = "SuccessCriteriaMet" if outcome == "succeeded" else "FailureTarget"
    status = {"startTime": now, "conditions": [
        {"type": criteria, "status": "True", "reason": reason, "lastProbeTime": now,
         "lastTransitionTime": now},
        {"type": kind, "status": "True", "reason": reason, "lastProbeTime": now,
         "lastTransitionTime": now}],
        **({"completionTime": now, "succeeded": 1} if outcome == "succeeded"
           else {"failed": 1})}
    Api.from_kubeconfig(api.kubeconfig).patch_status(
        f"/apis/batch/v1/namespaces/{alga.APP_NAMESPACE}/jobs/{name}", status)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@contextlib.contextmanager
def planted(real_api, ca, logs_dir: Path) -> Iterator[tuple[Kube, Kubelet]]:
    """The app's namespace with alga-core, the database and two workers running, a Flux
    controller, the bootstrap job's pod, and the kubelet serving what each logged."""
    for namespace in (alga.APP_NAMESPACE, alga.FLUX_NAMESPACE):
        real_api.kubectl("create", "namespace", namespace)
        real_api.kubectl("create", "serviceaccount", "default", "--namespace", namespace)
    kubelet_logs = {  # the first whose name starts a pod's is its log: bootstrap before core
        f"{BOOTSTRAP_JOB}-": write(logs_dir / "bootstrap.log", "running migrations\n"
                                   f"Host=db;Password={DB_PASSWORD};Database=server\n"
                                   "migration 42 failed: relation already exists\n"),
        f"{alga.ALGA_CORE}-": write(logs_dir / "alga-core.log", "".join(
            f"alga-core request {i}\n" for i in range(3000))),
        "db-0": write(logs_dir / "db.log", "LOG:  database system is ready\n"
                      f"LOG:  connection with password={DB_PASSWORD}\n"),
        "workflow-worker-": write(logs_dir / "workflow.log", "workflow polling\n"),
        "email-service-": write(logs_dir / "email.log", "email sent\n"),
        "helm-controller-": write(logs_dir / "helm.log", f"joined with {K3S_TOKEN}\n"
                                  "reconciling alga-core\n"),
    }
    previous = {"db-0": write(logs_dir / "db.previous.log",
                              "FATAL: could not write to file: No space left on device\n")}
    label = "app.kubernetes.io/name"
    with Kubelet(Api.from_kubeconfig(real_api.kubeconfig), ca=ca, logs=kubelet_logs,
                 previous_logs=previous) as kubelet:
        kube = Kube(str(real_api.kubeconfig))
        settled(kube, kubelet)  # first: an earlier test's pods may still be terminating
        apply(real_api,
              workload("Deployment", alga.ALGA_CORE), workload("StatefulSet", "db"),
              workload("Deployment", "workflow-worker"),
              workload("Deployment", "email-service"),
              workload("Deployment", "helm-controller", alga.FLUX_NAMESPACE),
              pod(f"{alga.ALGA_CORE}-7d9c-x1", {label: alga.ALGA_CORE}),
              pod("db-0", {label: "db"}),
              pod("workflow-worker-5b6-a1", {label: "workflow-worker"}),
              pod("email-service-6c7-b2", {label: "email-service"}),
              pod("helm-controller-8f9-c3", {label: "helm-controller"}, alga.FLUX_NAMESPACE),
              bootstrap_job(),
              pod(f"{BOOTSTRAP_JOB}-abcde", {"job-name": BOOTSTRAP_JOB}, job=BOOTSTRAP_JOB))
        settled(kube, kubelet)
        yield kube, kubelet


def settled(kube: Kube, kubelet: Kubelet, timeout: float = 30.0) -> None:
    """Until the kubelet has started every pod (a pod not started has no log to read) and
    removed those an earlier test left terminating (no namespace controller runs here)."""
    deadline = time.monotonic() + timeout
    while True:
        pods = [*kube.list("pods", alga.APP_NAMESPACE), *kube.list("pods", alga.FLUX_NAMESPACE)]
        if all(p.get("status", {}).get("phase") in ("Running", "Succeeded")
               and not p["metadata"].get("deletionTimestamp") for p in pods):
            return
        assert time.monotonic() < deadline, kubelet.last_error
        time.sleep(0.2)


@contextlib.contextmanager
def path_unit(root: Path, kube: Kube, owner: str) -> Iterator[None]:
    """The log oneshot as alga-appliance-logs-request.path starts it, whenever a request is
    spooled (on a thread of its own, as root's unit would)."""
    stop = threading.Event()

    def watch():
        while not stop.wait(0.05):
            if spool.pending(spool.LOGS, root):
                log_request.accept(root, kube, owner=owner)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=10)
