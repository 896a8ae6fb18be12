"""Flux's controllers as host processes against a real API server (plain helpers, no pytest
fixtures): the binaries and CRDs that ci/k8s/build-flux.sh caches, each controller started with
the admin's kubeconfig, no leader election, all namespaces watched, its own loopback ports and
its log in a file of its own (what a support bundle collects).

The controllers have no --kubeconfig flag (controller-runtime's flag is on Go's flag set, which
Flux does not parse): they read $KUBECONFIG. `RUNTIME_NAMESPACE` is where they would keep a
leader-election lease; with --enable-leader-election=false it only names their events' source.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.base import ROOT

BUILD = ROOT / "ci/k8s/build-flux.sh"
CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller")
RUNTIME_NAMESPACE = "flux-system"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def cache_dir() -> Path:
    """Where ci/k8s/build-flux.sh puts the binaries and CRDs of the pinned Flux release."""
    done = subprocess.run([str(BUILD), "--dir"], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def binary(name: str) -> Path:
    """The controller's binary, or a skip naming why it is not built and what to run."""
    directory = cache_dir()
    path = directory / name
    if os.access(path, os.X_OK):
        return path
    unavailable = directory / f"{name}.unavailable"
    if unavailable.exists():
        pytest.skip(f"{name} is not built: ci/k8s/build-flux.sh recorded: "
                    f"{unavailable.read_text().strip()}")
    pytest.skip(f"{name} is not built: run ci/k8s/build-flux.sh (it builds into {directory})")


def crds() -> list[Path]:
    """Every CRD manifest of the pinned release's controllers, as the build cached them."""
    directory = cache_dir() / "crds"
    found = sorted(directory.glob("*.yaml"))
    if not found:
        pytest.skip(f"the Flux CRDs are not built: run ci/k8s/build-flux.sh "
                    f"(it builds into {directory.parent})")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ControllerFailed(RuntimeError):
    pass


class FluxController:
    """One controller process; `start()` returns once its /readyz answers 200."""

    def __init__(self, name: str, kubeconfig: Path, work: Path, *extra: str,
                 ca_file: Path | None = None, storage: Path | None = None):
        """`storage`: where source-controller keeps the artifacts it serves on loopback."""
        self.name, self.kubeconfig, self.work = name, kubeconfig, work
        self.ca_file, self.storage = ca_file, storage
        self.binary = binary(name)
        self.extra = list(extra)
        self.log = work / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.metrics_port, self.health_port, self.storage_port = (free_port() for _ in "mhs")

    def args(self) -> list[str]:
        storage = [] if self.storage is None else [
            f"--storage-path={self.storage}", f"--storage-addr=127.0.0.1:{self.storage_port}",
            f"--storage-adv-addr=127.0.0.1:{self.storage_port}"]
        return [str(self.binary), "--enable-leader-election=false", "--watch-all-namespaces",
                f"--metrics-addr=127.0.0.1:{self.metrics_port}",
                f"--health-addr=127.0.0.1:{self.health_port}", "--log-level=debug",
                *storage, *self.extra]

    def start(self, attempts: int = 3) -> "FluxController":
        """Start it; again on fresh ports when one it was given was taken meanwhile (the
        ports are picked free, then bound by the controller: another process can come in
        between)."""
        for _ in range(attempts - 1):
            try:
                return self._start()
            except ControllerFailed as exc:
                if "address already in use" not in str(exc):
                    raise
                self._pick_ports()
        return self._start()

    def _start(self) -> "FluxController":
        self.work.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.work),
               "KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": RUNTIME_NAMESPACE}
        if self.ca_file is not None:  # Go's system pool: the registries the tests serve
            env["SSL_CERT_FILE"] = str(self.ca_file)
        with self.log.open("ab") as log:  # a restart continues its log
            self.process = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.work, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ControllerFailed(f"{self.name} exited ({self.process.returncode}) before "
                                       f"it was ready:\n{self.tail()}")
            if self._ready():
                return self
            time.sleep(0.2)
        raise ControllerFailed(f"{self.name} not ready within {START_TIMEOUT:.0f} s:\n"
                               f"{self.tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz",
                                        timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log}\n" + "\n".join(text)

    def __enter__(self) -> "FluxController":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def condition(obj: dict, kind: str = "Ready") -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions", [])
                 if c["type"] == kind), None)


def wait_for_condition(api, resource: str, name: str, namespace: str, status: str,
                       timeout: float, controller: FluxController) -> tuple[dict, list[tuple]]:
    """Poll the object until its Ready condition has `status`; the object and every distinct
    (status, reason) its Ready condition passed through on the way."""
    seen: list[tuple] = []
    deadline = time.monotonic() + timeout
    while True:
        obj = json.loads(api.kubectl("get", resource, name, "--namespace", namespace,
                                     "-o", "json").stdout)
        ready = condition(obj)
        if ready is not None and (ready["status"], ready["reason"]) not in seen:
            seen.append((ready["status"], ready["reason"]))
        if ready is not None and ready["status"] == status:
            return obj, seen
        if controller.process is not None and controller.process.poll() is not None:
            raise ControllerFailed(f"{controller.name} exited ({controller.process.returncode}):"
                                   f"\n{controller.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{resource}/{name}: Ready is not {status} within "
                                 f"{timeout:.0f} s; it went through {seen}; now "
                                 f"{json.dumps(obj.get('status'), indent=1)}\n"
                                 f"{controller.tail()}")
        time.sleep(0.5)


def delete(api, resource: str, name: str, namespace: str, timeout: float = 60.0) -> None:
    """Delete a Flux object and wait until it is gone: call it while its controller still
    runs, since the controller's finalizer holds the object until the controller lets go (a
    namespace removed around it leaves it behind for the next test that makes one alike)."""
    api.kubectl("delete", resource, name, "--namespace", namespace, "--ignore-not-found",
                "--wait=true", f"--timeout={timeout:.0f}s")


class Flux:
    """source-controller, kustomize-controller and helm-controller against one API server, as
    the pinned Flux release runs them in flux-system: the release's CRDs installed first,
    source-controller's artifact storage on a loopback port the other two download from, and
    `ca_file` trusted for the registries. Their logs are in `work`/<controller>.log."""

    def __init__(self, api, work: Path, ca_file: Path, *dependents_extra: str):
        """`dependents_extra`: flags for kustomize-controller and helm-controller."""
        self.api, self.work = api, work
        self.controllers = [
            FluxController("source-controller", api.kubeconfig, work, ca_file=ca_file,
                           storage=work / "storage"),
            *(FluxController(name, api.kubeconfig, work, *dependents_extra, ca_file=ca_file)
              for name in ("kustomize-controller", "helm-controller"))]

    def __enter__(self) -> "Flux":
        return self.start()

    def start(self) -> "Flux":
        self.api.install_crds(crds())
        (self.work / "storage").mkdir(parents=True, exist_ok=True)
        try:
            for controller in self.controllers:
                controller.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for controller in reversed(self.controllers):
            controller.stop()

    def check(self) -> None:
        """Raise, with its log, if a controller has exited."""
        for controller in self.controllers:
            if controller.process is not None and controller.process.poll() is not None:
                raise ControllerFailed(f"{controller.name} exited "
                                       f"({controller.process.returncode}):\n{controller.tail()}")

    def tails(self) -> str:
        return "\n".join(controller.tail() for controller in self.controllers)
