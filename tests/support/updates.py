"""App channel updates' fixtures (pytest plugin): an appliance the release phase installed
with release 1.0 from git channel files (`update_installed`, once per module), and
`update_lab`, a copy of it on the fake cluster playing Flux's controllers
($FAKE_FLUX_RECONCILE=ready), with the release sources, DNS and the app on loopback
(`update_servers`); `oci_update_lab`, the same installed from the OCI release source (release
1.0.3 on stable in a real registry). publish() puts a new release on a git channel,
OciUpdateLab.publish on the registry; the_app() and alga_core() are what Helm leaves
running."""

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

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
from support.preflight_lab import push_pulled_images
from support.registry import Registry
from support.releases import (
    CHANNEL,
    CHANNEL_PATH,
    DNS_NAMES,
    MANIFEST,
    OCI_IMAGES,
    REPO,
    oci_source,
    publish_oci,
    repo_routes,
)
from support.scenarios import alga_server

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


PLATFORM_PATHS = {"GitRepository": "./ee/appliance/flux/base/platform",
                  "OCIRepository": "./base/platform"}


def the_app(core_tag: str, node_address: str, source_kind: str = "GitRepository") -> list[dict]:
    """What the Alga tree (from a source of `source_kind`) runs once Flux and Helm installed
    it: the platform Kustomization, the Helm releases and a healthy app whose alga-core runs
    `core_tag` on the node at `node_address`."""
    platform = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "alga-platform", "namespace": "flux-system",
                             "generation": 1},
                "spec": {"interval": "5m", "path": PLATFORM_PATHS[source_kind], "prune": True,
                         "sourceRef": {"kind": source_kind, "name": "alga-appliance"}}}
    return [node(address=node_address), platform, *map(helm_release, alga.HELM_RELEASES),
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

    def apply(self, channel: str = "stable", confirmed: bool = False,
              digest: str | None = None) -> dict:
        return apply.apply(self.root, channel, confirmed, "cli", self.kubeconfig,
                           digest=digest)

    def check(self, channel: str = "stable") -> dict:
        return check.check(self.root, channel, "cli")

    def env(self) -> dict:
        """The environment of a separate `alga-appliance` process on this lab."""
        return {key: value for key, value in os.environ.items()
                if key != "FAKE_FLUX_RECONCILE"} | {"PYTHONPATH": str(ROOT)}


class OciUpdateLab(UpdateLab):
    """An appliance installed from the OCI release source: the registry holding its releases
    (`installed`: the release artifact's digest), and the git sources beside it."""

    def __init__(self, root: Path, github: HttpsServer, app: HttpsServer, registry: Registry,
                 installed: str):
        super().__init__(root, github, app)
        self.registry, self.installed = registry, installed

    def publish(self, version: str, tags: tuple[str, ...] = ("stable",), **changed) -> tuple[
            str, dict]:
        """Push `version` (tagged `tags`), as publish_oci does; its digest and manifest."""
        return publish_oci(self.registry, version, tags, **changed)

    def source(self, pin: str = "") -> str:
        return oci_source(self.registry, pin)


@pytest.fixture(scope="module")
def update_servers(ca):
    """The release sources (release 1.0 published), the app, DNS and GHCR (with the image
    preflight pulls), on loopback."""
    routes = {**repo_routes(), "/v2/": Route(status=401)}
    with HttpsServer(ca, dict(routes)) as github, \
            alga_server({"/": Route(status=302, headers={"Location": "/msp/login"})}) as app, \
            DnsServer(free_loopback_address(), {n: ["127.0.0.1"] for n in DNS_NAMES}) \
            as dns, Registry(ca) as ghcr:
        push_pulled_images(ghcr)
        yield github, app, dns, routes, ghcr


@pytest.fixture(scope="module")
def update_installed(update_servers, ca, tmp_path_factory):
    """A root where the release phase installed release 1.0, and the app runs."""
    github, app, dns, _, ghcr = update_servers
    root = _host_root(tmp_path_factory.mktemp("installed"), dns.address, app.url)
    state.write(state.ENDPOINTS, {"raw_base": github.url, "ghcr_base": ghcr.url,
                                  "ca_bundle": str(ca.ca_pem_path),
                                  "release_source": pins.ALGA_REPO_URL}, root)
    with pytest.MonkeyPatch.context() as patch:
        FakeCluster(root).use(patch)
        _install(root, MANIFEST["app"]["images"]["algaCore"], "GitRepository")
    return root


def _host_root(base: Path, nameserver: str, app_url: str) -> Path:
    """A host root whose setup inputs name `app_url`, resolving through `nameserver`."""
    root = make_host_root(base, paths.SPOOL_DIR, "proc/sys/kernel")
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    (root / "etc/resolv.conf").write_text(f"nameserver {nameserver}\n")
    (root / "proc/sys/kernel/osrelease").write_text(f"{KERNEL}\n")
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": app_url,
                                     "dns": {"mode": "system"}, "proxy": None,
                                     "overrides": {}}, root)
    return root


def _install(root: Path, core_tag: str, source_kind: str) -> None:
    """The release phase on the fake cluster, then what Flux and Helm make of it; the
    kubectl log starts empty, so a test sees only the calls an update makes."""
    assert engine.run_phase("release", root, kubeconfig=str(root / "k3s.yaml")) == 0
    app_address = urlsplit(state.read(state.SETUP_INPUTS, root)["app_url"]).hostname
    FakeCluster(root).put(*the_app(core_tag, app_address, source_kind))
    (root / "kubectl.log").unlink()


def _playing_flux(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake cluster answers as Flux's controllers do, and the updater polls fast."""
    FakeCluster(root).use(monkeypatch)
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "ready")
    monkeypatch.setenv(paths.ROOT_ENV, str(root))  # for the CLI, which sets it itself
    monkeypatch.setattr(apply, "POLL_SECONDS", 0.05)
    for timeout in ("FLUX_TIMEOUT", "HELM_TIMEOUT", "LOGIN_TIMEOUT"):
        monkeypatch.setattr(apply, timeout, 10.0)


@pytest.fixture
def update_lab(update_servers, update_installed, tmp_path, monkeypatch):
    """A copy of the installed root, on the fake cluster playing Flux's controllers."""
    github, app, _, routes, _ = update_servers
    github.routes.clear()
    github.routes.update(routes)
    root = tmp_path / "root"
    shutil.copytree(update_installed, root)
    _playing_flux(root, monkeypatch)
    return UpdateLab(root, github, app)


@pytest.fixture
def oci_update_lab(update_servers, registry, ca, tmp_path, monkeypatch):
    """An appliance the release phase installed from the OCI release source that
    endpoints.json names (release 1.0.3 on stable, on a real registry), on the fake cluster
    playing Flux's controllers; the git sources, DNS and the app as for update_lab."""
    github, app, dns, routes, _ = update_servers
    github.routes.clear()
    github.routes.update(routes)
    installed, _ = publish_oci(registry)
    push_pulled_images(registry)  # the release's registry is GHCR here
    root = _host_root(tmp_path / "root", dns.address, app.url)
    state.write(state.ENDPOINTS, {"raw_base": github.url, "ghcr_base": registry.url,
                                  "ca_bundle": str(ca.ca_pem_path),
                                  "release_source": oci_source(registry)}, root)
    FakeCluster(root).use(monkeypatch)
    _install(root, OCI_IMAGES["algaCore"], "OCIRepository")
    _playing_flux(root, monkeypatch)
    return OciUpdateLab(root, github, app, registry, installed)
