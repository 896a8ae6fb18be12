"""The Kubernetes boundary against kubectl's interface (a stand-in that speaks the real
argument and JSON formats), and every generated object against the real schemas."""

import base64
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.base import altered_copies
from support.builders import GIT_SELECTION, OCI_SELECTION
from support.crds import CRDS, assert_valid, crd_validator

from host.cluster import alga, objects
from host.cluster.kube import FIELD_MANAGER, Kube, KubeError

branches = st.from_regex(r"(main|release/[0-9]\.[0-9](\.[0-9])?|feature/[a-z-]{1,12})",
                         fullmatch=True)
urls = st.sampled_from(["https://github.com/Nine-Minds/alga-psa",
                        "https://git.msp.example/mirrors/alga-psa"])


digests = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)
oci_repositories = st.from_regex(
    r"(ghcr\.io|registry\.example\.com:5000)(/[a-z0-9]+([._-][a-z0-9]+)?){1,3}", fullmatch=True)


@given(urls, branches)
def test_git_flux_objects_satisfy_the_flux_crds(url, branch):
    repository = objects.git_repository(url, branch, "2026-11-27T10:00:00Z")
    for obj in (repository, objects.kustomization(repository, "2026-11-27T10:00:00Z")):
        assert_valid(obj)


@given(oci_repositories, digests)
def test_oci_flux_objects_satisfy_the_flux_crds(repository, digest):
    source = objects.oci_repository(repository, digest, "2026-12-06T10:00:00.123456Z")
    for obj in (source, objects.kustomization(source, "2026-12-06T10:00:00.123456Z")):
        assert_valid(obj)


def test_the_crd_check_rejects_a_broken_object():
    broken = objects.git_repository("https://github.com/a/b", "main", "now")
    del broken["spec"]["interval"]
    broken["spec"]["ref"] = {"branch": 7}
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("GitRepository")[1].validate(broken)


def test_flux_objects_match_the_formats():
    repo = objects.git_repository("https://github.com/Nine-Minds/alga-psa", "release/1.0.0", "t")
    assert repo["metadata"]["namespace"] == "flux-system"
    assert repo["spec"] == {"url": "https://github.com/Nine-Minds/alga-psa",
                            "ref": {"branch": "release/1.0.0"}, "interval": "1m"}
    kustomization = objects.kustomization(repo, "t")
    assert kustomization["spec"]["path"] == "./ee/appliance/flux/base"
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository",
                                                  "name": "alga-appliance"}
    assert kustomization["spec"]["prune"] is True
    assert kustomization["metadata"]["annotations"] == {"reconcile.fluxcd.io/requestedAt": "t"}


def test_oci_flux_objects_match_the_formats():
    source = objects.flux_source(OCI_SELECTION, "t")
    assert (source["kind"], source["metadata"]["namespace"]) == ("OCIRepository", "flux-system")
    assert source["spec"] == {"url": "oci://ghcr.io/nine-minds/alga-appliance-config",
                              "ref": {"digest": "sha256:" + "b" * 64}, "interval": "1m"}
    kustomization = objects.kustomization(source, "t")
    assert kustomization["spec"] == {"interval": "5m", "path": "./base", "prune": True,
                                     "sourceRef": {"kind": "OCIRepository",
                                                   "name": "alga-appliance"}}


def test_the_release_selection_names_the_artifact_or_the_branch():
    oci = objects.release_selection(OCI_SELECTION)["data"]
    assert oci == {"releaseVersion": "1.0.3", "channel": "stable", "appVersion": "1.0.3",
                   "algaCore": "62cdce38", "registryHost": "ghcr.io",
                   "repository": "nine-minds/alga-appliance-release",
                   "manifestDigest": "sha256:" + "a" * 64}
    git = objects.release_selection(GIT_SELECTION)["data"]
    assert git["releaseBranch"] == "release/1.0.0" and "manifestDigest" not in git
    assert git["temporalWorker"] == "b77"


def test_core_objects_are_well_formed():
    built = [objects.namespace(n) for n in ("flux-system", "alga-system", "msp")]
    built += [objects.values_configmap(r, "single-node", "a: 1\n")
              for r in alga.HELM_RELEASES]
    built += [objects.release_selection(GIT_SELECTION), objects.release_selection(OCI_SELECTION),
              objects.auth_secret("k" * 64)]
    for obj in built:
        assert_valid(obj)
    names = {o["metadata"]["name"] for o in built if o["kind"] == "ConfigMap"}
    assert {f"appliance-values-{r}" for r in alga.HELM_RELEASES} < names


def test_fixture_crds_are_the_reference_copies():
    assert altered_copies(CRDS) == []


def test_runtime_values():
    core = objects.runtime_values("alga-core", GIT_SELECTION, "https://psa.example.com",
                                  "fresh")
    assert core == {"setup": {"image": {"tag": "eaec6253"}},
                    "server": {"image": {"tag": "eaec6253"}},
                    "appUrl": "https://psa.example.com", "host": "psa.example.com",
                    "domainSuffix": "", "bootstrap": {"mode": "fresh"}}
    assert objects.runtime_values("temporal-worker", GIT_SELECTION, "x", "recover") == {
        "image": {"tag": "b77"}}
    assert objects.runtime_values("pgbouncer", GIT_SELECTION, "x", "fresh") == {}
    # An image an OCI release does not name keeps the tag its profile sets.
    assert objects.runtime_values("temporal-worker", OCI_SELECTION, "x", "recover") == {}
    profile = {"server": {"image": {"repository": "ghcr.io/nine-minds/alga-psa-ee",
                                    "tag": "old"}, "replicas": 1}}
    assert objects.merged(profile, core)["server"] == {
        "image": {"repository": "ghcr.io/nine-minds/alga-psa-ee", "tag": "eaec6253"},
        "replicas": 1}


@pytest.fixture
def kube(tmp_path, fake_cluster):
    return Kube(str(tmp_path / "kubeconfig")), fake_cluster.log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_apply_is_server_side_with_our_field_manager(kube):
    client, log = kube
    source = objects.flux_source(OCI_SELECTION, "t")
    stored = client.apply([objects.namespace("alga-system"), objects.kustomization(source, "t")])
    assert [o["metadata"]["name"] for o in stored] == ["alga-system", "alga-appliance"]
    assert all(o["metadata"]["resourceVersion"] == "1" for o in stored)
    [call] = calls(log)
    assert call["argv"][:2] == ["--kubeconfig", client.kubeconfig]
    assert call["argv"][2:] == ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                                "--force-conflicts", "-o", "json", "-f", "-"]
    assert json.loads(call["stdin"])["kind"] == "List"
    # Applying again updates in place: same object, next resourceVersion.
    again = client.apply([objects.namespace("alga-system")])
    assert again[0]["metadata"]["uid"] == stored[0]["metadata"]["uid"]
    assert again[0]["metadata"]["resourceVersion"] == "2"


def test_get_returns_none_when_not_found_and_the_object_otherwise(kube):
    client, _ = kube
    assert client.get("secret", objects.AUTH_SECRET, objects.APP_NAMESPACE) is None
    client.apply([objects.auth_secret("key")])
    secret = client.get("secret", objects.AUTH_SECRET, objects.APP_NAMESPACE)
    assert base64.b64decode(secret["data"][objects.AUTH_KEY]) == b"key"


def test_failures_carry_kubectls_explanation(kube, monkeypatch):
    client, _ = kube
    monkeypatch.setenv("FAKE_KUBE_REJECT", "Kustomization")
    with pytest.raises(KubeError, match="failed calling webhook") as caught:
        client.apply([objects.kustomization(objects.flux_source(OCI_SELECTION, "t"), "t")])
    assert not caught.value.not_found


def test_delete_removes_the_object_and_an_absent_one_is_fine(kube):
    """An update that switched the release source deletes the previous one; deleting it
    again (a re-run) must not fail."""
    client, log = kube
    client.apply(source_objects("GitRepository", {"branch": "main"}))
    client.delete("gitrepository", alga.SOURCE_NAME, "flux-system")
    assert client.get("gitrepository", alga.SOURCE_NAME, "flux-system") is None
    assert client.get("kustomization", alga.SOURCE_NAME, "flux-system") is not None
    client.delete("gitrepository", alga.SOURCE_NAME, "flux-system")
    assert [c["argv"][2:] for c in calls(log)][-1] == [
        "delete", "gitrepository", alga.SOURCE_NAME, "--namespace", "flux-system",
        "--ignore-not-found"]


def test_the_fake_deletes_as_kubectl_answers(fake_cluster):
    """Without --ignore-not-found an absent object is NotFound, worded as kubectl words it."""
    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", *args], capture_output=True, text=True)

    Kube(str(fake_cluster.root / "kubeconfig")).apply(
        source_objects("OCIRepository", {"digest": DIGEST}))
    deleted = kubectl("delete", "ocirepository", alga.SOURCE_NAME, "--namespace", "flux-system")
    assert (deleted.returncode, deleted.stdout) == (
        0, f'ocirepository.source.toolkit.fluxcd.io "{alga.SOURCE_NAME}" deleted\n')
    absent = kubectl("delete", "ocirepository", alga.SOURCE_NAME, "--namespace", "flux-system")
    assert absent.returncode == 1 and absent.stderr == (
        "Error from server (NotFound): ocirepositories.source.toolkit.fluxcd.io "
        f'"{alga.SOURCE_NAME}" not found\n')


def test_missing_kubectl_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KubeError, match="kubectl is not installed"):
        Kube("/nope").get("node", "x")


REQUESTED = "2026-11-27T10:00:00.123456Z"


DIGEST = "sha256:" + "5e" * 32


def source_objects(kind: str, ref: dict) -> list[dict]:
    """The release's source of `kind` and the root Kustomization on it, as the release phase
    creates them, each carrying a reconcile request."""
    url = ("oci://ghcr.io/nine-minds/alga-appliance-config" if kind == "OCIRepository"
           else "https://github.com/Nine-Minds/alga-psa")
    metadata = {"namespace": "flux-system", "name": alga.SOURCE_NAME,
                "annotations": {alga.RECONCILE_ANNOTATION: REQUESTED}}
    return [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": kind, "metadata": metadata,
             "spec": {"url": url, "ref": ref, "interval": "1m"}},
            {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
             "metadata": metadata, "spec": {"interval": "5m", "path": "./base", "prune": True,
                                            "sourceRef": {"kind": kind,
                                                          "name": alga.SOURCE_NAME}}}]


@pytest.mark.parametrize(("kind", "ref", "revision"), [
    ("OCIRepository", {"digest": DIGEST}, DIGEST),
    ("OCIRepository", {"tag": "1.0.3"}, r"1\.0\.3@sha256:[0-9a-f]{64}"),
    ("GitRepository", {"branch": "release/1.0.0"}, r"release/1\.0\.0@sha1:[0-9a-f]{40}"),
])
def test_the_fake_flux_reports_a_source_and_its_kustomization_as_flux_does(
        kube, monkeypatch, kind, ref, revision):
    client, _ = kube
    client.apply(source_objects(kind, ref))
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "ready")
    source = client.get(kind.lower(), alga.SOURCE_NAME, "flux-system")
    assert_valid(source)
    status = source["status"]
    assert re.fullmatch(revision, status["artifact"]["revision"])
    assert (status["lastHandledReconcileAt"], status["observedGeneration"]) == (REQUESTED, 1)
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Succeeded")
    if kind == "OCIRepository":  # source-controller's words; its artifact is the tarball
        assert ready["message"] == f"stored artifact for digest '{status['artifact']['revision']}'"
        assert status["artifact"]["digest"] != status["artifact"]["revision"]
    root = client.get("kustomization", alga.SOURCE_NAME, "flux-system")
    assert_valid(root)
    assert root["status"]["lastAppliedRevision"] == status["artifact"]["revision"]


def test_the_fake_flux_fails_an_oci_pull_as_source_controller_does(kube, monkeypatch):
    client, _ = kube
    client.apply(source_objects("OCIRepository", {"digest": DIGEST}))
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "fail:OCIRepository")
    source = client.get("ocirepository", alga.SOURCE_NAME, "flux-system")
    assert_valid(source)
    conditions = {c["type"]: c for c in source["status"]["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False", "OCIArtifactPullFailed")
    assert conditions["Ready"]["message"] == (
        "failed to pull artifact from 'oci://ghcr.io/nine-minds/alga-appliance-config': GET "
        f"https://ghcr.io/v2/nine-minds/alga-appliance-config/manifests/{DIGEST}: "
        "MANIFEST_UNKNOWN: manifest unknown")
    assert conditions["FetchFailed"]["status"] == "True"
    assert conditions["Reconciling"]["reason"] == "ProgressingWithRetry"
    assert "artifact" not in source["status"]


def test_a_spec_change_is_a_new_generation(kube, monkeypatch):
    client, _ = kube
    [source, _] = client.apply(source_objects("OCIRepository", {"digest": DIGEST}))
    assert source["metadata"]["generation"] == 1
    assert client.apply(source_objects("OCIRepository", {"digest": DIGEST}))[0][
        "metadata"]["generation"] == 1
    moved = client.apply(source_objects("OCIRepository", {"digest": "sha256:" + "7a" * 32}))
    assert moved[0]["metadata"]["generation"] == 2


def test_a_resource_without_its_crd_is_refused_as_kubectl_refuses_it(kube, monkeypatch):
    client, _ = kube
    monkeypatch.setenv("FAKE_KUBE_ABSENT", "helmcharts")
    with pytest.raises(KubeError, match='the server doesn\'t have a resource type "helmcharts"'
                       ) as caught:
        client.list("helmcharts", "flux-system")
    assert caught.value.no_such_resource and not caught.value.not_found
    assert client.list("ocirepositories", "flux-system") == []
