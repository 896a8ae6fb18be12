"""The release sources as the tests publish them: the canonical OCI release (pushed to a
registry by publish_oci, or built by oci_release for the VM tier's mirror to serve), the
canonical channel and release manifest of the Alga repository, the k3s and Flux releases
(with stand-in binaries and their checksum files), and the routes that serve them from a
netlab HttpsServer."""

import hashlib
import json

import yaml

from host.cluster import alga
from host.core import paths, pins, state
from support import oci
from support.base import FAKES, make_host_root
from support.netlab import Route

REPO = "/Nine-Minds/alga-psa"
CHANNEL = {"channel": "stable", "releaseVersion": "1.0", "repoBranch": "release/1.0.0",
           "updatedAt": "2026-05-26T00:00:00Z"}
MANIFEST = {"releaseVersion": "1.0", "generatedAt": "2026-06-04T22:00:00Z", "app": {
    "version": "1.0", "releaseBranch": "release/1.0.0", "valuesProfile": "single-node",
    "images": {"algaCore": "eaec6253", "workflowWorker": "a2cbb43", "emailService": "61e4a00e",
               "temporalWorker": "a2cbb43"}}}
CHANNEL_PATH = f"{REPO}/main/ee/appliance/releases/channels/stable.json"
MANIFEST_PATH = f"{REPO}/main/ee/appliance/releases/1.0/release.json"
DNS_NAMES = ("github.com", "raw.githubusercontent.com", "release-assets.githubusercontent.com",
             "objects.githubusercontent.com", "ghcr.io", "pkg-containers.githubusercontent.com",
             "registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com")
PROFILE = "single-node"
VALUES_PATH = (REPO + "/release/1.0.0/ee/appliance/flux/profiles/single-node/values/"
               "{}.single-node.yaml")


# The k3s release: a stand-in binary (bytes only), its checksums, a Ready node.
K3S_BINARY = b"#!/bin/sh\n# k3s stand-in\n" + bytes(range(256)) * 400
K3S_BINARY_PATH = f"/k3s/{pins.K3S_VERSION}/k3s"
K3S_SUMS_PATH = f"/k3s/{pins.K3S_VERSION}/sha256sum-amd64.txt"
READY_NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "alga-appliance"},
              "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                        {"type": "Ready", "status": "True"}]}}


def k3s_sums(binary: bytes) -> str:
    return (f"{hashlib.sha256(binary).hexdigest()}  k3s\n"
            f"{'1' * 64}  k3s-airgap-images-amd64.tar.zst\n")


# The Flux release: install.yaml with its namespace, a CRD and the controllers.
FLUX_VERSION = pins.FLUX_VERSION.removeprefix("v")
FLUX_INSTALL_PATH = f"/flux/{pins.FLUX_VERSION}/install.yaml"
FLUX_SUMS_PATH = f"/flux/{pins.FLUX_VERSION}/flux_{FLUX_VERSION}_checksums.txt"


def flux_controller(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "manager", "image": f"ghcr.io/fluxcd/{name}:v1",
                 "env": [{"name": "RUNTIME_NAMESPACE", "value": "flux-system"}]}]}}}}


FLUX_INSTALL = yaml.safe_dump_all([
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "gitrepositories.source.toolkit.fluxcd.io"}, "spec": {}},
    flux_controller("source-controller"), flux_controller("kustomize-controller"),
    flux_controller("helm-controller")]).encode()


def flux_sums(content: bytes) -> str:
    return (f"{'2' * 64}  flux_{FLUX_VERSION}_linux_amd64.tar.gz\n"
            f"{hashlib.sha256(content).hexdigest()}  install.yaml\n")


# The k3s release as booted machines get it: the stand-in that really runs (tests/fakes/k3s).
K3S_STAND_IN = (FAKES / "k3s").read_bytes()  # the stand-in itself, for booted machines
K3S_SUMS = f"{hashlib.sha256(K3S_STAND_IN).hexdigest()}  k3s\n"


def github_routes() -> dict[str, Route]:
    return {CHANNEL_PATH: Route(body=CHANNEL), MANIFEST_PATH: Route(body=MANIFEST),
            K3S_SUMS_PATH: Route(body=f"{'0' * 64}  k3s\n"),
            FLUX_INSTALL_PATH: Route(body="kind: List\n")}


def repo_routes() -> dict[str, Route]:
    # The manifest is on the default branch only, not on the channel's repoBranch.
    routes = {CHANNEL_PATH: Route(body=CHANNEL), MANIFEST_PATH: Route(body=MANIFEST)}
    for release in alga.HELM_RELEASES:
        values = {"replicas": 1, "image": {"repository": f"ghcr.io/nine-minds/{release}",
                                           "tag": "from-profile"}}
        routes[VALUES_PATH.format(release)] = Route(body=yaml.safe_dump(values))
    return routes


def download_routes() -> dict[str, Route]:
    """By path: the k3s release (the stand-in) and the Flux release, as the machine tiers
    download them."""
    return {K3S_SUMS_PATH: Route(body=K3S_SUMS), K3S_BINARY_PATH: Route(body=K3S_STAND_IN),
            FLUX_INSTALL_PATH: Route(body=FLUX_INSTALL),
            FLUX_SUMS_PATH: Route(body=flux_sums(FLUX_INSTALL))}


# The OCI release as Alga publishes it (docs/reference/alga-formats.md, "Releases as OCI
# artifacts"): a release artifact tagged with its version and channel, whose config blob is
# the release manifest, pinning a Flux config bundle by digest.
RELEASE_REPOSITORY = "nine-minds/alga-appliance-release"
CONFIG_REPOSITORY = "nine-minds/alga-appliance-config"
OCI_VERSION = "1.0.3"
OCI_IMAGES = {"algaCore": "62cdce38", "workflowWorker": "a2cbb43", "emailService": "61e4a00e",
              "temporalWorker": "a2cbb43"}
OCI_CHARTS = {"sebastian": "0.0.1", "pgbouncer": "0.1.0", "temporal": "0.1.0",
              "workflow-worker": "0.1.0", "email-service": "0.1.0", "temporal-worker": "0.1.0"}


def bundle_files(version: str) -> dict[str, bytes]:
    """The config bundle's tree (what `flux push artifact` takes from ee/appliance/flux/)."""
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": ["namespaces.yaml"]}
    return {"base/kustomization.yaml": yaml.safe_dump(kustomization).encode(),
            "base/namespaces.yaml": f"# release {version}\n".encode(),
            "profiles/single-node/kustomization.yaml": b"resources: [../../base]\n"}


def profile_values(replicas: int = 1) -> dict[str, str]:
    return {f"{release}.single-node.yaml": yaml.safe_dump(
        {"replicas": replicas, "image": {"repository": f"ghcr.io/nine-minds/{release}",
                                         "tag": "from-profile"}})
        for release in alga.HELM_RELEASES}


def oci_manifest(registry_host: str, bundle_digest: str, version: str = OCI_VERSION,
                 channel: str = "stable", replicas: int = 1, charts: dict | None = None,
                 **images: str) -> dict:
    """The release manifest (the artifact's config blob) of `version`, its chart versions
    `charts` changed from OCI_CHARTS."""
    return {"schema": "alga.appliance.release/v1", "version": version, "channel": channel,
            "valuesProfile": "single-node", "images": {**OCI_IMAGES, **images},
            "controlPlane": OCI_IMAGES["algaCore"],
            "config": {"repository": f"{registry_host}/{CONFIG_REPOSITORY}", "tag": version,
                       "digest": bundle_digest},
            "charts": {**OCI_CHARTS, **(charts or {})}, "profileValues": profile_values(replicas)}


def oci_release(registry_host: str, version: str = OCI_VERSION, channel: str = "stable",
                replicas: int = 1, charts: dict | None = None,
                files: dict[str, bytes] | None = None, **images: str
                ) -> tuple[oci.Artifact, oci.Artifact]:
    """`version`'s config bundle (its tree `files`, else a placeholder) and release artifact
    as Alga publishes them on `registry_host`, which the manifest names: to push, or to lay
    out for fakes/mirror."""
    bundle = oci.config_bundle(files or bundle_files(version))
    manifest = oci_manifest(registry_host, bundle.digest, version, channel, replicas, charts,
                            **images)
    return bundle, oci.release_artifact(manifest)


def publish_oci(registry, version: str = OCI_VERSION, tags: tuple[str, ...] = ("stable",),
                replicas: int = 1, charts: dict | None = None,
                files: dict[str, bytes] | None = None, **images: str) -> tuple[str, dict]:
    """Push `version`'s config bundle and release artifact (tagged with the version and
    `tags`) as Alga's publishing does; the artifact's digest and its release manifest."""
    bundle, release = oci_release(registry.host, version, tags[0] if tags else "stable",
                                  replicas, charts, files, **images)
    registry.push(CONFIG_REPOSITORY, bundle, version)
    digest = registry.push(RELEASE_REPOSITORY, release, version, *tags)
    return digest, json.loads(release.config.data)


def oci_source(registry, pin: str = "") -> str:
    """The release source reference naming the test registry's release repository."""
    return f"oci://{registry.host}/{RELEASE_REPOSITORY}{pin}"


def oci_host_root(root, ca, registry) -> tuple[str, dict]:
    """A host root set up to install from `registry`'s stable (release 1.0.3, published
    here), named as the ISO payload names it (isobuild build --release-source); the
    artifact's digest and its release manifest."""
    make_host_root(root, paths.CURRENT_DIR)
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    digest, manifest = publish_oci(registry)
    state.write(state.ENDPOINTS, {"ca_bundle": str(ca.ca_pem_path)}, root)
    state.write(state.RELEASE_SOURCE, {"release_source": oci_source(registry)}, root)
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "https://psa.example.com",
                                     "dns": {"mode": "system"}, "proxy": None,
                                     "overrides": {}}, root)
    return digest, manifest
