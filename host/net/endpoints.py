"""Every base URL and name the appliance contacts, with the support/mirror overrides.

Defaults are the public GitHub, GHCR and release hosts; /etc/alga-appliance/endpoints.json
(schemas/endpoints.schema.json) overrides any of them.
"""

from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from host.core import pins, state


@dataclass(frozen=True)
class Endpoints:
    raw_base: str = "https://raw.githubusercontent.com"
    ghcr_base: str = "https://ghcr.io"
    # Where k3s pulls its system images (pause, CoreDNS, local-path, metrics-server).
    dockerhub_base: str = "https://registry-1.docker.io"
    k3s_release_base: str = "https://github.com/k3s-io/k3s/releases/download"
    flux_release_base: str = "https://github.com/fluxcd/flux2/releases/download"
    # What preflight resolves: GitHub (its release downloads redirect to the asset hosts),
    # GHCR and its blob host, Docker Hub's registry, token service and blob host.
    dns_names: tuple[str, ...] = ("github.com", "raw.githubusercontent.com",
                                  "release-assets.githubusercontent.com",
                                  "objects.githubusercontent.com", "ghcr.io",
                                  "pkg-containers.githubusercontent.com",
                                  "registry-1.docker.io", "auth.docker.io",
                                  "production.cloudflare.docker.com")
    ca_bundle: str | None = None
    release_source: str | None = None  # overrides the payload's (host/releases/source.py)

    def repo_file(self, repo_url: str, ref: str, path: str) -> str:
        owner_repo = urlsplit(repo_url).path.strip("/")
        return f"{self.raw_base}/{owner_repo}/{ref}/{path}"

    def k3s_checksums(self) -> str:
        return f"{self.k3s_release_base}/{pins.K3S_VERSION}/sha256sum-amd64.txt"

    def k3s_binary(self) -> str:
        return f"{self.k3s_release_base}/{pins.K3S_VERSION}/k3s"

    def flux_install_manifest(self) -> str:
        return f"{self.flux_release_base}/{pins.FLUX_VERSION}/install.yaml"

    def flux_checksums(self) -> str:
        version = pins.FLUX_VERSION.removeprefix("v")
        return f"{self.flux_release_base}/{pins.FLUX_VERSION}/flux_{version}_checksums.txt"

    def registry_probe(self) -> str:
        return f"{self.ghcr_base}/v2/"


def load(root: Path | None = None) -> Endpoints:
    overrides = state.read(state.ENDPOINTS, root) or {}
    if "dns_names" in overrides:
        overrides["dns_names"] = tuple(overrides["dns_names"])
    # The schema admits exactly the Endpoints fields.
    return replace(Endpoints(), **overrides)
