"""A real Kubernetes API server on loopback (pytest plugin): kube-apiserver and kubectl of
Kubernetes v1.33 (the minor the pinned k3s runs) and kine on SQLite (the datastore k3s
embeds), built from the Go module proxy by ci/k8s/build.sh into a cache outside the checkout.

`apiserver` (session): kine on a unix socket in tmp, kube-apiserver on 127.0.0.1 with real
TLS (its certificate from the tests' `ca`), client-certificate auth for an admin in
`system:masters`, RBAC, a service-account signing key, and a kubeconfig for the admin; the
Flux CRDs of tests/fixtures/flux-crds installed and Established. It skips, naming what is
missing and how to build it, only when the binaries are not built.

`real_api` (function): the same API server emptied of what earlier tests left (their
namespaces and everything in them; the CRDs stay), with its real kubectl first on PATH, so
host/cluster/kube.py talks to it unchanged.

`control_plane` (session): a second API server of its own with kube-controller-manager and
kube-scheduler running against it (Deployments become ReplicaSets and Pods, Pods are bound to
a node, Jobs complete, namespaces are deleted, service accounts made), for tests that need
workloads to come up; with the stand-in kubelet (support.kubelet) pods then run.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.base import ROOT, TESTS
from support.netlab import TestCA

BUILD = ROOT / "ci/k8s/build.sh"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kine")
CONTROLLERS = ("kube-controller-manager", "kube-scheduler")
FLUX_CRDS = tuple(sorted((TESTS / "fixtures/flux-crds").glob("*.yaml")))
ADMIN, ADMIN_GROUP = "alga-test-admin", "system:masters"
# What the API server keeps for itself: reset() leaves these namespaces alone.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# k3s's defaults, so that what the API server derives from them looks as on the appliance.
SERVICE_CIDR = "10.43.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
KUBECTL_TIMEOUT = 60


def binaries_dir() -> Path:
    """Where ci/k8s/build.sh puts the binaries for the versions its go.mod files pin."""
    done = subprocess.run([str(BUILD), "--dir"], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def missing_binaries(directory: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(directory / name, os.X_OK)]


class ApiServerFailed(RuntimeError):
    pass


class ApiServer:
    """kine and kube-apiserver as processes of their own, with every file under `work`."""

    def __init__(self, binaries: Path, work: Path, ca: TestCA):
        self.binaries, self.work, self.ca = binaries, work, ca
        self.kubeconfig = work / "kubeconfig"
        self.bin = work / "bin"  # only kubectl: what goes first on PATH
        self.port = 0
        self.start_seconds = 0.0
        self._processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log(self, name: str) -> Path:
        return self.work / f"{name}.log"

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> "ApiServer":
        began = time.monotonic()
        pki = self.work / "pki"
        pki.mkdir()
        server_cert, server_key = self.ca.write_server_files(pki, "127.0.0.1", "localhost")
        self.admin_cert, self.admin_key = self.ca.write_client_files(pki, ADMIN, ADMIN_GROUP)
        service_account_key = pki / "service-account.key"
        service_account_key.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.bin.mkdir()
        (self.bin / "kubectl").symlink_to(self.binaries / "kubectl")

        socket_path = self.work / "kine.sock"
        (self.work / "kine").mkdir()
        database = self.work / "kine/state.db"
        self._spawn("kine", [
            "--listen-address", f"unix://{socket_path}",
            "--endpoint", f"sqlite://{database}?_journal=WAL&cache=shared&_busy_timeout=30000"
                          "&_txlock=immediate",
            "--metrics-bind-address", "0"])
        self._wait(lambda: socket_path.exists(), 30.0, "kine's socket")

        self.port = _free_port()
        self._spawn("kube-apiserver", [
            f"--etcd-servers=unix://{socket_path}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={server_cert}", f"--tls-private-key-file={server_key}",
            f"--cert-dir={pki}",
            f"--client-ca-file={self.ca.ca_pem_path}",
            # As k3s sets it: the kubelet (for logs) is reached on the node's InternalIP,
            # and its serving certificate is verified.
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            f"--kubelet-certificate-authority={self.ca.ca_pem_path}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={service_account_key}",
            f"--service-account-signing-key-file={service_account_key}",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false"])
        self._write_kubeconfig()
        self._wait(self._ready, START_TIMEOUT, "the API server's /readyz")
        self.start_seconds = time.monotonic() - began
        return self

    def start_controllers(self) -> "ApiServer":
        """kube-controller-manager and kube-scheduler against this server, as the admin
        (k3s runs them in its own process; here each is a process of its own)."""
        pki = self.work / "pki"
        common = [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                  "--bind-address=127.0.0.1", "--secure-port=0"]
        self._spawn("kube-controller-manager", [
            *common, f"--service-account-private-key-file={pki / 'service-account.key'}",
            f"--root-ca-file={self.ca.ca_pem_path}", "--use-service-account-credentials=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--controllers=*"])
        self._spawn("kube-scheduler", common)
        # The service account controller has run once the default namespace has its account.
        self._wait(lambda: self.kubectl("get", "serviceaccount", "default", "--namespace",
                                        "default", check=False).returncode == 0,
                   START_TIMEOUT, "the controllers (the default service account)")
        return self

    def stop(self) -> None:
        """The controllers, the API server, then its datastore; each is waited for, killed if
        it must."""
        for name in (*CONTROLLERS, "kube-apiserver", "kine"):
            process = self._processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)

    def pids(self) -> list[int]:
        return [process.pid for process in self._processes.values()]

    def _spawn(self, name: str, args: list[str]) -> None:
        with self.log(name).open("wb") as log:
            self._processes[name] = subprocess.Popen(
                [str(self.binaries / name), *args], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.work, start_new_session=True)

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise ApiServerFailed(f"{name} exited ({process.returncode}) while waiting "
                                          f"for {what}:\n{self._tail(name)}")
            if condition():
                return
            time.sleep(0.2)
        raise ApiServerFailed(f"no {what} within {timeout:.0f} s:\n"
                              + "\n".join(self._tail(name) for name in self._processes))

    def _tail(self, name: str, lines: int = 30) -> str:
        text = self.log(name).read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log(name)}\n" + "\n".join(text)

    def _ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca.ca_pem_path))
        context.load_cert_chain(self.admin_cert, self.admin_key)
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", context=context,
                                        timeout=5) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "alga-test",
            "clusters": [{"name": "alga-test", "cluster": {
                "server": self.url, "certificate-authority": str(self.ca.ca_pem_path)}}],
            "users": [{"name": ADMIN, "user": {"client-certificate": str(self.admin_cert),
                                               "client-key": str(self.admin_key)}}],
            "contexts": [{"name": "alga-test",
                          "context": {"cluster": "alga-test", "user": ADMIN}}]}
        self.kubeconfig.write_text(yaml.safe_dump(config))

    # -- helpers the tests use --------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """The real kubectl with the admin's kubeconfig; `check` raises with its stderr."""
        done = subprocess.run([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig),
                               *args], input=input, capture_output=True, text=True,
                              timeout=KUBECTL_TIMEOUT)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stderr}")
        return done

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict:
        """The object with its managedFields (which kubectl leaves out unless asked)."""
        scope = ["--namespace", namespace] if namespace else []
        return json.loads(self.kubectl("get", resource, name, *scope, "--show-managed-fields",
                                       "-o", "json").stdout)

    def install_crds(self, paths=FLUX_CRDS, timeout: float = 60.0) -> list[str]:
        """Apply CRD manifests (server-side, as a cluster admin would) and wait until each is
        Established; return their names."""
        names = []
        for path in paths:
            applied = self.kubectl("apply", "--server-side", "--field-manager=alga-tests",
                                   "-o", "name", "-f", str(path))
            names += applied.stdout.split()
        self.kubectl("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *names)
        return names

    def reset(self) -> None:
        """Delete every namespace a test made and everything in it, as the namespace
        controller (not run here) would; cluster-scoped objects such as the CRDs stay."""
        namespaces = [name.removeprefix("namespace/") for name in self.kubectl(
            "get", "namespaces", "-o", "name").stdout.split()]
        namespaces = [name for name in namespaces if name not in SYSTEM_NAMESPACES]
        if not namespaces:
            return
        resources = ",".join(self.kubectl("api-resources", "--namespaced", "--verbs=list,delete",
                                          "-o", "name").stdout.split())
        for namespace in namespaces:
            self.kubectl("delete", resources, "--all", "--namespace", namespace,
                         "--wait=false")
            self.kubectl("delete", "namespace", namespace, "--wait=false",
                         "--ignore-not-found")
            finalized = {"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": namespace}, "spec": {"finalizers": []}}
            self.kubectl("replace", "--raw", f"/api/v1/namespaces/{namespace}/finalize",
                         "-f", "-", input=json.dumps(finalized))
        self.kubectl("wait", "--for=delete", "--timeout=30s",
                     *(f"namespace/{namespace}" for namespace in namespaces))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _session_server(ca, tmp_path_factory, name: str, controllers: bool):
    """A started server with the Flux CRDs (and, with `controllers`, the controller manager
    and scheduler), stopped after the session; a skip, saying why, when it is not built."""
    directory = binaries_dir()
    missing = missing_binaries(directory)
    if missing:
        pytest.skip(f"the real API server tier is not built: {', '.join(missing)} missing from "
                    f"{directory}; run ci/k8s/build.sh (ci/setup.sh --test runs it)")
    server = ApiServer(directory, tmp_path_factory.mktemp(name), ca)
    try:
        server.start()
        server.install_crds()
        if controllers:
            server.start_controllers()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def apiserver(ca, tmp_path_factory) -> ApiServer:
    """One real API server for the session (it takes seconds to start), Flux CRDs installed."""
    yield from _session_server(ca, tmp_path_factory, "apiserver", controllers=False)


@pytest.fixture
def real_api(apiserver, monkeypatch) -> ApiServer:
    """The session's API server, emptied for this test, its real kubectl first on PATH."""
    apiserver.reset()
    monkeypatch.setenv("PATH", f"{apiserver.bin}:{os.environ['PATH']}")
    return apiserver


@pytest.fixture(scope="session")
def control_plane(ca, tmp_path_factory) -> ApiServer:
    """An API server of its own with the controller manager and the scheduler (`apiserver`
    runs without them, so its tests see only what the API server itself does)."""
    yield from _session_server(ca, tmp_path_factory, "control-plane", controllers=True)
