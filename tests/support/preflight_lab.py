"""The release-repository lab (pytest plugin): a host root whose preflight reaches
GitHub, GHCR and DNS stand-ins on loopback (netlab servers with the test CA), serving the
canonical release of support.releases from git channel files (the release source
configured unless a test names another). Fixture: `preflight_lab`."""

import dataclasses
from pathlib import Path

import pytest

from host.core import pins, state
from host.setup import engine
from support.base import make_host_root
from support.netlab import (
    ConnectProxy,
    DnsServer,
    HttpsServer,
    TestCA,
    free_loopback_address,
)
from support.oci import platform_image
from support.registry import Registry
from support.releases import DNS_NAMES, github_routes, oci_source, publish_oci


@dataclasses.dataclass
class PreflightLab:
    root: Path
    github: HttpsServer
    ghcr: HttpsServer | Registry  # GHCR (and, unless a test says, Docker Hub): a registry
    dns: DnsServer
    ca: TestCA
    # With the OCI source (oci_lab): the registry, the release on stable and its digest.
    registry: Registry | None = None
    release_digest: str | None = None
    release_manifest: dict | None = None

    def configure(self, *, dns_mode="system", proxy=None, github_base=None, ghcr_base=None,
                  resolver=None, release_source=pins.ALGA_REPO_URL, dockerhub_base=None):
        resolver = resolver or self.dns.address
        (self.root / "etc/resolv.conf").write_text(f"nameserver {resolver}\n")
        github = github_base or self.github.url
        state.write(state.ENDPOINTS, {
            "raw_base": github, "ghcr_base": ghcr_base or self.ghcr.url,
            "dockerhub_base": dockerhub_base or ghcr_base or self.ghcr.url,
            "k3s_release_base": f"{github}/k3s", "flux_release_base": f"{github}/flux",
            "ca_bundle": str(self.ca.ca_pem_path), "release_source": release_source}, self.root)
        dns = {"mode": "system"} if dns_mode == "system" else {"mode": "custom",
                                                               "servers": [resolver]}
        # The lab changes the network, not the account: credentials a setup recorded stay.
        recorded = state.read(state.SETUP_INPUTS, self.root) or {}
        admin = {"admin": recorded["admin"]} if "admin" in recorded else {}
        state.write(state.SETUP_INPUTS, {
            "channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": dns,
            "proxy": proxy, "overrides": {}, **admin}, self.root)

    def run(self):
        status = engine.run_phase("preflight", self.root)
        report = state.read(state.PREFLIGHT_REPORT, self.root)
        failed = {c["id"] for c in report["checks"] if c["status"] == "fail"}
        record = state.read(state.INSTALL_STATE, self.root)["phases"]["preflight"]
        assert (status == 0) == (not failed) == (record["state"] in ("succeeded", "skipped"))
        return failed, record["failure"], {c["id"]: c for c in report["checks"]}


@pytest.fixture
def preflight_lab(tmp_path, ca):
    make_host_root(tmp_path)
    records = {name: ["127.0.0.1"] for name in DNS_NAMES}
    with HttpsServer(ca, github_routes(), hostnames=("github.test",)) as github, \
            Registry(ca, hostnames=("ghcr.test",)) as ghcr, \
            DnsServer(free_loopback_address(), records) as dns:
        push_pulled_images(ghcr)
        lab = PreflightLab(tmp_path, github, ghcr, dns, ca)
        lab.configure()
        yield lab


def push_pulled_images(registry: Registry) -> None:
    """The images preflight pulls, each a multi-platform index as the real registries
    serve them."""
    for image in (pins.FLUX_SOURCE_CONTROLLER_IMAGE, pins.K3S_PAUSE_IMAGE):
        repository, _, tag = image.rpartition(":")
        index, platforms = platform_image()
        for platform in platforms:
            registry.push(repository, platform)
        registry.push(repository, index, tag)


def proxy_inputs(proxy: ConnectProxy, credentials: tuple[str, str] | None = None) -> dict:
    """The setup inputs' proxy for `proxy`, with `credentials` (user, password) if given."""
    inputs = {"url": proxy.url, "no_proxy": ["localhost", "127.0.0.1", ".svc", ".cluster.local"]}
    if credentials:
        inputs["user"], inputs["password"] = credentials
    return inputs


@pytest.fixture
def oci_lab(preflight_lab, registry):
    """The preflight lab with the OCI release source: a real registry (support.registry)
    where release 1.0.3 is published on stable, configured as the release source."""
    digest, manifest = publish_oci(registry)
    preflight_lab.configure(release_source=oci_source(registry))
    preflight_lab.registry, preflight_lab.release_digest = registry, digest
    preflight_lab.release_manifest = manifest
    return preflight_lab
