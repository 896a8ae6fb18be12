"""Readiness tiers from fixtures in the real API formats, the login probe against a real
HTTP server, and the invariants over random component states."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.builders import (
    CONFIG_DIGEST,
    flux,
    healthy,
    job,
    kustomization,
    node,
    oci_release,
    oci_source,
    workload,
)
from support.crds import crd_validator
from support.netlab import (
    HttpsServer,
    Route,
)

from host.cluster import readiness
from host.cluster.alga import BACKGROUND
from host.cluster.kube import KubeError
from host.cluster.probe import probe_login
from host.cluster.readiness import ClusterView, Verdict
from host.core import words

LOGIN_OK = Verdict(True, "http://10.0.0.5:3000 answered 200")


def ready_tiers(view: ClusterView, probe: Verdict = LOGIN_OK, seen: bool = False) -> set:
    return {name for name, v in readiness.tiers(view, probe, seen).items() if v.ready}


def test_fully_healthy():
    assert ready_tiers(healthy()) == set(readiness.TIERS)


def test_empty_cluster_has_nothing_ready():
    tiers = readiness.tiers(ClusterView(), Verdict(False, "no answer"), False)
    assert not any(v.ready for v in tiers.values())
    assert "the cluster node has not registered" in tiers["platform"].reason


def test_background_crashloop_never_blocks_login():
    view = healthy()
    view.deployments = [workload("Deployment", "temporal-worker", 0) if
                        d["metadata"]["name"] == "temporal-worker" else d
                        for d in view.deployments]
    assert ready_tiers(view) == {"platform", "core", "bootstrap", "login"}


def test_email_service_never_scheduled_never_blocks_login():
    view = healthy()
    view.deployments = [d for d in view.deployments if d["metadata"]["name"] != "email-service"]
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert tiers["login"].ready and not tiers["background"].ready
    assert "background email service does not exist yet" in tiers["background"].reason


def test_login_needs_the_app_to_answer():
    tiers = readiness.tiers(healthy(), Verdict(False, "http://x answered 503"), False)
    assert not tiers["login"].ready and "503" in tiers["login"].reason
    assert not tiers["fully_healthy"].ready


def test_bootstrap_job_failing():
    view = healthy()
    view.jobs = [job("alga-core-sebastian-bootstrap-r1", failed=True)]
    view.helmreleases = []
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert not tiers["bootstrap"].ready and "failed" in tiers["bootstrap"].reason
    assert not tiers["login"].ready


def test_bootstrap_job_gone_after_its_ttl():
    view = healthy()
    view.jobs = []
    assert "bootstrap" in ready_tiers(view)  # alga-core's HelmRelease is Ready
    view.helmreleases = []
    assert "bootstrap" not in ready_tiers(view)
    assert "bootstrap" in ready_tiers(view, seen=True)  # remembered once seen


def test_image_pull_backoff_on_alga_core_blocks_login():
    view = healthy()
    view.deployments = [workload("Deployment", "alga-core-sebastian", 0) if
                        d["metadata"]["name"] == "alga-core-sebastian" else d
                        for d in view.deployments]
    assert ready_tiers(view) == {"platform", "core", "bootstrap", "background"}


def test_node_not_ready_and_flux_source_errors_block_the_platform():
    view = healthy()
    view.nodes = [node("False")]
    assert "platform" not in ready_tiers(view)
    view = healthy()
    view.gitrepositories = [flux("GitRepository", "source.toolkit.fluxcd.io/v1",
                                 "alga-appliance", "flux-system", "False", "AuthenticationFailed",
                                 "failed to checkout and determine revision: authentication "
                                 "required")]
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert not tiers["platform"].ready
    assert "AuthenticationFailed" in tiers["platform"].reason


def test_an_oci_release_is_platform_ready_once_its_source_is_ready_at_the_digest():
    view = oci_release()
    assert readiness.source_kind(view) == "OCIRepository"
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert tiers["platform"].ready
    assert "the release download is ready" in tiers["platform"].reason
    assert view.ocirepositories[0]["status"]["artifact"]["revision"] == CONFIG_DIGEST
    assert ready_tiers(view) == set(readiness.TIERS)


def test_a_failing_oci_source_blocks_the_platform_and_is_named():
    view = oci_release()
    view.ocirepositories = [oci_source("False", "OCIArtifactPullFailed",
                                       "failed to pull artifact from 'oci://ghcr.io/x': "
                                       "MANIFEST_UNKNOWN: manifest unknown")]
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert not tiers["platform"].ready
    assert "the release download is not ready: OCIArtifactPullFailed: failed to pull artifact" in (
        tiers["platform"].reason)


def test_the_root_kustomization_decides_which_source_counts():
    # A GitRepository left from before a move to OCI does not stand in for the OCIRepository.
    view = oci_release()
    view.gitrepositories = healthy().gitrepositories
    view.ocirepositories = []
    assert readiness.source_kind(view) == "OCIRepository"
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert not tiers["platform"].ready
    assert "the release download does not exist yet" in tiers["platform"].reason
    # A git release's root Kustomization names its GitRepository.
    view = healthy()
    view.kustomizations.append(kustomization("alga-appliance", "GitRepository"))
    view.ocirepositories = [oci_source("False", "OCIArtifactPullFailed", "x")]
    assert readiness.source_kind(view) == "GitRepository" and "platform" in ready_tiers(view)


def test_before_the_root_kustomization_the_existing_source_counts():
    view = oci_release()
    view.kustomizations = [k for k in view.kustomizations
                           if k["metadata"]["name"] != "alga-appliance"]
    assert readiness.source_kind(view) == "OCIRepository" and "platform" in ready_tiers(view)
    assert readiness.source_kind(healthy()) == "GitRepository"
    view.ocirepositories = []
    assert readiness.source_kind(view) is None
    assert "the release download does not exist yet" in readiness.tiers(
        view, LOGIN_OK, False)["platform"].reason


def test_a_child_kustomization_waiting_on_its_dependency_is_no_failure():
    view = oci_release()
    view.kustomizations += [kustomization("alga-core", "OCIRepository", "False",
                                          "DependencyNotReady",
                                          "dependency 'flux-system/alga-platform' is not ready")]
    assert ready_tiers(view) == set(readiness.TIERS)
    assert "DependencyNotReady" in readiness.FLUX_IN_PROGRESS


def test_stale_generation_is_not_ready():
    view = healthy()
    view.kustomizations = [flux("Kustomization", "kustomize.toolkit.fluxcd.io/v1",
                                "alga-platform", "flux-system", "True", generation=2,
                                observed=1)]
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert not tiers["platform"].ready and "latest change" in tiers["platform"].reason


states = st.sampled_from(["ready", "not_ready", "missing"])


@given(st.fixed_dictionaries({n: states for n in (
    "db", "redis", "pgbouncer", "alga-core-sebastian", *BACKGROUND)}),
    st.booleans(), st.booleans(), st.booleans())
def test_invariants(components, node_ok, probe_ok, job_done):
    view = healthy()
    view.nodes = [node("True" if node_ok else "False")]
    view.jobs = [job("alga-core-sebastian-bootstrap-r1", complete=job_done)]
    view.statefulsets = [workload("StatefulSet", n, 1 if components[n] == "ready" else 0)
                         for n in ("db", "redis") if components[n] != "missing"]
    view.deployments = [workload("Deployment", n, 1 if components[n] == "ready" else 0)
                        for n in ("pgbouncer", "alga-core-sebastian", *BACKGROUND)
                        if components[n] != "missing"]
    tiers = readiness.tiers(view, Verdict(probe_ok, "probe"), False)
    if tiers["fully_healthy"].ready:
        assert tiers["login"].ready
    if tiers["login"].ready:
        assert tiers["core"].ready and tiers["bootstrap"].ready
    # Whatever the background does, login is what the core says it is.
    healthy_background = {**components, **dict.fromkeys(BACKGROUND, "ready")}
    view.deployments = [workload("Deployment", n, 1 if healthy_background[n] == "ready" else 0)
                        for n in ("pgbouncer", "alga-core-sebastian", *BACKGROUND)
                        if healthy_background[n] != "missing"]
    assert readiness.tiers(view, Verdict(probe_ok, "probe"), False)["login"].ready == \
        tiers["login"].ready


@pytest.fixture
def app():
    with HttpsServer(None, {}) as server:
        yield server


@pytest.mark.parametrize(("route", "ready", "phrase"), [
    (Route(status=200), True, "answered 200"),
    (Route(status=302, headers={"Location": "/login"}), True, "redirects to /login"),
    (Route(status=302, headers={"Location": "/msp/dashboard"}), True, "/msp/dashboard"),
    (Route(status=302, headers={"Location": "http://elsewhere.test/login"}), False,
     "another host"),
    (Route(status=503), False, "answered 503"),
    (Route(status=200, delay=3), False, "did not answer within 0.5 s"),
])
def test_login_probe_against_a_real_server(app, route, ready, phrase):
    app.routes["/"] = route
    verdict = probe_login(app.url + "/", timeout=0.5)
    assert verdict.ready is ready and phrase in verdict.reason


def test_login_probe_with_nothing_listening():
    verdict = probe_login("http://127.0.0.1:1/", timeout=0.5)
    assert not verdict.ready and "not reachable" in verdict.reason


def test_flux_fixtures_satisfy_the_flux_crds():
    view = healthy()
    failing = flux("GitRepository", "source.toolkit.fluxcd.io/v1", "alga-appliance",
                   "flux-system", "False", "GitOperationFailed", "dial tcp: i/o timeout")
    oci = oci_release()
    for obj in [*view.gitrepositories, *view.kustomizations, *view.helmreleases, failing,
                *oci.ocirepositories, *oci.kustomizations,
                oci_source("False", "OCIArtifactPullFailed", "manifest unknown")]:
        api_version, validator = crd_validator(obj["kind"])
        assert obj["apiVersion"] == api_version
        validator.validate(obj)


# Issue 24: each workload state Kubernetes really reports, with the exact verdict.
def _only(obj: dict) -> Verdict:
    return readiness.workload([obj], obj["metadata"]["name"])


def test_a_workload_whose_status_omits_ready_replicas_has_nothing_ready():
    # The API server omits readyReplicas while it is 0 (omitempty); observedGeneration is
    # current, so only the missing field can say "not ready".
    deployment = workload("Deployment", "pgbouncer", 0)
    del deployment["status"]["readyReplicas"]
    assert _only(deployment) == Verdict(False, "the database connection pool: 0/1 ready")
    view = healthy()
    view.deployments = [deployment if d["metadata"]["name"] == "pgbouncer" else d
                        for d in view.deployments]
    assert ready_tiers(view) == {"platform", "bootstrap", "background"}


def test_a_workload_with_some_replicas_ready_is_not_ready():
    assert _only(workload("Deployment", "pgbouncer", 1, replicas=2)) == Verdict(
        False, "the database connection pool: 1/2 ready")
    assert _only(workload("Deployment", "pgbouncer", 2, replicas=2)) == Verdict(
        True, "the database connection pool: 2/2 ready")


def test_a_workload_without_a_replica_count_wants_one():
    deployment = workload("Deployment", "pgbouncer", 0)
    del deployment["spec"]["replicas"]
    assert _only(deployment) == Verdict(False, "the database connection pool: 0/1 ready")


def test_a_generation_not_yet_observed_is_a_rollout_even_with_replicas_ready():
    rolling = workload("Deployment", "pgbouncer", 1, generation=3, observed=2)
    assert _only(rolling) == Verdict(False, "the database connection pool is rolling out a change")
    observed = workload("Deployment", "pgbouncer", 1, generation=3, observed=3)
    assert _only(observed) == Verdict(True, "the database connection pool: 1/1 ready")


def test_a_workload_with_no_status_yet_is_a_rollout():
    created = workload("StatefulSet", "db", 0)
    del created["status"]
    assert _only(created) == Verdict(False, "the database is rolling out a change")
    created["metadata"]["generation"] = 0  # no generation either: nothing is ready
    assert _only(created) == Verdict(False, "the database: 0/1 ready")


def test_a_missing_workload_is_named():
    assert readiness.workload([], "redis") == Verdict(False, "the cache does not exist yet")


def test_a_flux_object_without_a_ready_condition_is_not_ready():
    view = healthy()
    view.kustomizations[0]["status"]["conditions"] = [
        {"type": "Reconciling", "status": "True", "reason": "Progressing"}]
    assert readiness.flux_object(view.kustomizations, "Kustomization", "alga-platform") == \
        Verdict(False, "the app's platform configuration has not reported yet")
    del view.kustomizations[0]["status"]
    assert readiness.flux_object(view.kustomizations, "Kustomization", "alga-platform") == \
        Verdict(False, "the app's platform configuration has not reported yet")
    assert "platform" not in ready_tiers(view)


def test_a_flux_object_ready_and_false_give_their_reasons():
    ready = flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core", "alga-system", "True")
    assert readiness.flux_object([ready], "HelmRelease", "alga-core") == Verdict(
        True, "the installation of the Alga web app is ready")
    failed = flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core", "alga-system",
                  "False", "InstallFailed", "timed out")
    assert readiness.flux_object([failed], "HelmRelease", "alga-core") == Verdict(
        False, "the installation of the Alga web app is not ready: InstallFailed: timed out")
    unknown = flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core", "alga-system",
                   "Unknown", "Progressing")
    assert readiness.flux_object([unknown], "HelmRelease", "alga-core") == Verdict(
        False, "the installation of the Alga web app is not ready: Progressing")
    assert readiness.flux_object([], "HelmRelease", "alga-core") == Verdict(
        False, "the installation of the Alga web app does not exist yet")


@pytest.mark.parametrize(("jobs", "newest", "ready", "reason"), [
    # The newest revision decides: an upgrade's bootstrap after a failed first one.
    ([job("alga-core-sebastian-bootstrap-r1", failed=True),
      job("alga-core-sebastian-bootstrap-r2", complete=True)],
     "alga-core-sebastian-bootstrap-r2", True, "the app's first-run setup completed"),
    ([job("alga-core-sebastian-bootstrap-r2"),
      job("alga-core-sebastian-bootstrap-r1", complete=True)],
     "alga-core-sebastian-bootstrap-r2", False, "the app's first-run setup is running"),
    ([job("alga-core-sebastian-bootstrap-r1", complete=True),
      job("alga-core-sebastian-bootstrap-r2", failed=True)],
     "alga-core-sebastian-bootstrap-r2", False, "the app's first-run setup failed"),
    # Revisions are numbers: r10 is newer than r9.
    ([job("alga-core-sebastian-bootstrap-r10"),
      job("alga-core-sebastian-bootstrap-r9", complete=True)],
     "alga-core-sebastian-bootstrap-r10", False, "the app's first-run setup is running"),
    # A job that is not a bootstrap is no stand-in for one.
    ([job("alga-core-sebastian-migrate", complete=True)],
     None, False, "the app's first-run setup has not started"),
])
def test_the_newest_bootstrap_job_decides(jobs, newest, ready, reason):
    view = healthy()
    view.jobs, view.helmreleases = jobs, []
    assert readiness.bootstrap(view, False) == Verdict(ready, reason)
    assert (readiness.bootstrap_job(view) or {"metadata": {"name": None}})["metadata"][
        "name"] == newest


def test_bootstrap_with_both_failed_and_complete_conditions_is_failed():
    view = healthy()
    view.jobs = [job("alga-core-sebastian-bootstrap-r1", complete=True, failed=True)]
    assert not readiness.bootstrap(view, True).ready


@pytest.mark.parametrize("down", ["redis", "pgbouncer", "db"])
def test_a_core_service_down_takes_core_and_login_away(down):
    view = healthy()
    view.statefulsets = [workload("StatefulSet", n, 0 if n == down else 1) for n in ("db", "redis")]
    view.deployments = [workload("Deployment", n, 0 if n == down else 1) for n in
                        ("pgbouncer", "alga-core-sebastian", *BACKGROUND)]
    tiers = readiness.tiers(view, LOGIN_OK, False)
    assert ready_tiers(view) == {"platform", "bootstrap", "background"}
    assert tiers["core"] == Verdict(False, f"{words.label(down)}: 0/1 ready")
    assert tiers["login"] == Verdict(False, f"{words.label(down)}: 0/1 ready")


def test_healthy_reasons_are_exact():
    tiers = readiness.tiers(healthy(), LOGIN_OK, False)
    assert tiers["core"] == Verdict(True, "the database: 1/1 ready; the cache: 1/1 ready; the "
                                          "database connection pool: 1/1 ready")
    assert tiers["platform"] == Verdict(True, "the cluster node is ready; the release download "
                                              "is ready; the app's platform configuration is "
                                              "ready")
    assert tiers["bootstrap"] == Verdict(True, "the app's first-run setup completed")
    assert tiers["background"] == Verdict(True, "the workflow engine: 1/1 ready; background "
                                                "workflow service: 1/1 ready; background email "
                                                "service: 1/1 ready; background job service: "
                                                "1/1 ready")


class ListingKube:
    """A cluster.kube.Kube's `list`, answering from a table by (resource, namespace); a
    resource missing from the table is one whose CRD is not installed."""

    def __init__(self, objects: dict[tuple[str, str | None], list[dict]], stderr: str =
                 "error: the server doesn't have a resource type \"x\""):
        self.objects, self.stderr = objects, stderr

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        if (resource, namespace) not in self.objects:
            raise KubeError(["get", resource], 1, self.stderr)
        return self.objects[(resource, namespace)]


def test_read_view_reads_each_kind_from_its_namespace():
    def tagged(resource, namespace):
        return [{"metadata": {"name": f"{resource}@{namespace}"}}]
    table = {(r, n): tagged(r, n) for r, n in [
        ("nodes", None), ("deployments", "msp"), ("statefulsets", "msp"), ("jobs", "msp"),
        ("gitrepositories", "flux-system"), ("ocirepositories", "flux-system"),
        ("kustomizations", "flux-system"), ("helmreleases", "alga-system"),
        ("helmrepositories", "flux-system"), ("helmcharts", "flux-system")]}
    view = readiness.read_view(ListingKube(table))
    assert view == ClusterView(**{field: table[key] for field, key in {
        "nodes": ("nodes", None), "deployments": ("deployments", "msp"),
        "statefulsets": ("statefulsets", "msp"), "jobs": ("jobs", "msp"),
        "gitrepositories": ("gitrepositories", "flux-system"),
        "ocirepositories": ("ocirepositories", "flux-system"),
        "kustomizations": ("kustomizations", "flux-system"),
        "helmreleases": ("helmreleases", "alga-system"),
        "helmrepositories": ("helmrepositories", "flux-system"),
        "helmcharts": ("helmcharts", "flux-system")}.items()})


def test_read_view_before_flux_has_no_flux_objects_but_a_silent_api_fails():
    core = {("nodes", None): [node()], ("deployments", "msp"): [],
            ("statefulsets", "msp"): [], ("jobs", "msp"): []}
    view = readiness.read_view(ListingKube(core))
    assert view == ClusterView(nodes=[node()])
    with pytest.raises(KubeError):
        readiness.read_view(ListingKube(core, stderr="Unable to connect to the server"))


def _failing(kind: str, reason: str, status: str = "False") -> dict:
    api = {"Kustomization": "kustomize.toolkit.fluxcd.io/v1",
           "OCIRepository": "source.toolkit.fluxcd.io/v1"}[kind]
    return flux(kind, api, "alga-core", "flux-system", status, reason, "why")


@pytest.mark.parametrize(("reason", "status", "failed"), [
    ("ReconciliationFailed", "False", True),
    ("BuildFailed", "False", True),
    ("Progressing", "False", False), ("ProgressingWithRetry", "False", False),
    ("DependencyNotReady", "False", False), ("SourceNotReady", "False", False),
    ("ReconciliationFailed", "Unknown", False), ("Succeeded", "True", False),
])
def test_flux_failure_is_a_false_ready_that_is_not_work_in_progress(reason, status, failed):
    obj = _failing("Kustomization", reason, status)
    expected = {"type": "Ready", "status": status, "reason": reason, "message": "why",
                "lastTransitionTime": "2026-11-27T10:00:00Z"}
    assert readiness.flux_failure(obj, oci_release()) == (expected if failed else None)


def test_flux_failure_of_an_object_without_conditions_is_none():
    assert readiness.flux_failure({"kind": "Kustomization", "metadata": {"name": "x"}},
                                  ClusterView()) is None


def test_a_missing_artifact_is_the_sources_failure_until_the_source_has_one():
    obj = _failing("Kustomization", "ArtifactFailed")
    obj["spec"] = {"sourceRef": {"kind": "OCIRepository", "name": "alga-appliance"}}
    view = oci_release()
    assert readiness.flux_failure(obj, view)["reason"] == "ArtifactFailed"  # source has one
    del view.ocirepositories[0]["status"]["artifact"]
    assert readiness.flux_failure(obj, view) is None
    view.ocirepositories = []
    assert readiness.flux_failure(obj, view) is None
    # Only a Kustomization waits on its source this way.
    source = _failing("OCIRepository", "ArtifactFailed")
    assert readiness.flux_failure(source, ClusterView())["reason"] == "ArtifactFailed"


def test_node_address_and_k3s_version_come_from_the_node():
    view = ClusterView(nodes=[node(address="192.168.1.20")])
    assert readiness.node_address(view) == "192.168.1.20"
    assert readiness.k3s_version(view) == "v1.33.4+k3s1"
    assert readiness.node_address(ClusterView(nodes=[node()])) is None
    assert readiness.node_address(ClusterView()) is None
    assert readiness.k3s_version(ClusterView()) is None


def test_the_first_ready_node_counts():
    view = ClusterView(nodes=[node("False"), node("True")])
    view.nodes[1]["metadata"]["name"] = "second"
    assert readiness.node_ready(view) == Verdict(True, "the cluster node is ready")
    assert readiness.node_ready(ClusterView(nodes=[node("False")])) == Verdict(
        False, "the cluster node is not ready")
    assert readiness.node_ready(ClusterView()) == Verdict(False,
                                                          "the cluster node has not registered")


def test_flux_objects_by_kind_sources_before_what_they_feed():
    view = oci_release()
    objects = view.flux_objects()
    assert list(objects) == ["GitRepository", "OCIRepository", "Kustomization",
                             "HelmRepository", "HelmChart", "HelmRelease"]
    assert [objects[k] for k in objects] == [
        view.gitrepositories, view.ocirepositories, view.kustomizations,
        view.helmrepositories, view.helmcharts, view.helmreleases]


def test_partial_objects_as_the_api_may_return_them():
    bare_node = {"metadata": {"name": "n"}}
    assert readiness.node_address(ClusterView(nodes=[bare_node])) is None
    assert readiness.k3s_version(ClusterView(nodes=[bare_node])) is None
    assert readiness.node_address(ClusterView(nodes=[{**bare_node, "status": {}}])) is None
    assert readiness.k3s_version(ClusterView(nodes=[{**bare_node, "status": {}}])) is None
    assert readiness.release_source(ClusterView()) == Verdict(
        False, "the release download does not exist yet")


@pytest.mark.parametrize(("ready", "reason"), [
    ({"type": "Ready", "status": "False"},
     "the installation of the Alga web app is not ready: NotReady"),
    ({"type": "Ready", "status": "False", "reason": "InstallFailed"},
     "the installation of the Alga web app is not ready: InstallFailed"),
    ({"type": "Ready", "status": "False", "reason": "InstallFailed",
      "message": "exceeded the limit of 1 MAX"},
     "the installation of the Alga web app is not ready: InstallFailed: exceeded the limit of "
     "1 MAX"),
])
def test_a_ready_condition_without_reason_or_message_still_reads(ready, reason):
    release = {"metadata": {"name": "alga-core", "generation": 1},
               "status": {"observedGeneration": 1, "conditions": [ready]}}
    assert readiness.flux_object([release], "HelmRelease", "alga-core") == Verdict(False, reason)


def test_a_ready_flux_object_behind_its_generation_is_exactly_not_ready():
    stale = flux("Kustomization", "kustomize.toolkit.fluxcd.io/v1", "alga-platform",
                 "flux-system", "True", generation=2, observed=1)
    assert readiness.flux_object([stale], "Kustomization", "alga-platform") == Verdict(
        False, "the app's platform configuration has not applied its latest change")


@pytest.mark.parametrize("spec", [None, {}, {"sourceRef": {"kind": "Bucket", "name": "x"}}])
def test_a_missing_artifact_without_a_known_source_waits(spec):
    obj = _failing("Kustomization", "ArtifactFailed")
    if spec is not None:
        obj["spec"] = spec
    assert readiness.flux_failure(obj, oci_release()) is None


def test_a_missing_artifact_with_a_source_without_status_waits():
    obj = _failing("Kustomization", "ArtifactFailed")
    obj["spec"] = {"sourceRef": {"kind": "OCIRepository", "name": "alga-appliance"}}
    view = oci_release()
    del view.ocirepositories[0]["status"]
    assert readiness.flux_failure(obj, view) is None


def test_every_failing_part_is_named():
    view = healthy()
    view.statefulsets = [workload("StatefulSet", "db", 1), workload("StatefulSet", "redis", 0)]
    view.deployments = [workload("Deployment", n, 0 if n == "pgbouncer" else 1) for n in
                        ("pgbouncer", "alga-core-sebastian", *BACKGROUND)]
    assert readiness.tiers(view, LOGIN_OK, False)["core"] == Verdict(
        False, "the cache: 0/1 ready; the database connection pool: 0/1 ready")


def test_a_workload_with_neither_spec_nor_generation_wants_one_ready_replica():
    bare = {"metadata": {"name": "redis"}, "status": {"observedGeneration": 1}}
    assert readiness.workload([bare], "redis") == Verdict(False, "the cache: 0/1 ready")
    bare["status"]["readyReplicas"] = 1
    assert readiness.workload([bare], "redis") == Verdict(True, "the cache: 1/1 ready")
    del bare["status"]
    assert readiness.workload([bare], "redis") == Verdict(False, "the cache: 0/1 ready")


def test_only_numbered_bootstrap_jobs_count():
    view = healthy()
    view.jobs = [job("alga-core-sebastian-bootstrap-r1", complete=True),
                 job("alga-core-sebastian-bootstrap-r2-debug"),
                 job("alga-core-sebastian-bootstrap-rerun")]
    assert readiness.bootstrap(view, False) == Verdict(True, "the app's first-run setup completed")
    assert readiness.bootstrap_job(view)["metadata"]["name"] == "alga-core-sebastian-bootstrap-r1"


def test_bootstrap_after_its_job_expired_reads_exactly():
    view = healthy()
    view.jobs = []
    assert readiness.bootstrap(view, False) == Verdict(
        True, "the app's first-run setup finished (the Alga web app is installed)")
    view.helmreleases = []
    assert readiness.bootstrap(view, True) == Verdict(
        True, "the app's first-run setup completed earlier")
    assert readiness.bootstrap(view, False) == Verdict(
        False, "the app's first-run setup has not started")
