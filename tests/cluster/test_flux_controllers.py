"""Real Flux controllers (ci/k8s/build-flux.sh) reconciling against the real API server
(support/apiserver.py's `real_api`): the appliance's own Flux objects, real conditions."""

import base64
import datetime
import json

import pytest
from support import flux_controllers as flux
from support.releases import CONFIG_REPOSITORY, publish_oci

from host.cluster import objects

pytest.importorskip("support.apiserver", reason="the real API server tier (tests/support/"
                    "apiserver.py, built by ci/k8s/build.sh) is not in this checkout")

CA_SECRET = "registry-ca"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@pytest.fixture
def flux_api(real_api):
    """`real_api` with the pinned release's CRDs of the kinds the server does not serve yet
    (a controller watches all its kinds, Bucket too, and does not start without them); the
    session's Flux CRDs are left as they are, and those added are deleted after the test, so
    later tests meet the server as its fixture made it."""
    installed = {name.split("/", 1)[1] for name in real_api.kubectl(
        "get", "customresourcedefinitions", "-o", "name").stdout.split()}
    missing = []
    for path in flux.crds():
        group, plural = path.stem.split("_", 1)
        if f"{plural}.{group}" not in installed:
            missing.append(path)
    added = real_api.install_crds(missing) if missing else []
    yield real_api
    if added:
        real_api.kubectl("delete", "--wait=true", "--timeout=60s", *added)


def namespace(api, name: str) -> None:
    api.kubectl("apply", "--server-side", "--field-manager=alga-tests", "-f", "-",
                input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")


def test_source_controller_pulls_the_config_bundle_from_the_registry(flux_api, registry, ca,
                                                                    tmp_path):
    real_api = flux_api
    controller = flux.source_controller(real_api.kubeconfig, tmp_path / "source-controller")
    _, release = publish_oci(registry)
    digest = release["config"]["digest"]
    source = objects.oci_repository(f"{registry.host}/{CONFIG_REPOSITORY}", digest, now())
    name, ns = source["metadata"]["name"], source["metadata"]["namespace"]
    # The registry's certificate is from the tests' CA: Flux trusts it through a Secret's
    # ca.crt, and the connection stays verified (spec.insecure is not set).
    source["spec"]["certSecretRef"] = {"name": CA_SECRET}
    assert not source["spec"].get("insecure")
    namespace(real_api, ns)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": CA_SECRET, "namespace": ns},
              "data": {"ca.crt": base64.b64encode(ca.ca_pem_path.read_bytes()).decode()}}
    real_api.kubectl("apply", "--server-side", "--field-manager=alga-tests", "-f", "-",
                     input=json.dumps(secret))
    with controller:
        try:
            real_api.kubectl("apply", "--server-side", "--field-manager=alga-appliance",
                             "-f", "-", input=json.dumps(source))
            obj, seen = flux.wait_for_condition(real_api, "ocirepositories", name, ns, "True",
                                                timeout=90, controller=controller)
        finally:
            flux.delete(real_api, "ocirepositories", name, ns)
    assert obj["status"]["artifact"]["revision"] == digest, (seen, obj["status"])
    assert flux.condition(obj)["reason"] == "Succeeded", seen
    stored = tmp_path / "source-controller/storage" / obj["status"]["artifact"]["path"]
    assert stored.is_file(), f"no artifact at {stored}"


def test_kustomize_controller_reports_that_its_source_is_not_there(flux_api, tmp_path):
    real_api = flux_api
    controller = flux.FluxController("kustomize-controller", real_api.kubeconfig,
                                     tmp_path / "kustomize-controller")
    source = objects.oci_repository("registry.invalid/alga/config", "sha256:" + "a" * 64, now())
    kustomization = objects.kustomization(source, now())
    name, ns = kustomization["metadata"]["name"], kustomization["metadata"]["namespace"]
    namespace(real_api, ns)
    with controller:
        try:
            real_api.kubectl("apply", "--server-side", "--field-manager=alga-appliance",
                             "-f", "-", input=json.dumps(kustomization))
            obj, seen = flux.wait_for_condition(real_api, "kustomizations", name, ns, "False",
                                                timeout=60, controller=controller)
        finally:
            flux.delete(real_api, "kustomizations", name, ns)
    ready = flux.condition(obj)
    # The condition carries the API server's own NotFound; the controller's "Source ... not
    # found" sentence goes only to its log.
    assert (ready["reason"], ready["message"]) == (
        "ArtifactFailed", f'OCIRepository.source.toolkit.fluxcd.io "{name}" not found'), seen
    assert f"Source 'OCIRepository/{name}' not found" in controller.log.read_text()
