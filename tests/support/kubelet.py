"""A stand-in kubelet for the real Kubernetes tier (plain helpers): there is no container
runtime here, so this registers a Ready node with the real API server and writes, through
the pods/status subresource, the status a kubelet writes for the pods scheduled to it:
Running and Ready, a Job's pods Succeeded, or, by knob, a crash loop, an image that never
pulls, or Pending. It is the tier's only stand-in; everything it writes is in the fields
and words the kubelet uses (k8s.io/kubernetes pkg/kubelet: status manager, container
waiting reasons), so the status collector reads it as it reads a real node.

    with Kubelet(Api.from_kubeconfig(path), crash_looping={"temporal-worker"}) as kubelet:
        ...

A workload can have an `App`: the stand-in for its container's host-network port, which
answers on the node address once one of the workload's pods runs (as alga-core's server
answers on :3000), and 503 before that, as nothing would listen.

Given the tests' CA, it also serves the kubelet's log endpoint on the node address over TLS
(`GET /containerLogs/<namespace>/<pod>/<container>`, which the API server proxies `kubectl
logs` to): a workload's log is the file `logs` names for it (the Flux controllers' own logs,
as they run on the host), else empty, as a container that wrote nothing. With `previous=true`
it is the file `previous_logs` names (a restarted container's last run), else the kubelet's
refusal: there is no previous terminated container.
"""

import base64
import datetime
import hashlib
import http.server
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
import yaml

NODE_NAME = "alga-appliance"
KUBELET_VERSION = "v1.33.3+k3s1"
POLL_SECONDS = 0.2
BACK_OFF = 10.0  # seconds between a crash-looping container's restarts (the kubelet's start)
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
CONTAINER_LOGS = re.compile(r"/containerLogs/(?P<namespace>[^/]+)/(?P<pod>[^/]+)/[^/]+")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Api:
    """The API server as a kubeconfig's current context names it, over HTTPS."""

    server: str
    session: requests.Session

    @classmethod
    def from_kubeconfig(cls, path: Path) -> "Api":
        config = yaml.safe_load(Path(path).read_text())
        context = next(c["context"] for c in config["contexts"]
                       if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"]
                       if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        files = Path(tempfile.mkdtemp(prefix="kubelet-"))
        session = requests.Session()
        session.trust_env = False
        session.verify = _file(cluster, "certificate-authority", files / "ca.pem")
        session.cert = (_file(user, "client-certificate", files / "client.pem"),
                        _file(user, "client-key", files / "client.key"))
        return cls(cluster["server"].rstrip("/"), session)

    def get(self, path: str, **params) -> dict:
        response = self.session.get(self.server + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> requests.Response:
        return self.session.post(self.server + path, json=body, timeout=10)

    def patch_status(self, path: str, status: dict) -> None:
        response = self.session.patch(f"{self.server}{path}/status", json={"status": status},
                                      headers=MERGE_PATCH, timeout=10)
        if response.status_code != 404:  # a pod deleted meanwhile is no longer ours
            response.raise_for_status()


def _file(entry: dict, key: str, target: Path) -> str:
    """A kubeconfig entry's file, or its inline `-data` written to `target`."""
    if key in entry:
        return entry[key]
    target.write_bytes(base64.b64decode(entry[f"{key}-data"]))
    return str(target)


def _serve(address: str, answer, tls=None, port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server on (address, `port` or a free one) answering each GET with `answer(path)`:
    (status, content type, body); over TLS with the `tls` context."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, content_type, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class App:
    """An app's HTTP answer on (address, port): 503 until `up`, then its sign-in page."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0):
        self.up = False
        self._server = _serve(address, self._answer, port=port)
        self.url = f"http://{address}:{self._server.server_address[1]}"

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        if self.up:
            return 200, "text/html", b"<title>Sign in - Alga PSA</title>"
        return 503, "text/plain", b"no server is listening yet"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Kubelet:
    """Registers NODE_NAME and keeps the status of the pods bound to it as a kubelet would.

    Knobs name workloads (a pod belongs to the first whose name starts its own):
    `crash_looping` (CrashLoopBackOff, restarts counting up), `image_pull_failing`
    (ImagePullBackOff), `pending` (left Pending, as a kubelet that never admits it);
    `apps` (an App each, up once one of the workload's pods runs)."""

    api: Api
    address: str = "127.0.0.1"
    crash_looping: set[str] = field(default_factory=set)
    image_pull_failing: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)
    apps: dict[str, App] = field(default_factory=dict)
    ca: object = None  # support.netlab.TestCA: serve the log endpoint
    logs: dict[str, Path] = field(default_factory=dict)
    previous_logs: dict[str, Path] = field(default_factory=dict)
    _log_server: http.server.ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _restarts: dict[str, int] = field(default_factory=dict)
    _restarted: dict[str, float] = field(default_factory=dict)
    last_error: str | None = None  # what the API server last refused, if anything

    def __enter__(self):
        if self.ca is not None:
            self._serve_logs()
        self.register()
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=10)
        if self._log_server is not None:
            self._log_server.shutdown()
            self._log_server.server_close()

    def _serve_logs(self) -> None:
        self._log_server = _serve(self.address, self._container_logs,
                                  self.ca.server_context(self.address))

    def _container_logs(self, path: str) -> tuple[int, str, bytes]:
        url = urlsplit(path)
        found = CONTAINER_LOGS.fullmatch(url.path)
        if found is None:
            return 404, "text/plain", b"404 page not found"
        query = parse_qs(url.query)
        if query.get("previous") == ["true"] and not self._of(self.previous_logs, found["pod"]):
            container = url.path.rsplit("/", 1)[-1]
            return 400, "text/plain", (f'previous terminated container "{container}" in pod '
                                       f'"{found["pod"]}" not found').encode()
        return 200, "text/plain", self.log_of(found["pod"], query)

    def _of(self, logs: dict[str, Path], pod: str) -> Path | None:
        return next((path for name, path in logs.items() if pod.startswith(name)), None)

    def log_of(self, pod: str, query: dict) -> bytes:
        """The container's log as the kubelet answers: the last `tailLines` lines, each after
        its time when `timestamps` is asked for."""
        path = self._of(self.previous_logs if query.get("previous") == ["true"] else self.logs,
                        pod)
        lines = path.read_text(errors="replace").splitlines() if path else []
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"][0]):]
        if query.get("timestamps") == ["true"]:
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lines = [f"{stamp} {line}" for line in lines]
        return "".join(f"{line}\n" for line in lines).encode()

    def register(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME,
                                          "kubernetes.io/os": "linux",
                                          "kubernetes.io/arch": "amd64",
                                          "node-role.kubernetes.io/control-plane": "true"}}}
        created = self.api.post("/api/v1/nodes", node)
        if created.status_code not in (201, 409):  # 409: registered before (a restart)
            created.raise_for_status()
        self._heartbeat()

    def _heartbeat(self) -> None:
        now = _now()
        conditions = [
            {"type": kind, "status": "False", "reason": reason, "message": message,
             "lastHeartbeatTime": now, "lastTransitionTime": now}
            for kind, reason, message in (
                ("MemoryPressure", "KubeletHasSufficientMemory",
                 "kubelet has sufficient memory available"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status",
                           "lastHeartbeatTime": now, "lastTransitionTime": now})
        capacity = {"cpu": "4", "memory": "16365456Ki", "pods": "110",
                    "ephemeral-storage": "61255492Ki"}
        port = self._log_server.server_address[1] if self._log_server else 0
        self.api.patch_status(f"/api/v1/nodes/{NODE_NAME}", {
            "conditions": conditions, "capacity": capacity, "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "addresses": [{"type": "InternalIP", "address": self.address},
                          {"type": "Hostname", "address": NODE_NAME}],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                         "containerRuntimeVersion": "containerd://2.0.5-k3s2",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "osImage": "Ubuntu 24.04.3 LTS", "kernelVersion": "6.8.0-49-generic",
                         "machineID": "", "systemUUID": "", "bootID": ""}})

    def _run(self) -> None:
        beats = 0
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.sync()
                beats += 1
                if beats % 50 == 0:  # every 10 s, as the kubelet's node status updates
                    self._heartbeat()
            except requests.RequestException as exc:  # kept for the test to show
                body = exc.response.text if exc.response is not None else ""
                self.last_error = f"{exc} {body}".strip()

    def sync(self) -> None:
        """One pass over the pods bound to this node."""
        pods = self.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={NODE_NAME}")
        for pod in pods["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion(pod)
                continue
            status = self.status_of(pod)
            if status is not None:
                metadata = pod["metadata"]
                self.api.patch_status(
                    f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}",
                    status)
            now = status or pod.get("status", {})
            if now.get("phase") == "Running" and _ready(now) and not _is_job_pod(pod):
                for name, app in self.apps.items():
                    app.up = app.up or pod["metadata"]["name"].startswith(name)

    def _finish_deletion(self, pod: dict) -> None:
        """Its containers are stopped (there are none): remove the pod for good, as the
        kubelet does once a pod being deleted has terminated."""
        metadata = pod["metadata"]
        response = self.api.session.delete(
            f"{self.api.server}/api/v1/namespaces/{metadata['namespace']}/pods/"
            f"{metadata['name']}", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                         "gracePeriodSeconds": 0,
                                         "preconditions": {"uid": metadata["uid"]}},
            timeout=10)
        if response.status_code not in (200, 404, 409):  # 409: a newer pod of that name
            response.raise_for_status()

    def _knob(self, pod: dict, names: set[str]) -> bool:
        return any(pod["metadata"]["name"].startswith(name) for name in names)

    def status_of(self, pod: dict) -> dict | None:
        """The status to write, or None when the pod's status already says it."""
        if self._knob(pod, self.pending):
            return None
        current = pod.get("status", {})
        if current.get("phase") in ("Succeeded", "Failed"):
            return None
        if self._knob(pod, self.crash_looping):
            backing_off = _waiting(current) == "CrashLoopBackOff"
            due = time.monotonic() - self._restarted.get(pod["metadata"]["uid"], 0) > BACK_OFF
            return self._crash_looping(pod) if due or not backing_off else None
        if self._knob(pod, self.image_pull_failing):
            return None if _waiting(current) == "ImagePullBackOff" else self._not_pulled(pod)
        if current.get("phase") == "Running" and _ready(current):
            return None
        return self._succeeded(pod) if _is_job_pod(pod) else self._running(pod)

    def _base(self, pod: dict, phase: str, ready: bool, reason: str = "") -> dict:
        now = _now()
        names = [c["name"] for c in pod["spec"]["containers"]]
        unready = "" if ready else f"containers with unready status: [{' '.join(names)}]"
        flag = "True" if ready else "False"
        detail = {} if ready else {"reason": reason or "ContainersNotReady", "message": unready}
        return {"phase": phase, "hostIP": self.address, "hostIPs": [{"ip": self.address}],
                "podIP": _pod_ip(pod), "podIPs": [{"ip": _pod_ip(pod)}],
                "startTime": pod.get("status", {}).get("startTime", now),
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True",
                     "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": flag, "lastTransitionTime": now, **detail},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": now,
                     **detail},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}

    def _container(self, container: dict, pod: dict, **fields) -> dict:
        image = container["image"]
        identity = hashlib.sha256(f"{pod['metadata']['uid']}/{container['name']}".encode())
        image_digest = hashlib.sha256(image.encode()).hexdigest()
        return {"name": container["name"], "image": image,
                "imageID": f"{image.split(':')[0]}@sha256:{image_digest}",
                "containerID": f"containerd://{identity.hexdigest()}", "started": False,
                "ready": False, "restartCount": 0, **fields}

    def _running(self, pod: dict) -> dict:
        status = self._base(pod, "Running", ready=True)
        status["containerStatuses"] = [
            self._container(c, pod, ready=True, started=True,
                            state={"running": {"startedAt": status["startTime"]}})
            for c in pod["spec"]["containers"]]
        return status

    def _succeeded(self, pod: dict) -> dict:
        status = self._base(pod, "Succeeded", ready=False, reason="PodCompleted")
        now = _now()
        status["containerStatuses"] = [
            self._container(c, pod, state={"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": status["startTime"],
                "finishedAt": now, "containerID": ""}})
            for c in pod["spec"]["containers"]]
        for container in status["containerStatuses"]:
            container["state"]["terminated"]["containerID"] = container["containerID"]
        return status

    def _crash_looping(self, pod: dict) -> dict:
        uid = pod["metadata"]["uid"]
        self._restarts[uid] = self._restarts.get(uid, 0) + 1
        self._restarted[uid] = time.monotonic()
        status = self._base(pod, "Running", ready=False)
        now = _now()
        status["containerStatuses"] = [
            self._container(c, pod, restartCount=self._restarts[uid], state={"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 5m0s restarting failed container={c['name']} "
                           f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                           f"({uid})"}},
                lastState={"terminated": {"exitCode": 1, "reason": "Error",
                                          "startedAt": now, "finishedAt": now}})
            for c in pod["spec"]["containers"]]
        return status

    def _not_pulled(self, pod: dict) -> dict:
        status = self._base(pod, "Pending", ready=False)
        status["containerStatuses"] = [
            {"name": c["name"], "image": c["image"], "imageID": "", "started": False,
             "ready": False, "restartCount": 0, "state": {"waiting": {
                 "reason": "ImagePullBackOff",
                 "message": f'Back-off pulling image "{c["image"]}"'}}}
            for c in pod["spec"]["containers"]]
        return status


def _waiting(status: dict) -> str | None:
    return next((c["state"]["waiting"].get("reason") for c in status.get(
        "containerStatuses", []) if "waiting" in c.get("state", {})), None)


def _ready(status: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in status.get("conditions", []))


def _is_job_pod(pod: dict) -> bool:
    return any(owner.get("kind") == "Job"
               for owner in pod["metadata"].get("ownerReferences", []))


def _pod_ip(pod: dict) -> str:
    """A stable address in k3s's pod network (10.42.0.0/16) for each pod."""
    digest = hashlib.sha256(pod["metadata"]["uid"].encode()).digest()
    return f"10.42.{digest[0]}.{digest[1] or 1}"
