"""The status collector through kubectl's interface (fixtures in the real API formats),
with the login probe against a real HTTP server: every stage of a fresh install and the
common failures, each asserting the tiers, the rollup and the first blocker."""

import datetime
import json
import os
import time
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.base import make_host_root
from support.builders import (
    CONFIG_DIGEST,
    INSTALLED,
    K3S_RUNNING,
    event,
    flux,
    healthy,
    job,
    kustomization,
    node,
    oci_release,
    oci_source,
    pod,
    store_for,
    workload,
)
from support.cluster import FakeCluster
from support.crds import crd_validator
from support.netlab import (
    HttpsServer,
    Route,
    free_loopback_address,
)
from support.scenarios import (
    assert_next_step_is_ours,
    collect,
    installed_with_app,
    stage,
    temporal_worker_crashloop,
)

from host import status
from host.cluster import app_stage
from host.cluster.alga import BACKGROUND
from host.cluster.kube import Kube
from host.core import pins, state
from host.core.failures import SUPPORT_COMMAND

SUPPORT = f"({SUPPORT_COMMAND})"


@pytest.fixture
def lab(tmp_path, fake_cluster):
    make_host_root(tmp_path)
    with installed_with_app(tmp_path) as app:
        yield tmp_path, app


def ready(snapshot: dict) -> set:
    return {name for name, tier in snapshot["tiers"].items() if tier["ready"]}


def first_blocker(snapshot: dict) -> dict | None:
    return snapshot["blockers"][0] if snapshot["blockers"] else None


def test_between_the_k3s_and_flux_phases_missing_flux_crds_are_installing(lab, monkeypatch):
    """k3s answers but Flux's CRDs are not installed yet: that is installing, not an
    unreachable API (kubectl says "the server doesn't have a resource type")."""
    root, _ = lab
    running = {**INSTALLED, "status": "running", "current_phase": "flux",
               "phases": {**INSTALLED["phases"], "flux": {**INSTALLED["phases"]["flux"],
                                                          "state": "running"},
                          "release": {**INSTALLED["phases"]["release"], "state": "pending"}}}
    state.write(state.INSTALL_STATE, running, root)
    monkeypatch.setenv("FAKE_KUBE_ABSENT", "gitrepositories,ocirepositories,kustomizations,"
                                           "helmreleases,helmrepositories,helmcharts")
    snapshot = collect(root, stage("empty"))
    assert snapshot["rollup"]["state"] == "installing"
    assert not [b for b in snapshot["blockers"] if b["component"] == "kubernetes-api"]
    assert snapshot["tiers"]["platform"]["ready"] is False
    monkeypatch.setenv("FAKE_KUBE_DOWN", "1")  # an API that does not answer still says so
    assert [b["component"] for b in collect(root)["blockers"]][:1] == ["kubernetes-api"]


def test_before_setup_and_before_k3s_the_install_state_alone_decides(lab):
    root, _ = lab
    (root / "etc/alga-appliance/setup-inputs.json").unlink()
    (root / "var/lib/alga-appliance/install-state.json").unlink()
    assert collect(root)["rollup"]["state"] == "setup_required"
    state.write(state.INSTALL_STATE, {**INSTALLED, "status": "running", "current_phase": "k3s",
                                      "phases": {"preflight": INSTALLED["phases"]["preflight"]}},
                root)
    snapshot = collect(root)
    assert snapshot["rollup"]["state"] == "installing"
    assert not (root / "kubectl.log").exists()  # no cluster calls before k3s exists


@pytest.mark.parametrize(("node_ip", "next_action"), [
    ("10.0.2.15", "open http://10.0.2.15:8080/setup"),
    ("127.0.0.1", "connect this node to a network, then open http://<its address>:8080/setup"),
])
def test_before_setup_the_next_action_names_the_setup_url_only_with_an_address(
        lab, monkeypatch, node_ip, next_action):
    root, _ = lab
    (root / "etc/alga-appliance/setup-inputs.json").unlink()
    (root / "var/lib/alga-appliance/install-state.json").unlink()
    monkeypatch.setattr(status.addresses, "node_ip", lambda: node_ip)
    assert collect(root)["rollup"]["next_action"] == next_action


def test_failed_phase_is_failed_action_required(lab):
    root, _ = lab
    failed = json.loads(json.dumps(INSTALLED))
    failed["status"] = "failed"
    failed["phases"]["k3s"] = {**failed["phases"]["k3s"], "state": "failed", "failure": {
        "category": "k3s", "last_action": "x", "log_excerpt": "", "suspected_cause":
        "the node did not become Ready", "next_step": "check journalctl -u k3s",
        "support_command": "x"}}
    state.write(state.INSTALL_STATE, failed, root)
    rollup = collect(root)["rollup"]
    assert rollup["state"] == "failed_action_required"
    assert "k3s" in rollup["message"] and rollup["next_action"] == "check journalctl -u k3s"


@pytest.mark.parametrize("k3s_state", ["active", "failed"])
def test_api_unreachable_is_a_k3s_blocker(lab, monkeypatch, k3s_state):
    root, _ = lab
    monkeypatch.setenv("FAKE_KUBE_DOWN", "1")
    monkeypatch.setenv("FAKE_SYSTEMCTL_IS_ACTIVE", k3s_state)
    # Long after the boot; and right after it, k3s having failed is no start-up delay.
    monkeypatch.setattr(status, "uptime_seconds", lambda: 3600.0 if k3s_state == "active"
                        else 20.0)
    snapshot = collect(root)
    blocker = first_blocker(snapshot)
    assert (blocker["layer"], blocker["severity"], blocker["label"], blocker["reason"]) == (
        "k3s", "critical", "the cluster API", "the cluster API is not answering")
    assert blocker["next_action"] == (
        "the log of k3s says why: open the Logs page > k3s, or run "
        "`sudo alga-appliance logs k3s`; then send the support bundle "
        "(sudo alga-appliance support-bundle)")
    assert_next_step_is_ours(blocker["next_action"])
    # What kubectl said is the detail, one click away.
    assert (blocker["detail"]["kind"], blocker["detail"]["name"]) == ("Service", "k3s")
    assert "kubectl" in blocker["detail"]["message"]
    assert snapshot["rollup"]["state"] == "failed_action_required"
    assert snapshot["rollup"]["message"] == "Alga is not available: the cluster API is not " \
                                            "answering"
    # Nothing is known of the cluster: every tier says so, none "does not exist yet".
    assert {(t["state"], t["reason"]) for t in snapshot["tiers"].values()} == {
        ("unknown", "unknown: the cluster API is not answering")}


@pytest.mark.parametrize(("k3s_state", "uptime"), [("activating", 3600.0), ("inactive", 20.0),
                                                   ("active", 20.0)])
def test_api_unreachable_while_k3s_starts_after_a_boot_is_a_wait_not_an_alarm(
        lab, monkeypatch, k3s_state, uptime):
    root, _ = lab
    monkeypatch.setenv("FAKE_KUBE_DOWN", "1")
    monkeypatch.setenv("FAKE_SYSTEMCTL_IS_ACTIVE", k3s_state)
    monkeypatch.setattr(status, "uptime_seconds", lambda: uptime)
    snapshot = collect(root)
    assert snapshot["host"]["k3s_state"] == k3s_state
    blocker = first_blocker(snapshot)
    assert (blocker["component"], blocker["severity"]) == ("kubernetes-api", "warning")
    assert blocker["reason"] == "k3s is starting; the cluster API answers once it has started"
    assert {(t["state"], t["reason"]) for t in snapshot["tiers"].values()} == {
        ("unknown", "unknown: k3s is starting; the cluster API answers once it has started")}
    assert snapshot["rollup"]["state"] == "installing"
    assert snapshot["rollup"]["next_action"].startswith("wait")


@pytest.mark.parametrize(("name", "tiers", "rollup"), [
    ("empty", set(), "installing"),
    ("platform", {"platform"}, "installing"),
    ("core", {"platform", "core"}, "installing"),
    ("bootstrap", {"platform", "core", "bootstrap"}, "installing"),
    ("login", {"platform", "core", "bootstrap", "login"}, "ready_to_log_in"),
    ("full", {"platform", "core", "bootstrap", "login", "background", "fully_healthy"},
     "fully_healthy"),
])
def test_fresh_install_stages(lab, name, tiers, rollup):
    root, _ = lab
    snapshot = collect(root, stage(name))
    assert ready(snapshot) == tiers
    assert snapshot["rollup"]["state"] == rollup


def test_temporal_worker_crashloop_keeps_login(lab):
    root, _ = lab
    snapshot = collect(root, *temporal_worker_crashloop())
    assert "login" in ready(snapshot)
    assert snapshot["rollup"]["state"] == "ready_with_background_issues"
    blocker = first_blocker(snapshot)
    assert (blocker["component"], blocker["layer"], blocker["blocks_login"]) == (
        "temporal-worker", "background", False)
    # Severity matches the rollup: Alga is usable, so a warning (amber), not critical (red);
    # the background tier itself is failing.
    assert blocker["severity"] == "warning"
    assert (snapshot["tiers"]["background"]["state"], snapshot["tiers"]["fully_healthy"][
        "state"]) == ("failing", "failing")
    assert (blocker["label"], blocker["reason"]) == (
        "background job service", "background job service keeps stopping and restarting "
                                  "(a crash loop)")
    assert snapshot["rollup"] == {
        "state": "ready_with_background_issues",
        "label": "Ready to log in, with background issues",
        "message": "You can log in, but background job service keeps stopping and restarting "
                   "(a crash loop)",
        "next_action": blocker["next_action"]}
    assert snapshot["tiers"]["background"]["reason"] == "background job service: 0/1 ready"
    [worker] = snapshot["components"]["pods"]
    assert worker["restarts"] == 7 and worker["last_termination"] == "Error"
    workloads = {w["name"]: w for w in snapshot["components"]["workloads"]}
    assert workloads["temporal-worker"]["restarts"] == 7
    assert (workloads["temporal-worker"]["desired"], workloads["temporal-worker"]["ready"]) == (
        1, 0)


def test_email_service_never_scheduled_keeps_login(lab):
    root, _ = lab
    view = healthy()
    view.deployments = [workload("Deployment", "email-service", 0)
                        if d["metadata"]["name"] == "email-service" else d
                        for d in view.deployments]
    pods = [pod("email-service-7f-abc", "ReplicaSet", "email-service-7f", phase="Pending",
                unschedulable="0/1 nodes are available: 1 Insufficient memory.")]
    snapshot = collect(root, view, pods)
    assert "login" in ready(snapshot) and "background" not in ready(snapshot)
    assert snapshot["rollup"]["state"] == "ready_with_background_issues"
    blocker = first_blocker(snapshot)
    assert (blocker["severity"], blocker["reason"]) == (
        "warning", "background email service is waiting for room to run (storage or capacity)")
    assert blocker["detail"] == {"kind": "Pod", "name": "email-service-7f-abc",
                                 "reason": "Unschedulable",
                                 "message": "0/1 nodes are available: 1 Insufficient memory."}
    # Waiting for room is no failure of its own: the background tier waits.
    assert snapshot["tiers"]["background"]["state"] == "waiting"


@pytest.mark.parametrize(("change", "component", "layer", "phrase", "words"), [
    ("image-pull", "alga-core-sebastian", "login", "ImagePullBackOff",
     "the Alga web app cannot download its software (container image)"),
    ("bootstrap-failed", "bootstrap", "bootstrap", "BackoffLimitExceeded",
     "the app's first-run setup failed"),
    ("pvc-pending", "db", "core", "unbound immediate PersistentVolumeClaims",
     "the database is waiting for room to run (storage or capacity)"),
    ("git-auth", "GitRepository/alga-appliance", "flux", "authentication required",
     "the release download failed: authentication required"),
    ("git-network", "GitRepository/alga-appliance", "flux", "i/o timeout",
     "the release download failed: dial tcp: i/o timeout"),
    ("helm-exhausted", "HelmRelease/alga-core", "flux", "install retries exhausted",
     "the installation of the Alga web app failed: install retries exhausted"),
    ("node-not-ready", "node", "k3s", "the cluster node is not ready",
     "this appliance's cluster node is not ready: nothing can run"),
])
def test_common_failures(lab, change, component, layer, phrase, words):
    root, _ = lab
    view, pods = healthy(), []
    if change == "image-pull":
        view.deployments = [workload("Deployment", "alga-core-sebastian", 0)
                            if d["metadata"]["name"] == "alga-core-sebastian" else d
                            for d in view.deployments]
        pods = [pod("alga-core-sebastian-6b7-q", "ReplicaSet", "alga-core-sebastian-6b7",
                    waiting="ImagePullBackOff")]
    elif change == "bootstrap-failed":
        view.jobs, view.helmreleases = [job("alga-core-sebastian-bootstrap-r1", failed=True)], []
    elif change == "pvc-pending":
        view.statefulsets = [workload("StatefulSet", "db", 0), view.statefulsets[1]]
        pods = [pod("db-0", "StatefulSet", "db", phase="Pending", unschedulable=(
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."))]
    elif change.startswith("git-"):
        reason, message = (("AuthenticationFailed", "authentication required")
                           if change == "git-auth"
                           else ("GitOperationFailed", "dial tcp: i/o timeout"))
        view.gitrepositories = [flux("GitRepository", "source.toolkit.fluxcd.io/v1",
                                     "alga-appliance", "flux-system", "False", reason, message)]
    elif change == "helm-exhausted":
        view.helmreleases = [flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core",
                                  "alga-system", "False", "InstallFailed",
                                  "install retries exhausted")]
        view.jobs = []
        view.deployments = [d for d in view.deployments
                            if d["metadata"]["name"] != "alga-core-sebastian"]
    elif change == "node-not-ready":
        view.nodes = [node("False")]
    for obj in [*view.gitrepositories, *view.kustomizations, *view.helmreleases]:
        crd_validator(obj["kind"])[1].validate(obj)  # the fixtures stay honest
    snapshot = collect(root, view, pods)
    blocker = first_blocker(snapshot)
    assert (blocker["component"], blocker["layer"]) == (component, layer), snapshot["blockers"]
    assert blocker["reason"] == words and blocker["blocks_login"]
    detail = blocker["detail"]
    assert phrase in f"{detail['reason']}: {detail['message']}", detail
    assert_next_step_is_ours(blocker["next_action"])
    assert "login" not in ready(snapshot) or layer in ("k3s", "flux")
    if change == "pvc-pending":  # a warning: often brief while installing
        assert snapshot["rollup"]["state"] == "installing"
        assert snapshot["rollup"]["message"] == f"Installing; {words}"
    elif "login" in ready(snapshot):  # the app still answers: usable, with the problem named
        assert snapshot["rollup"]["state"] == "ready_with_background_issues"
        assert snapshot["rollup"]["message"] == f"You can log in, but {words}"
    else:
        assert snapshot["rollup"]["state"] == "failed_action_required"


def test_an_oci_release_shows_its_source_at_the_digest_and_its_charts(lab):
    root, _ = lab
    snapshot = collect(root, oci_release())
    assert snapshot["rollup"]["state"] == "fully_healthy" and not snapshot["blockers"]
    flux_objects = {(f["kind"], f["name"]): f for f in snapshot["flux"]}
    source = flux_objects[("OCIRepository", "alga-appliance")]
    assert (source["ready"], source["revision"]) == (True, CONFIG_DIGEST)
    assert flux_objects[("Kustomization", "alga-appliance")]["revision"] == CONFIG_DIGEST
    # An OCI HelmRepository is a static object: no Ready condition, which is no problem.
    assert flux_objects[("HelmRepository", "alga-charts")]["ready"] is None
    assert flux_objects[("HelmChart", "alga-system-alga-core")]["ready"] is True
    assert "GitRepository" not in {kind for kind, _ in flux_objects}


@pytest.mark.parametrize(("change", "component", "layer", "phrase", "next_phrase"), [
    ("digest-withdrawn", "OCIRepository/alga-appliance", "flux", "MANIFEST_UNKNOWN",
     "no longer published (withdrawn): update to what the channel names now"),
    ("core-chart", "HelmChart/alga-system-alga-core", "flux", "chart pull error",
     "`sudo alga-appliance logs source-controller`"),
    ("background-chart", "HelmChart/alga-system-temporal", "background", "chart pull error",
     "`sudo alga-appliance logs source-controller`"),
])
def test_oci_release_failures_are_blockers_naming_the_object(lab, change, component, layer,
                                                            phrase, next_phrase):
    root, _ = lab
    view = oci_release()
    if change == "digest-withdrawn":
        view.ocirepositories = [oci_source(
            "False", "OCIArtifactPullFailed", "failed to pull artifact from "
            "'oci://ghcr.io/nine-minds/alga-appliance-config': GET https://ghcr.io/v2/nine-minds/"
            f"alga-appliance-config/manifests/{CONFIG_DIGEST}: MANIFEST_UNKNOWN: manifest "
            "unknown")]
    else:
        release = "alga-core" if change == "core-chart" else "temporal"
        view.helmcharts = [flux("HelmChart", "source.toolkit.fluxcd.io/v1",
                                f"alga-system-{release}", "flux-system", "False",
                                "ChartPullError", "chart pull error: failed to get chart "
                                "version for remote reference: not found")]
    snapshot = collect(root, view)
    blocker = first_blocker(snapshot)
    assert (blocker["component"], blocker["layer"]) == (component, layer), snapshot["blockers"]
    assert phrase in blocker["reason"] and phrase in blocker["detail"]["message"]
    assert blocker["detail"]["kind"] == component.split("/")[0]
    assert blocker["detail"]["name"] == f"flux-system/{component.split('/')[1]}"
    assert next_phrase in blocker["next_action"]
    assert_next_step_is_ours(blocker["next_action"])
    if change == "digest-withdrawn":
        assert blocker["label"] == "the release download"
        assert "`sudo alga-appliance update --channel stable`" in blocker["next_action"]
        assert not snapshot["tiers"]["platform"]["ready"]
        assert "the release download is not ready" in snapshot["tiers"]["platform"]["reason"]
    else:
        assert blocker["label"] == ("the chart of the Alga web app" if change == "core-chart"
                                    else "the chart of the workflow engine")
        assert blocker["severity"] == ("critical" if layer == "flux" else "warning")


def test_flux_waiting_on_a_dependency_is_installing_not_a_failure(lab):
    root, _ = lab
    view = oci_release()
    view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
    view.jobs, view.helmreleases = [], []
    view.kustomizations += [
        kustomization("alga-core", "OCIRepository", "False", "DependencyNotReady",
                      "dependency 'flux-system/alga-platform' is not ready"),
        kustomization("alga-background", "OCIRepository", "Unknown", "Progressing",
                      "Reconciliation in progress")]
    for obj in view.kustomizations:
        crd_validator(obj["kind"])[1].validate(obj)
    snapshot = collect(root, view)
    assert not [b for b in snapshot["blockers"] if b["severity"] == "critical"], \
        snapshot["blockers"]
    assert snapshot["rollup"]["state"] == "installing"
    # Tiers not reached yet say so: waiting, never the red "failing" of a real problem.
    assert {name: tier["state"] for name, tier in snapshot["tiers"].items()} == {
        "platform": "ready", "core": "ready", "bootstrap": "waiting", "login": "waiting",
        "background": "waiting", "fully_healthy": "waiting"}


# kustomize-controller's words while the Kustomization's source has not pulled yet.
NO_ARTIFACT_YET = "Source artifact not found, retrying in 30s"


def before_the_first_pull(view):
    """`view` with nothing installed yet and the root Kustomization waiting for its source's
    first artifact."""
    view.kustomizations = [kustomization("alga-appliance", "OCIRepository", "False",
                                         "ArtifactFailed", NO_ARTIFACT_YET)]
    view.helmreleases, view.helmcharts, view.deployments, view.statefulsets, view.jobs = \
        [], [], [], [], []
    return view


def test_a_kustomization_ahead_of_its_source_s_first_pull_is_installing(lab):
    """The first seconds of every fresh install, as real Flux shows them: the root
    Kustomization says ArtifactFailed while its OCIRepository has not reported yet."""
    root, _ = lab
    view = oci_release()
    source = oci_source()
    source["status"] = {}
    view.ocirepositories = [source]
    snapshot = collect(root, before_the_first_pull(view))
    assert snapshot["blockers"] == [], snapshot["blockers"]
    assert snapshot["rollup"]["state"] == "installing"


def test_a_source_that_cannot_pull_is_the_one_blocker_not_its_kustomization(lab):
    root, _ = lab
    view = oci_release()
    view.ocirepositories = [oci_source(
        "False", "AuthenticationFailed", "failed to get credential from 'ghcr.io': "
        "GET https://ghcr.io/token: DENIED: denied")]
    snapshot = collect(root, before_the_first_pull(view))
    assert [b["component"] for b in snapshot["blockers"] if b["severity"] == "critical"] == [
        "OCIRepository/alga-appliance"], snapshot["blockers"]
    assert snapshot["rollup"]["state"] == "failed_action_required"


def test_a_kustomization_that_cannot_fetch_a_pulled_artifact_is_a_blocker(lab):
    """Its source has the artifact, so ArtifactFailed is the Kustomization's own failure."""
    root, _ = lab
    view = oci_release()
    view.kustomizations = [kustomization(
        "alga-appliance", "OCIRepository", "False", "ArtifactFailed",
        "failed to download archive: GET http://source-controller.flux-system.svc.cluster."
        "local./ocirepository/flux-system/alga-appliance/x.tar.gz: connection refused")]
    snapshot = collect(root, view)
    blocker = first_blocker(snapshot)
    assert blocker["component"] == "Kustomization/alga-appliance", snapshot["blockers"]
    assert blocker["reason"].startswith("the app's configuration failed: failed to download "
                                        "archive")
    assert blocker["detail"]["reason"] == "ArtifactFailed"
    assert blocker["severity"] == "critical"


def test_a_failing_background_kustomization_never_takes_login(lab):
    """alga-background applies the background releases: its health check failing is a
    background problem, shown as such, with login ready."""
    root, _ = lab
    view = oci_release()
    view.deployments = [workload("Deployment", "temporal", 0) if d["metadata"]["name"] ==
                        "temporal" else d for d in view.deployments]
    view.kustomizations.append(kustomization(
        "alga-background", "OCIRepository", "False", "HealthCheckFailed",
        "health check failed after 30m0s: timeout waiting for: [HelmRelease/alga-system/"
        "temporal status: 'InProgress']"))
    snapshot = collect(root, view)
    assert snapshot["rollup"]["state"] == "ready_with_background_issues"
    blocker = first_blocker(snapshot)
    assert (blocker["component"], blocker["layer"], blocker["blocks_login"]) == (
        "Kustomization/alga-background", "background", False)
    states = {name: tier["state"] for name, tier in snapshot["tiers"].items()}
    assert (states["login"], states["background"], states["fully_healthy"]) == (
        "ready", "failing", "failing")


def test_a_failing_background_release_with_its_services_still_running_is_no_full_health(lab):
    """The background services run (their previous version), but their Helm release
    failed: a warning, as login works, yet not "fully healthy"."""
    root, _ = lab
    view = oci_release()
    view.helmreleases.append(flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "email-service",
                                  "alga-system", "False", "UpgradeFailed", "timed out"))
    snapshot = collect(root, view)
    blocker = first_blocker(snapshot)
    assert (blocker["severity"], blocker["label"], blocker["reason"]) == (
        "warning", "the installation of background email service",
        "the installation of background email service failed: timed out")
    assert snapshot["rollup"]["state"] == "ready_with_background_issues"
    assert snapshot["rollup"]["message"] == f"You can log in, but {blocker['reason']}"


def test_a_failing_core_release_marks_the_tiers_failing(lab):
    root, _ = lab
    view = oci_release()
    view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
    view.jobs = []
    view.helmreleases = [flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core",
                              "alga-system", "False", reason="InstallFailed",
                              message="Helm install failed for release msp/alga-core with "
                                      "chart sebastian@0.0.1: context deadline exceeded")]
    snapshot = collect(root, view)
    assert snapshot["rollup"]["state"] == "failed_action_required"
    states = {name: tier["state"] for name, tier in snapshot["tiers"].items()}
    assert (states["platform"], states["login"], states["background"]) == (
        "ready", "failing", "waiting")


def test_a_snapshot_without_tier_states_reads_as_before(lab):
    """status.json written before tiers had a state and the app stage was judged: read with
    the state they meant, and no app stage failure."""
    root, _ = lab
    snapshot = collect(root, stage("login"))
    del snapshot["app_failure"]
    for tier in snapshot["tiers"].values():
        del tier["state"]
    snapshot["tiers"]["core"]["degraded"], snapshot["tiers"]["core"]["ready"] = True, False
    state.STATUS.path(root).write_text(json.dumps(snapshot))
    read = state.read(state.STATUS, root)
    assert {name: tier["state"] for name, tier in read["tiers"].items()} == {
        "platform": "ready", "core": "degraded", "bootstrap": "ready", "login": "ready",
        "background": "waiting", "fully_healthy": "waiting"}
    assert read["app_failure"] is None


def test_a_helm_release_waiting_for_its_chart_is_installing_not_a_failure(lab):
    """What helm-controller v1.4 says of every HelmRelease while source-controller makes its
    HelmChart (cluster/test_real_flux.py saw it): the chart's own failure is reported on the
    HelmChart."""
    root, _ = lab
    view = oci_release()
    view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
    view.jobs = []
    view.helmreleases = [flux("HelmRelease", "helm.toolkit.fluxcd.io/v2", "alga-core",
                              "alga-system", "False", reason="SourceNotReady",
                              message="HelmChart 'flux-system/alga-system-alga-core' is not "
                                      "ready: latest generation of object has not been "
                                      "reconciled")]
    snapshot = collect(root, view)
    assert not [b for b in snapshot["blockers"] if b["layer"] == "flux"], snapshot["blockers"]
    assert snapshot["rollup"]["state"] == "installing"


def test_bootstrap_job_gone_after_its_ttl_is_remembered(lab):
    root, _ = lab
    collect(root, healthy())
    view = healthy()
    view.jobs, view.helmreleases = [], []
    snapshot = collect(root, view)
    assert snapshot["tiers"]["bootstrap"]["ready"] and snapshot["bootstrap_seen"]


@pytest.mark.parametrize(("reason", "words", "next_step"), [
    ("CrashLoopBackOff", "background job service keeps stopping and restarting (a crash loop)",
     "the log of its last run says why it stopped: open the Logs page > workers, or "
     f"run `sudo alga-appliance logs workers`; then send the support bundle {SUPPORT}"),
    ("CreateContainerConfigError",
     "background job service cannot start: its container cannot be created",
     f"see Recent warning events on the status page: they say why; then send the support "
     f"bundle {SUPPORT}"),
    ("ErrImagePull", "background job service cannot download its software (container image)",
     "check that this appliance reaches ghcr.io (proxy, firewall), and see Recent warning "
     f"events on the status page; then send the support bundle {SUPPORT}"),
])
def test_a_pods_problem_in_plain_words_with_the_pod_one_click_away(lab, reason, words,
                                                                    next_step):
    root, _ = lab
    view, pods = temporal_worker_crashloop()
    pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] = reason
    blocker = first_blocker(collect(root, view, pods))
    assert (blocker["label"], blocker["reason"], blocker["next_action"]) == (
        "background job service", words, next_step)
    assert blocker["detail"] == {"kind": "Pod", "name": "temporal-worker-5d9c-x1",
                                 "reason": reason, "message": ""}
    assert_next_step_is_ours(blocker["next_action"])


def test_login_probe_failures(lab):
    root, app = lab
    app.routes["/"] = Route(status=503)
    snapshot = collect(root, healthy())
    assert "login" not in ready(snapshot) and "answered 503" in snapshot["tiers"]["login"][
        "reason"]
    app.routes["/"] = Route(status=200, delay=3)
    snapshot = collect(root, healthy())
    assert "did not answer within 1 s" in snapshot["tiers"]["login"]["reason"]


def test_login_is_probed_where_alga_runs_and_an_unreachable_public_url_only_warns(lab):
    """The wizard's own example, https://psa.example.com, ends TLS on a proxy in front: the
    appliance cannot reach it itself, yet Alga is up at the node's address and port 3000."""
    root, app = lab
    nobody = f"https://{free_loopback_address()}:8443"  # TLS ends elsewhere: nothing here
    inputs = state.read(state.SETUP_INPUTS, root)
    state.write(state.SETUP_INPUTS, {**inputs, "app_url": nobody}, root)
    view = healthy()
    view.nodes = [node(address=app.address)]
    (root / "store.json").write_text(json.dumps(store_for(view)))
    snapshot = status.take_snapshot(root, Kube(str(root / "k3s.yaml")),
                                    probe=lambda url: status.probe_login(url, timeout=1.0))
    assert snapshot["tiers"]["login"]["ready"], snapshot["tiers"]["login"]
    assert snapshot["tiers"]["login"]["reason"].endswith(f"{app.url}/ redirects to /msp/dashboard")
    warning = first_blocker(snapshot)
    assert (warning["component"], warning["severity"], warning["blocks_login"]) == (
        "app-url", "warning", False)
    for why in ("TLS may end on a proxy", "split-horizon DNS", "hairpin NAT", app.url):
        assert why in warning["reason"]
    assert nobody in warning["next_action"] and "not reachable" in warning["reason"]
    assert snapshot["rollup"]["state"] == "fully_healthy"

    app.routes["/"] = Route(status=503)  # the app itself down: login is not ready, whatever
    snapshot = status.take_snapshot(root, Kube(str(root / "k3s.yaml")),
                                    probe=lambda url: status.probe_login(url, timeout=1.0))
    assert not snapshot["tiers"]["login"]["ready"]
    assert "answered 503" in snapshot["tiers"]["login"]["reason"]
    assert "app-url" not in [b["component"] for b in snapshot["blockers"]]


def test_a_public_url_that_answers_and_the_node_url_itself_are_not_warned_about(lab):
    root, app = lab
    with HttpsServer(None, {"/": Route(status=200)}) as front:  # a proxy in front that answers
        inputs = state.read(state.SETUP_INPUTS, root)
        state.write(state.SETUP_INPUTS, {**inputs, "app_url": front.url}, root)
        view = healthy()
        view.nodes = [node(address=app.address)]
        (root / "store.json").write_text(json.dumps(store_for(view)))
        snapshot = status.take_snapshot(root, Kube(str(root / "k3s.yaml")))
        assert [path for _, path, _ in front.requests] == ["/"]
    assert snapshot["rollup"]["state"] == "fully_healthy" and not snapshot["blockers"]
    served = len(app.requests)
    state.write(state.SETUP_INPUTS, {**inputs, "app_url": app.url}, root)
    snapshot = status.take_snapshot(root, Kube(str(root / "k3s.yaml")))
    assert not snapshot["blockers"] and len(app.requests) == served + 1  # one probe, not two


def test_flapping_shows_degraded_since_not_installing(lab):
    root, app = lab
    first = collect(root, healthy())
    assert first["rollup"]["state"] == "fully_healthy"
    app.routes["/"] = Route(status=503)
    time.sleep(1.1)
    snapshot = collect(root, healthy())
    login = snapshot["tiers"]["login"]
    assert login["degraded"] and login["since"] > first["tiers"]["login"]["since"]
    assert snapshot["rollup"]["state"] == "failed_action_required"
    assert f"degraded since {login['since']}" in snapshot["rollup"]["message"]


def test_flux_and_events_and_host_facts(lab):
    root, _ = lab
    events = [event(f"p{i}", "BackOff", f"back-off {i}", f"2026-11-27T10:00:{i:02d}Z")
              for i in range(30)]
    snapshot = collect(root, healthy(), events=events)
    assert len(snapshot["events"]) == 20 and snapshot["events"][0]["message"] == "back-off 29"
    assert {f["kind"] for f in snapshot["flux"]} == {"GitRepository", "Kustomization",
                                                    "HelmRelease"}
    assert all(f["generation_current"] for f in snapshot["flux"])
    host = snapshot["host"]
    assert host["k3s_version"] == K3S_RUNNING != pins.K3S_VERSION  # what runs, not the pin
    assert host["uptime_seconds"] > 0
    assert [d["path"] for d in host["disk"]] == ["/var/lib/rancher", "/var/lib/alga-appliance"]


def test_due_every_run_until_healthy_then_every_minute(lab):
    root, _ = lab
    assert status.due(root)
    collect(root, stage("core"))
    assert status.due(root)
    collect(root, healthy())
    assert not status.due(root)


@settings(max_examples=15)
@given(st.sampled_from(BACKGROUND), st.sampled_from(["CrashLoopBackOff", "ImagePullBackOff"]))
def test_a_background_only_failure_never_clears_login(tmp_path_factory, component, reason):
    root = make_host_root(tmp_path_factory.mktemp("root"))
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://127.0.0.1:1",
                                     "dns": {"mode": "system"}, "proxy": None, "overrides": {}},
                root)
    state.write(state.INSTALL_STATE, INSTALLED, root)
    view = healthy()
    view.deployments = [workload("Deployment", component, 0)
                        if d["metadata"]["name"] == component else d for d in view.deployments]
    pods = [pod(f"{component}-1a-x", "ReplicaSet", f"{component}-1a", waiting=reason)]
    (root / "store.json").write_text(json.dumps(store_for(view, pods)))
    with mock.patch.dict(os.environ, FakeCluster(root).knobs()):
        ok = status.take_snapshot(root, Kube(str(root / "k3s.yaml")),
                            probe=lambda url: status.Verdict(True, "200"))
    assert ok["tiers"]["login"]["ready"] and not ok["tiers"]["background"]["ready"]
    assert all(not b["blocks_login"] for b in ok["blockers"])


# --- the app stage of a first install: bounded, and failing in the PRD's categories ------


def release_applied(root, minutes_ago: float) -> None:
    """Setup succeeded; its release phase handed the app to Flux `minutes_ago`."""
    finished = state.timestamp(datetime.datetime.now(datetime.UTC)
                               - datetime.timedelta(minutes=minutes_ago))
    phases = {**INSTALLED["phases"], "release": {**INSTALLED["phases"]["release"],
                                                 "finished_at": finished}}
    state.write(state.INSTALL_STATE, {**INSTALLED, "phases": phases}, root)


def unbound_claim() -> tuple:
    view = healthy()
    view.statefulsets = [workload("StatefulSet", "db", 0), view.statefulsets[1]]
    return view, [pod("db-0", "StatefulSet", "db", phase="Pending", unschedulable=(
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."))]


@pytest.mark.parametrize("minutes", [app_stage.STORAGE_SECONDS / 60 - 1,
                                     app_stage.STORAGE_SECONDS / 60 + 1])
def test_storage_that_never_binds_fails_the_app_stage_after_its_limit(lab, minutes):
    root, _ = lab
    release_applied(root, minutes)
    view, pods = unbound_claim()
    events = [event("db-0", "FailedScheduling", "unbound immediate PersistentVolumeClaims",
                    "2026-11-27T10:00:00Z")]
    snapshot = collect(root, view, pods, events)
    if minutes * 60 < app_stage.STORAGE_SECONDS:  # brief while installing: a warning
        assert snapshot["app_failure"] is None
        assert snapshot["rollup"]["state"] == "installing"
        return
    failure = snapshot["app_failure"]
    assert failure["category"] == "storage"
    assert failure["suspected_cause"] == (
        "the database still has no storage after 10 min: 0/1 nodes are available: pod has "
        "unbound immediate PersistentVolumeClaims.")
    assert failure["last_action"] == "waiting for the database to get its storage"
    assert "Pod/db-0 FailedScheduling: unbound immediate" in failure["log_excerpt"]
    assert failure["next_step"] == (
        "check free disk under Host on the status page (the app's volumes live under "
        "/var/lib/rancher) and see Recent warning events there; then send the support bundle "
        f"{SUPPORT}")
    assert_next_step_is_ours(failure["next_step"])
    assert snapshot["rollup"]["state"] == "failed_action_required"
    assert snapshot["rollup"]["message"].startswith("Setup's app stage failed [storage]")
    # Waiting no longer: the tiers the storage stands in the way of are failing.
    assert {name: tier["state"] for name, tier in snapshot["tiers"].items()} == {
        "platform": "ready", "core": "failing", "bootstrap": "ready", "login": "failing",
        "background": "ready", "fully_healthy": "failing"}


def test_a_failed_bootstrap_job_fails_the_app_stage_at_once_with_its_log(lab):
    root, _ = lab
    release_applied(root, 2)
    name = "alga-core-sebastian-bootstrap-r1"
    logs = root / "pod-logs/msp/job" / name / "all.log"
    logs.parent.mkdir(parents=True)
    logs.write_text("".join(f"migration {i} ok\n" for i in range(40))
                    + "error: relation \"tenants\" already exists\n")
    view = healthy()
    view.jobs, view.helmreleases = [job(name, failed=True)], []
    failure = collect(root, view)["app_failure"]
    assert failure["category"] == "app-bootstrap"
    assert failure["suspected_cause"] == "the app's first-run setup failed"
    assert failure["last_action"] == f"waiting for the bootstrap job {name}"
    excerpt = failure["log_excerpt"].splitlines()
    assert len(excerpt) == 20 and excerpt[-1] == 'error: relation "tenants" already exists'
    assert failure["next_step"] == (
        "its log says why: open the Logs page > bootstrap, or run "
        f"`sudo alga-appliance logs bootstrap`; then send the support bundle {SUPPORT} to Alga "
        "support")
    assert_next_step_is_ours(failure["next_step"])


def test_a_bootstrap_that_never_finishes_fails_after_its_limit(lab):
    root, _ = lab
    release_applied(root, app_stage.BOOTSTRAP_SECONDS / 60 + 1)
    view = stage("core")  # the bootstrap job is still running
    snapshot = collect(root, view)
    failure = snapshot["app_failure"]
    assert failure["category"] == "app-bootstrap"
    assert failure["suspected_cause"] == "the app's first-run setup is running after 30 min"
    assert snapshot["tiers"]["bootstrap"]["state"] == "failing"


@pytest.mark.parametrize("minutes", [44, 46])
def test_login_that_never_works_fails_as_app_readiness_after_its_limit(lab, minutes):
    root, app = lab
    release_applied(root, minutes)
    app.routes["/"] = Route(status=503)  # alga-core's server answers, but not the app
    snapshot = collect(root, healthy())
    if minutes * 60 < app_stage.LOGIN_SECONDS:
        assert snapshot["app_failure"] is None and snapshot["rollup"]["state"] == "installing"
        return
    failure = snapshot["app_failure"]
    assert failure["category"] == "app-readiness"
    assert "login did not work within 45 min" in failure["suspected_cause"]
    assert "answered 503" in failure["suspected_cause"]
    assert failure["last_action"] == f"waiting for login at {app.url}/"
    assert failure["next_step"] == (
        "see which components are not running under Components and Recent warning events on "
        f"the status page; then send the support bundle {SUPPORT}")
    assert_next_step_is_ours(failure["next_step"])
    assert snapshot["rollup"]["state"] == "failed_action_required"


def test_background_services_that_never_start_fail_without_taking_login(lab):
    root, _ = lab
    release_applied(root, 90)
    view, pods = temporal_worker_crashloop()
    first = collect(root, view, pods)
    assert first["app_failure"] is None  # login has only just started working
    earlier = state.read(state.STATUS, root)
    earlier["tiers"]["login"]["since"] = state.timestamp(
        datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=31))
    state.write(state.STATUS, earlier, root)
    snapshot = collect(root, view, pods)
    failure = snapshot["app_failure"]
    assert failure["category"] == "background-services"
    assert failure["suspected_cause"] == (
        "the background services did not start within 30 min of login working: background "
        "job service keeps stopping and restarting (a crash loop)")
    assert failure["next_step"] == (
        "the log of its last run says why it stopped: open the Logs page > workers, "
        f"or run `sudo alga-appliance logs workers`; then send the support bundle {SUPPORT}; "
        "you can log in meanwhile")
    assert_next_step_is_ours(failure["next_step"])
    assert snapshot["tiers"]["login"]["ready"]
    assert snapshot["rollup"]["state"] == "ready_with_background_issues"


def test_once_login_has_worked_a_drop_is_degraded_not_an_app_stage_failure(lab):
    root, app = lab
    release_applied(root, 120)
    assert collect(root, healthy())["rollup"]["state"] == "fully_healthy"
    app.routes["/"] = Route(status=503)
    time.sleep(1.1)
    snapshot = collect(root, healthy())
    assert snapshot["app_failure"] is None and snapshot["tiers"]["login"]["degraded"]
