"""Flux's controllers as ci/k8s/build-flux.sh builds them for the real Kubernetes tier: each
binary starts and lists the flags the tier runs it with, and the appliance's objects satisfy
the CRDs of the pinned Flux that it caches (the controllers' own), which differ from the
tests' reference copies (tests/fixtures/flux-crds: tests/README.md says how)."""

import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from support.flux_controllers import binary, cache_dir

from host.cluster import objects

# The flags the tier runs every controller with (tests/support/flux_controllers.py), and the
# ones source-controller needs besides to keep and serve artifacts. The controllers have no
# --kubeconfig flag (it is controller-runtime's, on Go's flag set, which Flux does not parse):
# they read $KUBECONFIG.
COMMON_FLAGS = ("--enable-leader-election", "--watch-all-namespaces", "--metrics-addr",
                "--health-addr")
DEPENDENTS_FLAGS = (*COMMON_FLAGS, "--requeue-dependency")
FLAGS = {"source-controller": (*COMMON_FLAGS, "--storage-path", "--storage-addr",
                               "--storage-adv-addr"),
         "kustomize-controller": DEPENDENTS_FLAGS,
         "helm-controller": DEPENDENTS_FLAGS}
CRDS = {
    "OCIRepository": "source.toolkit.fluxcd.io_ocirepositories.yaml",
    "GitRepository": "source.toolkit.fluxcd.io_gitrepositories.yaml",
    "Kustomization": "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    "HelmRelease": "helm.toolkit.fluxcd.io_helmreleases.yaml",
}


def cached_crd(file_name: str) -> Path:
    directory = cache_dir() / "crds"
    if not directory.is_dir():
        pytest.skip(f"the Flux CRDs are not built: run ci/k8s/build-flux.sh "
                    f"(it builds into {directory.parent})")
    return directory / file_name


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_each_controller_starts_and_lists_its_flags(name, tmp_path):
    done = subprocess.run([str(binary(name)), "--help"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    usage = done.stdout + done.stderr
    # --help prints pflag's usage and exits 0 (a binary that cannot start panics, exit 2).
    assert done.returncode == 0, usage
    assert usage.startswith(f"Usage of {binary(name)}:"), usage
    missing = [flag for flag in FLAGS[name] if flag not in usage]
    assert not missing, f"{name} --help does not mention {missing}:\n{usage}"


# The appliance's objects of each kind, as the release phase builds them for both sources.
OBJECTS = {
    "OCIRepository": lambda: [objects.oci_repository("ghcr.io/nine-minds/alga-appliance-config",
                                                     "sha256:" + "5e" * 32, AT)],
    "GitRepository": lambda: [objects.git_repository("https://github.com/Nine-Minds/alga-psa",
                                                     "release/1.0.0", AT)],
    "Kustomization": lambda: [objects.kustomization(source, AT) for source in (
        objects.oci_repository("ghcr.io/nine-minds/alga-appliance-config", "sha256:" + "5e" * 32,
                               AT),
        objects.git_repository("https://github.com/Nine-Minds/alga-psa", "main", AT))],
}
AT = "2026-12-06T10:00:00.123456Z"


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_the_appliances_objects_satisfy_the_crds_the_pinned_flux_installs(kind):
    """The fixtures (tests/fixtures/flux-crds, the reference copies) are of another Flux than
    the pinned one; the objects must satisfy what the appliance's own Flux installs too."""
    document = yaml.safe_load(cached_crd(CRDS[kind]).read_text())
    version = next(v for v in document["spec"]["versions"] if v["storage"])
    validator = jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])
    for obj in OBJECTS[kind]():
        assert obj["apiVersion"] == f"{document['spec']['group']}/{version['name']}"
        validator.validate(obj)
