"""Flux's controllers as ci/k8s/build-flux.sh builds them for the real Kubernetes tier: each
binary starts and lists its flags, and the CRD manifests it caches are the ones the tests'
reference copies (tests/fixtures/flux-crds) hold."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from support.base import TESTS
from support.flux_controllers import binary, cache_dir

FIXTURE_CRDS = TESTS / "fixtures" / "flux-crds"
# The flags the tier runs every controller with (tests/support/flux_controllers.py), and the
# ones source-controller needs besides to keep and serve artifacts. The controllers have no
# --kubeconfig flag (it is controller-runtime's, on Go's flag set, which Flux does not parse):
# they read $KUBECONFIG.
COMMON_FLAGS = ("--enable-leader-election", "--watch-all-namespaces", "--metrics-addr",
                "--health-addr")
FLAGS = {
    "source-controller": (*COMMON_FLAGS, "--storage-path", "--storage-addr",
                          "--storage-adv-addr"),
    "kustomize-controller": COMMON_FLAGS,
    "helm-controller": COMMON_FLAGS,
}
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
    # The controllers parse with pflag's ExitOnError: --help prints the usage, then
    # "pflag: help requested", and exits 2 (as a Go panic would too, hence the message).
    assert done.returncode == 2, usage
    assert "pflag: help requested" in usage, usage
    missing = [flag for flag in FLAGS[name] if flag not in usage]
    assert not missing, f"{name} --help does not mention {missing}:\n{usage}"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_cached_crds_are_the_reference_copies(kind):
    cached = cached_crd(CRDS[kind])
    assert cached.exists(), f"no {CRDS[kind]} in {cached.parent}"
    fixture = FIXTURE_CRDS / CRDS[kind]
    if cached.read_bytes() != fixture.read_bytes():
        origin = next((line for line in (cached.parent / "SOURCES").read_text().splitlines()
                       if line.startswith(CRDS[kind] + " ")), "origin not recorded")
        pytest.fail(f"{kind}: the cached {cached} ({origin}) differs from {fixture}:\n"
                    + crd_difference(cached, fixture))


def crd_difference(cached: Path, fixture: Path) -> str:
    """What differs, in terms of the CRD: generator, versions served, and per common version
    how many schema values only one side has or both have differently."""
    def leaves(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from leaves(value, f"{path}[{index}]")
        else:
            yield path, node

    ours, theirs = yaml.safe_load(cached.read_text()), yaml.safe_load(fixture.read_text())
    lines = [f"  annotations: cached {ours['metadata'].get('annotations')}, "
             f"fixture {theirs['metadata'].get('annotations')}"]
    versions = [{v["name"]: v for v in crd["spec"]["versions"]} for crd in (ours, theirs)]
    lines.append(f"  versions: cached {sorted(versions[0])}, fixture {sorted(versions[1])}")
    for name in sorted(set(versions[0]) & set(versions[1])):
        a, b = (dict(leaves(v[name]["schema"])) for v in versions)
        only_fixture = sorted({k.rsplit("/", 1)[0] for k in b.keys() - a.keys()})
        lines.append(f"  {name}: {len(b.keys() - a.keys())} schema values only in the fixture, "
                     f"{len(a.keys() - b.keys())} only in the cache, "
                     f"{sum(a[k] != b[k] for k in a.keys() & b.keys())} different; "
                     f"fixture-only under: {', '.join(only_fixture[:8])}"
                     + (" ..." if len(only_fixture) > 8 else ""))
    return "\n".join(lines)
