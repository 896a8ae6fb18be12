"""The release phase from the OCI release source on the tests' real registry, against a real
kube-apiserver with the Flux CRDs and the real kubectl first on PATH (support/apiserver.py):
the objects exist as the phase created them, owned by the appliance's field manager, and a
second run converges on them."""

import base64
from pathlib import Path

import pytest
from support.crds import assert_valid, crd_defaults
from support.releases import (
    CONFIG_REPOSITORY,
    OCI_IMAGES,
    RELEASE_REPOSITORY,
    oci_host_root,
)

from host.cluster import alga, objects
from host.cluster.kube import FIELD_MANAGER, Kube
from host.core import state
from host.setup import engine


@pytest.fixture
def lab(tmp_path, ca, real_api, registry):
    digest, manifest = oci_host_root(tmp_path, ca, registry)
    # The flux phase applies Flux's install.yaml, whose first object is this namespace.
    Kube(str(real_api.kubeconfig)).apply([objects.namespace(alga.FLUX_NAMESPACE)])
    return tmp_path, registry, real_api, digest, manifest


def run_release(root: Path, kubeconfig: Path) -> tuple[int, dict]:
    status = engine.run_phase("release", root, kubeconfig=str(kubeconfig))
    return status, state.read(state.INSTALL_STATE, root)["phases"]["release"]


# What the release phase creates: kind, resource, namespace, name.
CREATED = [("Namespace", "namespace", None, alga.ALGA_SYSTEM),
           ("Namespace", "namespace", None, alga.APP_NAMESPACE),
           ("Secret", "secret", alga.APP_NAMESPACE, alga.AUTH_SECRET),
           *(("ConfigMap", "configmap", alga.ALGA_SYSTEM, f"appliance-values-{release}")
             for release in alga.HELM_RELEASES),
           ("ConfigMap", "configmap", alga.ALGA_SYSTEM, alga.RELEASE_SELECTION),
           ("OCIRepository", "ocirepository", alga.FLUX_NAMESPACE, alga.SOURCE_NAME),
           ("Kustomization", "kustomization", alga.FLUX_NAMESPACE, alga.SOURCE_NAME)]


def created(api) -> dict[str, dict]:
    return {f"{kind}/{namespace or ''}/{name}": api.get(resource, name, namespace)
            for kind, resource, namespace, name in CREATED}


def test_the_release_phase_creates_its_objects_in_a_real_api_server(lab):
    root, registry, api, digest, manifest = lab
    status, record = run_release(root, api.kubeconfig)
    assert status == 0, record
    assert record["state"] == "succeeded"
    stored = created(api)
    for name, obj in stored.items():
        assert_valid(obj)
        entries = [(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]]
        assert entries == [(FIELD_MANAGER, "Apply")], name
        labels = dict(objects.LABELS)
        if obj["kind"] == "Namespace":  # the API server labels every namespace with its name
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        assert obj["metadata"]["labels"] == labels, name
    source = stored[f"OCIRepository/{alga.FLUX_NAMESPACE}/{alga.SOURCE_NAME}"]
    assert source["spec"] == {**crd_defaults("OCIRepository"),
                              "url": f"oci://{registry.host}/{CONFIG_REPOSITORY}",
                              "ref": {"digest": manifest["config"]["digest"]},
                              "interval": "1m"}
    assert alga.RECONCILE_ANNOTATION in source["metadata"]["annotations"]
    root_kustomization = stored[f"Kustomization/{alga.FLUX_NAMESPACE}/{alga.SOURCE_NAME}"]
    assert root_kustomization["spec"] == {
        **crd_defaults("Kustomization"), "interval": "5m", "path": "./base", "prune": True,
        "sourceRef": {"kind": "OCIRepository", "name": alga.SOURCE_NAME}}
    selection = stored[f"ConfigMap/{alga.ALGA_SYSTEM}/{alga.RELEASE_SELECTION}"]["data"]
    assert selection == {"releaseVersion": "1.0.3", "channel": "stable", "appVersion": "1.0.3",
                         **OCI_IMAGES, "registryHost": registry.host,
                         "repository": RELEASE_REPOSITORY, "manifestDigest": digest}
    for release in alga.HELM_RELEASES:
        values = stored[f"ConfigMap/{alga.ALGA_SYSTEM}/appliance-values-{release}"]["data"]
        assert list(values) == [f"{release}.single-node.yaml"]
    secret = stored[f"Secret/{alga.APP_NAMESPACE}/{alga.AUTH_SECRET}"]
    assert secret["type"] == "Opaque"
    assert len(base64.b64decode(secret["data"][alga.AUTH_KEY])) == 64
    assert api.kubectl("get", "gitrepositories", "--all-namespaces", "-o", "name").stdout == ""
    assert state.read(state.SELECTED_RELEASE, root)["manifest_digest"] == digest


def test_running_it_again_converges_on_the_same_objects(lab):
    """As when a run was killed after applying but before its success was recorded."""
    root, _, api, _, _ = lab
    assert run_release(root, api.kubeconfig)[0] == 0
    first = created(api)
    # The install state as the engine saved it before running the phase, killed after that.
    install = state.read(state.INSTALL_STATE, root)
    del install["completed_at"]
    install.update(status="running", current_phase="release")
    install["phases"]["release"].update(state="running", finished_at=None)
    install["phases"]["release"].pop("inputs_digest")
    state.write(state.INSTALL_STATE, install, root)

    status, record = run_release(root, api.kubeconfig)
    assert (status, record["state"]) == (0, "succeeded"), record
    again = created(api)
    assert again.keys() == first.keys()
    flux_kinds = ("OCIRepository/", "Kustomization/")
    for name, obj in again.items():
        before = first[name]
        assert obj["metadata"]["uid"] == before["metadata"]["uid"], name
        assert {e["manager"] for e in obj["metadata"]["managedFields"]} == {FIELD_MANAGER}
        if name.startswith(flux_kinds):
            # A new reconcile request, nothing else: the same generation.
            assert obj["metadata"]["annotations"][alga.RECONCILE_ANNOTATION] != (
                before["metadata"]["annotations"][alga.RECONCILE_ANNOTATION])
            assert obj["spec"] == before["spec"]
            assert obj["metadata"]["generation"] == before["metadata"]["generation"] == 1
        else:  # unchanged objects are not written at all; the auth key is kept
            assert obj["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
                name)
