"""The release phase from the OCI release source (the default): release 1.0.3 on a real
registry (support.registry), kubectl's interface (tests/fakes/kubectl). The objects it
creates validate against the Flux CRDs; no GitRepository exists for an OCI release."""

from pathlib import Path

import pytest
import yaml
from support import oci
from support.crds import assert_valid
from support.releases import (
    CONFIG_REPOSITORY,
    OCI_IMAGES,
    RELEASE_REPOSITORY,
    oci_host_root,
    publish_oci,
)

from host.cluster import alga
from host.core import state
from host.setup import engine


@pytest.fixture
def lab(tmp_path, ca, fake_cluster, registry):
    digest, manifest = oci_host_root(tmp_path, ca, registry)
    return tmp_path, registry, fake_cluster, digest, manifest


def run_release(root: Path) -> tuple[int, dict]:
    status = engine.run_phase("release", root, kubeconfig=str(root / "kubeconfig"))
    return status, state.read(state.INSTALL_STATE, root)["phases"]["release"]


def test_an_oci_release_is_pinned_by_digest(lab):
    root, registry, cluster, digest, manifest = lab
    status, record = run_release(root)
    assert status == 0, record
    stored = cluster.objects()
    for obj in stored.values():
        assert_valid(obj)
    assert not [key for key in stored if key.startswith("GitRepository/")]
    source = cluster.get("OCIRepository", "flux-system", "alga-appliance")
    assert source["spec"] == {"url": f"oci://{registry.host}/{CONFIG_REPOSITORY}",
                              "ref": {"digest": manifest["config"]["digest"]},
                              "interval": "1m"}
    root_kustomization = cluster.get("Kustomization", "flux-system", "alga-appliance")
    assert root_kustomization["spec"]["path"] == "./base"
    assert root_kustomization["spec"]["sourceRef"] == {"kind": "OCIRepository",
                                                       "name": "alga-appliance"}
    assert root_kustomization["spec"]["prune"] is True
    selection = cluster.get("ConfigMap", "alga-system", "appliance-release-selection")["data"]
    assert selection == {"releaseVersion": "1.0.3", "channel": "stable", "appVersion": "1.0.3",
                         **OCI_IMAGES, "registryHost": registry.host,
                         "repository": RELEASE_REPOSITORY, "manifestDigest": digest}
    selected = state.read(state.SELECTED_RELEASE, root)
    assert (selected["source"], selected["manifest_digest"]) == ("oci", digest)
    assert state.read(state.MAINTENANCE, root)["app"]["release_version"] == "1.0.3"


def test_values_come_from_the_manifests_profile_values_with_the_patched_scalars(lab):
    root, _, cluster, _, _ = lab
    assert run_release(root)[0] == 0
    for release in alga.HELM_RELEASES:
        configmap = cluster.get("ConfigMap", "alga-system", f"appliance-values-{release}")
        assert list(configmap["data"]) == [f"{release}.single-node.yaml"]
    core = yaml.safe_load(cluster.get("ConfigMap", "alga-system", "appliance-values-alga-core")[
        "data"]["alga-core.single-node.yaml"])
    assert core["server"]["image"]["tag"] == core["setup"]["image"]["tag"] == "62cdce38"
    assert (core["appUrl"], core["host"], core["bootstrap"]) == (
        "https://psa.example.com", "psa.example.com", {"mode": "fresh"})
    assert core["replicas"] == 1  # from profileValues
    email = yaml.safe_load(cluster.get("ConfigMap", "alga-system",
                                       "appliance-values-email-service")["data"][
        "email-service.single-node.yaml"])
    assert email["image"] == {"repository": "ghcr.io/nine-minds/email-service",
                              "tag": OCI_IMAGES["emailService"]}


def test_an_image_the_release_does_not_name_keeps_its_profile_tag(lab):
    root, registry, cluster, _, _ = lab
    _, manifest = publish_oci(registry, "1.0.4")
    manifest["images"] = {"algaCore": "c0ffee11"}
    registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
    assert run_release(root)[0] == 0
    worker = yaml.safe_load(cluster.get("ConfigMap", "alga-system",
                                        "appliance-values-workflow-worker")["data"][
        "workflow-worker.single-node.yaml"])
    assert worker["image"]["tag"] == "from-profile"
    selection = cluster.get("ConfigMap", "alga-system", "appliance-release-selection")["data"]
    assert selection["algaCore"] == "c0ffee11" and "workflowWorker" not in selection


def test_a_release_source_that_fails_is_classified_and_changes_nothing(lab):
    root, registry, cluster, _, manifest = lab
    registry.delete(CONFIG_REPOSITORY, manifest["config"]["digest"])
    status, record = run_release(root)
    assert status == engine.EXIT_FAILED
    failure = record["failure"]
    assert failure["category"] == "release-source"
    assert "it was withdrawn" in failure["suspected_cause"]
    assert "choose another channel" in failure["next_step"]
    assert cluster.objects() == {}
    assert state.read(state.SELECTED_RELEASE, root) is None
