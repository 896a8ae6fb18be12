"""An appliance site on the real Kubernetes tier (pytest plugin): the control plane
(support/apiserver.py), the stand-in kubelet with alga-core's app answering on the node
address, Alga-shaped charts and config bundle on the tests' real OCI registry
(support/alga_charts.py), the pinned Flux release's install.yaml on an HTTPS release tree, and
a host root whose k3s phase has handed over a kubeconfig for this API server (k3s itself cannot
be built here). The tests then run the real `alga-appliance phase flux` and `phase release`,
start Flux's three real controllers as the install.yaml's Deployments come up, and read what
they do with the appliance's status collector.

    def test_x(flux_site):
        flux_site.install()              # flux + release phases, controllers running
        flux_site.wait_for("ready_to_log_in")
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from host import status
from host.cluster import alga
from host.cluster.kube import Kube
from host.core import paths, state
from host.setup.chain import NAMES
from support import alga_charts, flux_controllers
from support.base import ROOT, make_host_root
from support.kubelet import Api, App, Kubelet
from support.netlab import DnsServer, HttpsServer, Route, free_loopback_address
from support.preflight_lab import push_pulled_images
from support.releases import (
    DNS_NAMES,
    FLUX_INSTALL_PATH,
    FLUX_SUMS_PATH,
    OCI_CHARTS,
    OCI_VERSION,
    flux_sums,
    oci_source,
    publish_oci,
)

# The phases before flux, as the k3s stand-in leaves them: done.
HANDED_OVER = NAMES[:NAMES.index("flux")]
COMMAND_TIMEOUT = 600
# Flux waits 30 s by default before it looks again at an object whose dependency was not
# ready; the tier's chain of dependencies (platform -> core -> background, and the
# HelmReleases' own) would spend minutes in that wait alone.
REQUEUE_DEPENDENCY = "--requeue-dependency=5s"
# What Flux's objects a site has, in the order they are removed after a test.
FLUX_RESOURCES = ("helmreleases", "kustomizations", "helmcharts", "helmrepositories",
                  "ocirepositories", "gitrepositories")


def install_yaml() -> bytes:
    """The pinned release's install.yaml as the flux phase applies it: the flux-system
    namespace, the controllers' own CRDs, and a Deployment for each controller (whose
    pods the stand-in kubelet runs, while the controllers themselves run as host processes)."""
    versions = dict(line.split()[:2] for line in
                    (ROOT / "ci/k8s/flux/versions").read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
    documents = [{"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": alga.FLUX_NAMESPACE}}]
    documents += [yaml.safe_load(path.read_text()) for path in flux_controllers.crds()]
    for name in flux_controllers.CONTROLLERS:
        labels = {"app": name}
        documents.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": alga.FLUX_NAMESPACE, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "manager",
                                         "image": f"ghcr.io/fluxcd/{name}:{versions[name]}"}]}}}})
    return yaml.safe_dump_all(documents).encode()


@dataclass
class Observation:
    """What the collector said at one moment, and the Flux conditions it read."""

    seconds: float
    rollup: str
    flux: dict[str, tuple[str, str]]


@dataclass
class FluxSite:
    root: Path
    api: object  # support.apiserver.ApiServer
    registry: object
    kubelet: Kubelet
    app: App
    work: Path
    flux: flux_controllers.Flux | None = None
    seen: list[Observation] = field(default_factory=list)
    flux_applied_at: float = 0.0

    @property
    def kubeconfig(self) -> str:
        return str(self.api.kubeconfig)

    def publish(self, version: str = OCI_VERSION, tags=("stable",),
                charts: dict[str, str] | None = None, broken: frozenset[str] = frozenset(),
                unbuildable: bool = False, **images: str) -> tuple[str, dict]:
        """Push the charts and `version`'s Alga-shaped release; its digest and manifest."""
        versions = {**OCI_CHARTS, **(charts or {})}
        alga_charts.push_charts(self.registry, versions, broken)
        files = alga_charts.bundle_files(self.registry.host, versions, unbuildable)
        return publish_oci(self.registry, version, tags, charts=charts, files=files, **images)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`alga-appliance ARGS --kubeconfig K` on this root and API server, as a unit runs it."""
        env = {**os.environ, paths.ROOT_ENV: str(self.root)}
        return subprocess.run([sys.executable, "-m", "host", *args, "--kubeconfig",
                               self.kubeconfig], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT)

    def phase(self, name: str) -> subprocess.CompletedProcess:
        return self.cli("phase", name)

    def install(self) -> None:
        """The flux phase, Flux's controllers started, the release phase: each must succeed."""
        done = self.phase("flux")
        assert done.returncode == 0, self._record("flux", done)
        self.flux = flux_controllers.Flux(self.api, self.work / "flux", self.api.ca.ca_pem_path,
                                          REQUEUE_DEPENDENCY).start()
        # `kubectl logs` of the controllers' pods: their own logs, as they run on the host.
        self.kubelet.logs.update({c.name: c.log for c in self.flux.controllers})
        done = self.phase("release")
        assert done.returncode == 0, self._record("release", done)
        self.flux_applied_at = time.monotonic()

    def _record(self, name: str, done) -> str:
        record = state.read(state.INSTALL_STATE, self.root)["phases"][name]
        return f"{name}: {json.dumps(record, indent=1)}\n{done.stdout}\n{done.stderr}"

    def collect(self) -> dict:
        """One status snapshot, as collect-status takes it; noted in `seen`."""
        snapshot = status.take_snapshot(self.root, Kube(self.kubeconfig))
        conditions = {f"{item['kind']}/{item['name']}": (item["ready"], item["reason"])
                      for item in snapshot["flux"]}
        observation = Observation(time.monotonic() - self.flux_applied_at,
                                  snapshot["rollup"]["state"], conditions)
        previous = self.seen[-1] if self.seen else None
        if previous is None or (previous.rollup, previous.flux) != (observation.rollup,
                                                                    observation.flux):
            line = (f"+{observation.seconds:6.1f}s {observation.rollup}: "
                    + ", ".join(f"{name} {ready} {reason}"
                                for name, (ready, reason) in sorted(conditions.items())))
            print(line)
            with (self.work / "conditions.log").open("a") as log:
                log.write(line + "\n")
        self.seen.append(observation)
        return snapshot

    def wait_for(self, *rollups: str, timeout: float = 420.0) -> dict:
        """Collect until the rollup is one of `rollups`; the snapshot."""
        return self.wait_until(lambda snapshot: snapshot["rollup"]["state"] in rollups,
                               f"rollup {' or '.join(rollups)}", timeout)

    def wait_until(self, done, what: str, timeout: float = 420.0) -> dict:
        """Collect until `done(snapshot)`; the snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.collect()
            if done(snapshot):
                return snapshot
            if self.flux is not None:
                self.flux.check()
            assert time.monotonic() < deadline, (
                f"no {what} within {timeout:.0f} s; now {json.dumps(snapshot['rollup'])}"
                f"\nblockers: {json.dumps(snapshot['blockers'], indent=1)}\n"
                + (self.flux.tails() if self.flux else ""))
            time.sleep(1.0)

    def states_passed(self) -> list[str]:
        states = []
        for observation in self.seen:
            if not states or states[-1] != observation.rollup:
                states.append(observation.rollup)
        return states

    def reasons_seen(self) -> set[str]:
        return {reason for observation in self.seen
                for _, reason in observation.flux.values() if reason}

    def clean_up(self) -> None:
        """Remove what Flux made, then the namespaces, so the session's control plane is as
        it was: an object left in deletion would come back in the next test's namespace of
        that name. The controllers are stopped first: a Kustomization waiting on its health
        checks, or a Helm install waiting on a failing pod, holds its object for as long as
        its timeout (Alga's are 10 to 30 minutes) before its finalizer would run. Without the
        controllers the finalizers are taken off by hand; reset() deletes the rest."""
        api = self.api
        if self.flux is not None:
            self.flux.stop()
        for resource in FLUX_RESOURCES:
            for name in self._all(resource):
                namespace, obj = name.split("/")
                api.kubectl("patch", resource, obj, "--namespace", namespace, "--type=merge",
                            "--patch", '{"metadata": {"finalizers": null}}')
            api.kubectl("delete", resource, "--all-namespaces", "--all", "--wait=true",
                        "--timeout=30s")
        left = [name for resource in FLUX_RESOURCES for name in self._all(resource)]
        api.reset()
        assert not left, f"Flux objects not deleted after the test: {left}"

    def _all(self, resource: str) -> list[str]:
        return self.api.kubectl("get", resource, "--all-namespaces", "-o",
                                "jsonpath={range .items[*]}{.metadata.namespace}/"
                                "{.metadata.name}{\"\\n\"}{end}").stdout.split()


@pytest.fixture
def flux_site(control_plane, registry, ca, tmp_path, monkeypatch):
    """A host root handed over by the k3s phase, the release published, the kubelet running;
    `install()` runs the rest."""
    # The session's control plane as the other tests on it left it, emptied: a workload of
    # the same name in msp (tests/cluster/test_kubelet.py makes some) would refuse Helm's.
    control_plane.reset()
    monkeypatch.setenv("PATH", f"{control_plane.bin}:{os.environ['PATH']}")
    root = make_host_root(tmp_path / "root", paths.CURRENT_DIR)
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    node_address = free_loopback_address()
    app = App(node_address, alga.APP_PORT)  # alga-core's server: the node's address, port 3000
    manifest = install_yaml()
    # GitHub's release downloads; the registry is GHCR too, with the image an update's
    # preflight pulls.
    push_pulled_images(registry)
    routes = {FLUX_INSTALL_PATH: Route(body=manifest),
              FLUX_SUMS_PATH: Route(body=flux_sums(manifest))}
    with HttpsServer(ca, routes) as github, \
            DnsServer(free_loopback_address(), {n: ["127.0.0.1"] for n in DNS_NAMES}) as dns, \
            Kubelet(Api.from_kubeconfig(control_plane.kubeconfig), address=node_address,
                    apps={alga.ALGA_CORE: app}, ca=ca) as kubelet:
        (root / "etc/resolv.conf").write_text(f"nameserver {dns.address}\n")
        state.write(state.ENDPOINTS, {"ca_bundle": str(ca.ca_pem_path),
                                      "flux_release_base": f"{github.url}/flux",
                                      "ghcr_base": registry.url}, root)
        state.write(state.RELEASE_SOURCE, {"release_source": oci_source(registry)}, root)
        state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": app.url,
                                         "dns": {"mode": "system"}, "proxy": None,
                                         "overrides": {}}, root)
        _hand_over(root)
        site = FluxSite(root, control_plane, registry, kubelet, app, tmp_path)
        try:
            yield site
        finally:
            site.clean_up()
            app.close()


def _hand_over(root: Path) -> None:
    """The install state as the chain leaves it when the k3s phase has succeeded."""
    install = {"status": "running", "current_phase": "k3s", "updated_at": state.timestamp(),
               "request_id": None, "phases": {}}
    for name in NAMES:
        done = name in HANDED_OVER
        at = state.timestamp() if done else None
        install["phases"][name] = {"state": "succeeded" if done else "pending",
                                   "started_at": at, "finished_at": at,
                                   "last_action": "done" if done else None, "failure": None}
    state.write(state.INSTALL_STATE, install, root)
