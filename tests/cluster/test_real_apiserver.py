"""The Kubernetes boundary (host/cluster/kube.py) and the objects host/cluster/objects.py
builds, against a real kube-apiserver with the Flux CRDs installed and the real kubectl on
PATH (support/apiserver.py): what the API server accepts, refuses and how it words it,
server-side apply's field managers and conflicts."""

import base64
import json
import re
from pathlib import Path

import jsonschema
import pytest
from support.builders import GIT_SELECTION, OCI_SELECTION
from support.crds import FLUX_KINDS, assert_valid, crd_defaults

from host.cluster import alga, objects
from host.cluster.kube import FIELD_MANAGER, Kube, KubeError

REQUESTED = "2026-12-06T10:00:00.123456Z"
OTHER_DIGEST = "sha256:" + "c" * 64


@pytest.fixture
def kube(real_api) -> Kube:
    return Kube(str(real_api.kubeconfig))


def namespaces() -> list[dict]:
    return [objects.namespace(name)
            for name in (alga.FLUX_NAMESPACE, alga.ALGA_SYSTEM, alga.APP_NAMESPACE)]


def release_objects(selection: dict) -> list[dict]:
    """What the release phase applies for `selection`, its namespaces first."""
    source = objects.flux_source(selection, REQUESTED)
    return [*namespaces(), objects.auth_secret("k" * 64),
            *(objects.values_configmap(release, "single-node", "replicas: 1\n")
              for release in alga.HELM_RELEASES),
            objects.release_selection(selection), source,
            objects.kustomization(source, REQUESTED)]


def managers(obj: dict) -> dict[str, dict]:
    """managedFields by manager: its operation and the fields it owns."""
    return {entry["manager"]: {"operation": entry["operation"], "fields": entry["fieldsV1"]}
            for entry in obj["metadata"].get("managedFields", [])}


def owned_paths(fields: dict, prefix: str = "") -> set[str]:
    """The leaf paths of a fieldsV1 tree, as `.spec.ref.digest`."""
    paths = set()
    for key, value in fields.items():
        if key == ".":
            continue
        path = f"{prefix}.{key.removeprefix('f:')}" if key.startswith("f:") else prefix + key
        paths |= owned_paths(value, path) if value else {path}
    return paths


def key(obj: dict) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.mark.parametrize("selection", [OCI_SELECTION, GIT_SELECTION], ids=["oci", "git"])
def test_the_release_objects_are_accepted_and_stored_as_applied(kube, real_api, selection):
    applied = release_objects(selection)
    returned = kube.apply(applied)
    assert [key(obj) for obj in returned] == [key(obj) for obj in applied]
    for sent, answer in zip(applied, returned, strict=True):
        kind, namespace, name = key(answer)
        got = real_api.get(kind.lower(), name, namespace or None)
        assert got["metadata"]["uid"] == answer["metadata"]["uid"]
        labels = dict(sent["metadata"]["labels"])
        if got["kind"] == "Namespace":  # the API server labels every namespace with its name
            labels["kubernetes.io/metadata.name"] = got["metadata"]["name"]
        assert got["metadata"]["labels"] == labels
        assert got["metadata"].get("annotations", {}) == sent["metadata"].get("annotations", {})
        for field in ("data", "type"):
            if field in sent:
                assert got[field] == sent[field], key(got)
        if kind in FLUX_KINDS:  # what was sent, and the defaults the CRD's schema sets
            assert got["spec"] == {**crd_defaults(kind), **sent["spec"]}
        [(manager, entry)] = managers(got).items()
        assert (manager, entry["operation"]) == (FIELD_MANAGER, "Apply")
        assert_valid(got)
    source = kube.get(objects.flux_source(selection, REQUESTED)["kind"].lower(),
                      alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    assert source["metadata"]["generation"] == 1
    secret = kube.get("secret", alga.AUTH_SECRET, alga.APP_NAMESPACE)
    assert base64.b64decode(secret["data"][alga.AUTH_KEY]) == b"k" * 64


def test_applying_again_changes_nothing_but_what_changed(kube):
    first = {key(obj): obj for obj in kube.apply(release_objects(OCI_SELECTION))}
    again = {key(obj): obj for obj in kube.apply(release_objects(OCI_SELECTION))}
    assert again.keys() == first.keys()
    for name, obj in again.items():
        before = first[name]["metadata"]
        if name[0] in FLUX_KINDS:
            # Written again all the same (the CRDs default status.observedGeneration, so the
            # server never sees the object unchanged), but no new generation.
            assert obj["metadata"]["generation"] == before["generation"] == 1
        else:  # an identical apply is no write at all
            assert obj["metadata"]["resourceVersion"] == before["resourceVersion"], name
    # The source switches to git: the Kustomization is updated in place, a new generation.
    switched = {key(obj): obj for obj in kube.apply(release_objects(GIT_SELECTION))}
    root = ("Kustomization", alga.FLUX_NAMESPACE, alga.SOURCE_NAME)
    assert switched[root]["metadata"]["uid"] == first[root]["metadata"]["uid"]
    assert switched[root]["metadata"]["generation"] == 2
    assert switched[root]["spec"]["sourceRef"] == {"kind": "GitRepository",
                                                   "name": alga.SOURCE_NAME}
    assert switched[root]["spec"]["path"] == alga.FLUX_ROOT_PATH
    # The OCIRepository is not in that apply; it stays until deleted (the updater does that).
    kube.delete("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    assert kube.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE) is None
    kube.delete("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE)  # gone is fine
    assert [o["kind"] for o in kube.list("gitrepositories", alga.FLUX_NAMESPACE)] == [
        "GitRepository"]
    assert kube.list("ocirepositories", alga.FLUX_NAMESPACE) == []


def test_another_managers_apply_conflicts_and_the_appliances_forced_apply_wins(kube, real_api):
    source = objects.flux_source(OCI_SELECTION, REQUESTED)
    kube.apply([namespaces()[0], source])
    theirs = json.loads(json.dumps(source))
    theirs["spec"]["ref"]["digest"] = OTHER_DIGEST

    def apply_as(manager: str, obj: dict, *options: str):
        return real_api.kubectl("apply", "--server-side", f"--field-manager={manager}",
                                *options, "-o", "json", "-f", "-", input=json.dumps(obj),
                                check=False)

    refused = apply_as("someone-else", theirs)
    assert refused.returncode == 1
    assert "Apply failed with 1 conflict" in refused.stderr
    assert f'conflict with "{FIELD_MANAGER}": .spec.ref.digest' in refused.stderr
    assert kube.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE)["spec"]["ref"][
        "digest"] == source["spec"]["ref"]["digest"]

    # Forced, the other manager takes the field; the appliance's next apply (which always
    # forces) takes it back, and the field has one owner again.
    apply_as("someone-else", theirs, "--force-conflicts")
    taken = real_api.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    assert taken["spec"]["ref"]["digest"] == OTHER_DIGEST
    assert ".spec.ref.digest" in owned_paths(managers(taken)["someone-else"]["fields"])
    assert ".spec.ref.digest" not in owned_paths(managers(taken)[FIELD_MANAGER]["fields"])
    kube.apply([source])
    back = real_api.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    assert back["spec"]["ref"]["digest"] == source["spec"]["ref"]["digest"]
    owners = {manager for manager, entry in managers(back).items()
              if ".spec.ref.digest" in owned_paths(entry["fields"])}
    assert owners == {FIELD_MANAGER}


def test_applying_into_a_namespace_that_does_not_exist_fails_with_the_api_error(kube):
    configmap = objects.values_configmap("alga-core", "single-node", "a: 1\n")
    configmap["metadata"]["namespace"] = "no-such-namespace"
    with pytest.raises(KubeError) as caught:
        kube.apply([configmap])
    assert caught.value.returncode == 1
    assert caught.value.stderr == (
        'Error from server (NotFound): namespaces "no-such-namespace" not found')
    assert caught.value.stderr in str(caught.value)


def test_applying_a_namespace_first_in_the_same_list_is_enough(kube):
    """The release phase sends its namespaces in the same List as the objects in them."""
    configmap = objects.values_configmap("alga-core", "single-node", "a: 1\n")
    stored = kube.apply([objects.namespace(alga.ALGA_SYSTEM), configmap])
    assert [obj["kind"] for obj in stored] == ["Namespace", "ConfigMap"]


SOURCE_INVALID = 'The OCIRepository "alga-appliance" is invalid: '
TYPED_PATCH = ("Error from server: failed to create typed patch object (flux-system/"
               "alga-appliance; source.toolkit.fluxcd.io/v1, Kind=OCIRepository): ")


@pytest.mark.parametrize(("change", "kubectls", "servers"), [
    # kubectl's own schema check finds nothing; the server's typed patch refuses it.
    (lambda spec: spec["ref"].update(digest=7),
     TYPED_PATCH + ".spec.ref.digest: expected string, got &value.valueUnstructured{Value:7}",
     None),
    # kubectl refuses it before sending; sent anyway, the server refuses it as well.
    (lambda spec: spec.pop("url"),
     'error: error validating "STDIN": error validating data: ValidationError('
     'OCIRepository.spec): missing required field "url" in '
     "io.fluxcd.toolkit.source.v1.OCIRepository.spec; if you choose to ignore these errors, "
     "turn validation off with --validate=false",
     SOURCE_INVALID + "spec.url: Required value"),
    (lambda spec: spec.update(url="https://ghcr.io/nine-minds/alga-appliance-config"),
     SOURCE_INVALID + 'spec.url: Invalid value: "https://ghcr.io/nine-minds/alga-appliance-'
     "config\": spec.url in body should match '^oci://.*$'", None),
    (lambda spec: spec.update(interval="often"),
     SOURCE_INVALID + 'spec.interval: Invalid value: "often": spec.interval in body should '
     "match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'", None),
    # A field the schema does not declare: support/crds.py's check refuses it as the server does.
    (lambda spec: spec.update(extra="1"),
     'error: error validating "STDIN": error validating data: ValidationError('
     'OCIRepository.spec): unknown field "extra" in '
     "io.fluxcd.toolkit.source.v1.OCIRepository.spec; if you choose to ignore these errors, "
     "turn validation off with --validate=false",
     TYPED_PATCH + ".spec.extra: field not declared in schema"),
], ids=["digest-not-a-string", "no-url", "url-not-oci", "bad-interval", "unknown-field"])
def test_an_object_the_crd_schema_refuses_is_refused_with_the_real_message(
        kube, real_api, change, kubectls, servers):
    kube.apply(namespaces()[:1])
    source = objects.flux_source(OCI_SELECTION, REQUESTED)
    change(source["spec"])
    with pytest.raises(KubeError) as caught:
        kube.apply([source])
    assert (caught.value.returncode, caught.value.stderr) == (1, kubectls)
    assert not caught.value.not_found
    # What the server says itself, when kubectl does not check first.
    unchecked = real_api.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                                 "--validate=false", "-f", "-", input=json.dumps(source),
                                 check=False)
    assert (unchecked.returncode, unchecked.stderr.strip()) == (1, servers or kubectls)
    assert kube.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE) is None
    with pytest.raises(jsonschema.ValidationError):  # and so does the unit tests' CRD check
        assert_valid(source)


def test_get_of_an_absent_object_is_none(kube):
    kube.apply(namespaces())
    assert kube.get("secret", alga.AUTH_SECRET, alga.APP_NAMESPACE) is None
    assert kube.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE) is None
    assert kube.get("configmap", "anything", "no-such-namespace") is None
    assert kube.get("namespace", "no-such-namespace") is None


def test_a_resource_the_server_does_not_know_is_named_as_such(kube):
    with pytest.raises(KubeError) as caught:
        kube.list("helmcharts", alga.FLUX_NAMESPACE)
    assert caught.value.no_such_resource and not caught.value.not_found
    assert 'the server doesn\'t have a resource type "helmcharts"' in caught.value.stderr


def test_annotate_requests_a_reconcile_without_taking_over_the_owners_fields(kube, real_api):
    """The reconcile request on an object of the Alga tree, which kustomize-controller
    applies and owns."""
    kube.apply(namespaces()[:1])
    theirs = objects.kustomization(objects.flux_source(OCI_SELECTION, REQUESTED), REQUESTED)
    theirs["metadata"]["name"] = alga.PLATFORM_KUSTOMIZATION
    del theirs["metadata"]["annotations"]
    owner = "kustomize-controller"
    real_api.kubectl("apply", "--server-side", f"--field-manager={owner}", "-f", "-",
                     input=json.dumps(theirs))
    before = real_api.get("kustomization", alga.PLATFORM_KUSTOMIZATION, alga.FLUX_NAMESPACE)

    kube.annotate("kustomization", alga.PLATFORM_KUSTOMIZATION, alga.FLUX_NAMESPACE,
                  {alga.RECONCILE_ANNOTATION: REQUESTED})

    after = real_api.get("kustomization", alga.PLATFORM_KUSTOMIZATION, alga.FLUX_NAMESPACE)
    assert after["metadata"]["annotations"] == {alga.RECONCILE_ANNOTATION: REQUESTED}
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    by_manager = managers(after)
    assert by_manager[owner] == managers(before)[owner]
    others = {manager: owned_paths(entry["fields"]) for manager, entry in by_manager.items()
              if manager != owner}
    assert FIELD_MANAGER not in others  # annotate is no apply of ours
    [(annotator, paths)] = others.items()
    assert paths == {f".metadata.annotations.{alga.RECONCILE_ANNOTATION}"}, annotator
    # The owner's next apply goes through unforced: nothing of its was taken.
    real_api.kubectl("apply", "--server-side", f"--field-manager={owner}", "-f", "-",
                     input=json.dumps(theirs))


def test_the_server_is_the_minor_the_pinned_k3s_runs(real_api):
    from host.core import pins
    version = json.loads(real_api.kubectl("version", "-o", "json").stdout)
    k3s = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\+k3s\d+", pins.K3S_VERSION)
    assert (version["serverVersion"]["major"], version["serverVersion"]["minor"]) == (
        k3s.group(1), k3s.group(2))
    assert version["serverVersion"]["gitVersion"] == version["clientVersion"]["gitVersion"]


def test_an_api_server_stops_leaving_no_process_behind(apiserver, ca, tmp_path):
    """Another one beside the session's, on the same binaries: kine keeps the cluster in
    SQLite, and stopping ends both processes."""
    from support.apiserver import ApiServer
    server = ApiServer(apiserver.binaries, tmp_path, ca).start()
    try:
        pids = server.pids()
        assert len(pids) == 2 and server.port != apiserver.port
        assert (tmp_path / "kine/state.db").stat().st_size > 0
        names = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
        assert "namespace/kube-system" in names
    finally:
        server.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
