"""App channel updates' fixtures (pytest plugin): an appliance the release phase installed
with release 1.0 (`update_installed`, once per module), and `update_lab`, a copy of it on
the fake cluster playing Flux's controllers ($FAKE_FLUX_RECONCILE=ready), with the release
sources, DNS and the app on loopback (`update_servers`). publish() puts a new release on a
channel; the_app() and alga_core() are what Helm leaves running."""

import os
import shutil
from pathlib import Path

import pytest
import yaml

from host.cluster import alga
from host.cluster.alga import ALGA_CORE, BACKGROUND
from host.core import paths, pins, state
from host.setup import engine
from host.update import apply, check
from support.base import ROOT, make_host_root
from support.builders import job, node, workload
from support.cluster import FakeCluster
from support.netlab import DnsServer, HttpsServer, Route, free_loopback_address
from support.releases import CHANNEL, CHANNEL_PATH, DNS_NAMES, MANIFEST, REPO, repo_routes

KERNEL = "6.8.0-49-generic"
CORE_IMAGE = "ghcr.io/nine-minds/alga-psa-ee"
NIGHTLY_PATH = f"{REPO}/main/ee/appliance/releases/channels/nightly.json"


def release(version: str, branch: str, **images: str) -> dict:
    """Routes that publish `version` on `branch` with `images` changed from release 1.0's."""
    manifest = {**MANIFEST, "releaseVersion": version, "app": {
        **MANIFEST["app"], "version": version, "releaseBranch": f"release/{version}",
        "images": {**MANIFEST["app"]["images"], **images}}}
    routes = {f"{REPO}/main/ee/appliance/releases/{version}/release.json": Route(body=manifest)}
    for name in alga.HELM_RELEASES:
        values = {"replicas": 2, "image": {"repository": f"ghcr.io/nine-minds/{name}",
                                           "tag": "from-profile"}}
        routes[f"{REPO}/{branch}/ee/appliance/flux/profiles/single-node/values/"
               f"{name}.single-node.yaml"] = Route(body=yaml.safe_dump(values))
    return routes


def publish(lab, channel: str, version: str, branch: str, **images: str) -> None:
    path = CHANNEL_PATH if channel == "stable" else NIGHTLY_PATH
    lab.github.routes.update(release(version, branch, **images))
    lab.github.routes[path] = Route(body={**CHANNEL, "channel": channel,
                                          "releaseVersion": version, "repoBranch": branch})


def helm_release(name: str) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "alga-system", "generation": 1},
            "spec": {"interval": "10m", "chart": {"spec": {
                "chart": f"./ee/helm/{name}", "sourceRef": {
                    "kind": "GitRepository", "name": "alga-appliance",
                    "namespace": "flux-system"}}},
                "valuesFrom": [{"kind": "ConfigMap", "name": f"appliance-values-{name}",
                                "valuesKey": f"{name}.single-node.yaml"}]}}


def alga_core(tag: str) -> dict:
    """The app's Deployment, as Helm leaves it once it runs `tag`."""
    core = workload("Deployment", ALGA_CORE, 1)
    core["spec"]["template"] = {"spec": {"containers": [
        {"name": "server", "image": f"{CORE_IMAGE}:{tag}"}]}}
    return core


def the_app(core_tag: str) -> list[dict]:
    """What the Alga tree runs once Flux and Helm installed it: the platform Kustomization,
    the Helm releases and a healthy app whose alga-core runs `core_tag`."""
    platform = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "alga-platform", "namespace": "flux-system",
                             "generation": 1},
                "spec": {"interval": "5m", "path": "./ee/appliance/flux/platform", "prune": True,
                         "sourceRef": {"kind": "GitRepository", "name": "alga-appliance"}}}
    return [node(), platform, *map(helm_release, alga.HELM_RELEASES),
            workload("StatefulSet", "db", 1), workload("StatefulSet", "redis", 1),
            workload("Deployment", "pgbouncer", 1), alga_core(core_tag),
            *(workload("Deployment", name, 1) for name in BACKGROUND),
            job(f"{ALGA_CORE}-bootstrap-r1", complete=True)]


class UpdateLab(FakeCluster):
    """An installed appliance's root on the fake cluster, with the release sources (github)
    and the app (app) on loopback."""

    def __init__(self, root: Path, github: HttpsServer, app: HttpsServer):
        super().__init__(root)
        self.github, self.app, self.kubeconfig = github, app, str(root / "k3s.yaml")

    def values(self, name: str) -> dict:
        configmap = self.get("ConfigMap", "alga-system", f"appliance-values-{name}")
        assert list(configmap["data"]) == [f"{name}.single-node.yaml"]
        return yaml.safe_load(configmap["data"][f"{name}.single-node.yaml"])

    def host_files(self) -> dict:
        return {source.name: source.path(self.root).read_bytes() for source in (
            state.SELECTED_RELEASE, state.SETUP_INPUTS, state.MAINTENANCE)}

    def kubectl_calls(self) -> list[list[str]]:
        return [call["argv"][2:] for call in self.calls()]

    def apply(self, channel: str = "stable", confirmed: bool = False) -> dict:
        return apply.apply(self.root, channel, confirmed, "cli", self.kubeconfig)

    def check(self, channel: str = "stable") -> dict:
        return check.check(self.root, channel, "cli")

    def env(self) -> dict:
        """The environment of a separate `alga-appliance` process on this lab."""
        return {key: value for key, value in os.environ.items()
                if key != "FAKE_FLUX_RECONCILE"} | {"PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def update_servers(ca):
    """The release sources (release 1.0 published), the app and DNS, on loopback."""
    routes = {**repo_routes(), "/v2/": Route(status=401)}
    with HttpsServer(ca, dict(routes)) as github, \
            HttpsServer(None, {"/": Route(status=302, headers={"Location": "/msp/login"})}) \
            as app, DnsServer(free_loopback_address(), {n: ["127.0.0.1"] for n in DNS_NAMES}) \
            as dns:
        yield github, app, dns, routes


@pytest.fixture(scope="module")
def update_installed(update_servers, ca, tmp_path_factory):
    """A root where the release phase installed release 1.0, and the app runs."""
    github, app, dns, _ = update_servers
    root = make_host_root(tmp_path_factory.mktemp("installed"), paths.SPOOL_DIR, "proc/sys/kernel")
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    (root / "etc/resolv.conf").write_text(f"nameserver {dns.address}\n")
    (root / "proc/sys/kernel/osrelease").write_text(f"{KERNEL}\n")
    state.write(state.ENDPOINTS, {"raw_base": github.url, "ghcr_base": github.url,
                                  "ca_bundle": str(ca.ca_pem_path),
                                  "release_source": pins.ALGA_REPO_URL}, root)
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": app.url,
                                     "dns": {"mode": "system"}, "proxy": None,
                                     "overrides": {}}, root)
    with pytest.MonkeyPatch.context() as patch:
        FakeCluster(root).use(patch)
        assert engine.run_phase("release", root, kubeconfig=str(root / "k3s.yaml")) == 0
    lab = UpdateLab(root, github, app)
    lab.put(*the_app(MANIFEST["app"]["images"]["algaCore"]))
    (root / "kubectl.log").unlink()
    return root


@pytest.fixture
def update_lab(update_servers, update_installed, tmp_path, monkeypatch):
    """A copy of the installed root, on the fake cluster playing Flux's controllers."""
    github, app, _, routes = update_servers
    github.routes.clear()
    github.routes.update(routes)
    root = tmp_path / "root"
    shutil.copytree(update_installed, root)
    FakeCluster(root).use(monkeypatch)
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "ready")
    monkeypatch.setenv(paths.ROOT_ENV, str(root))  # for the CLI, which sets it itself
    monkeypatch.setattr(apply, "POLL_SECONDS", 0.05)
    for timeout in ("FLUX_TIMEOUT", "HELM_TIMEOUT", "LOGIN_TIMEOUT"):
        monkeypatch.setattr(apply, timeout, 10.0)
    return UpdateLab(root, github, app)
