"""Pinned versions and the release sources they come from: the one place to bump them.

Like k3s's install.sh, nothing downloaded from these is used before its checksum is
verified (the k3s phase checks sha256sum-amd64.txt; the Flux phase pins install.yaml).
"""

K3S_VERSION = "v1.33.3+k3s1"
FLUX_VERSION = "v2.7.3"
# Images preflight pulls (token, manifest, a blob) to prove the registries the install needs
# answer: the pause image k3s's containerd pulls from Docker Hub first (k3s's default
# --pause-image), and the source-controller image Flux FLUX_VERSION installs from GHCR (the
# version ci/k8s/flux/source-controller builds).
K3S_PAUSE_IMAGE = "rancher/mirrored-pause:3.6"
FLUX_SOURCE_CONTROLLER_IMAGE = "fluxcd/source-controller:v1.7.3"
# The ref the channel file and release manifest are read from unless support overrides it.
ALGA_DEFAULT_REF = "main"
ALGA_REPO_URL = "https://github.com/Nine-Minds/alga-psa"
CHANNEL_PATH = "ee/appliance/releases/channels/{channel}.json"
MANIFEST_PATH = "ee/appliance/releases/{release}/release.json"
PROFILE_VALUES_PATH = "ee/appliance/flux/profiles/{profile}/values/{release}.{profile}.yaml"

# Where releases come from unless the ISO's payload or support names another source: Alga's
# release artifact on GHCR, whose tags stable and nightly are the channels (since June
# 2026). A git repository URL (ALGA_REPO_URL or a fork) selects the channel files above.
RELEASE_SOURCE = "oci://ghcr.io/nine-minds/alga-appliance-release"
# Where host releases (the appliance's own software, `isobuild host-release`) are published.
HOST_RELEASE_REPOSITORY = "ghcr.io/nine-minds/alga-appliance-host"
