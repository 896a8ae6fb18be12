"""Real Flux controllers (ci/k8s/build-flux.sh) reconciling against the real API server
(support/apiserver.py's `real_api`): the appliance's own Flux objects, real conditions, one
controller at a time (cluster/test_real_flux.py runs the three together)."""

import datetime
import json

import pytest
from support import flux_controllers as flux

from host.cluster import objects


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
