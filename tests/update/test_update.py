"""App channel updates against an Alga repository tree on a real HTTPS server (test CA), a
real DNS server and a real app server on loopback, and kubectl's interface
(tests/fakes/kubectl, playing Flux's controllers with $FAKE_FLUX_RECONCILE).

Each test starts from an appliance the release phase installed with release 1.0."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from support.builders import job
from support.crds import assert_valid, crd_validator
from support.netlab import (
    HttpsServer,
    Route,
)
from support.releases import CHANNEL_PATH
from support.scenarios import assert_next_step_is_ours
from support.updates import (
    CORE_IMAGE,
    KERNEL,
    UpdateLab,
    alga_core,
    publish,
)

from host import cli
from host.cluster import alga
from host.cluster.alga import ALGA_CORE
from host.cluster.kube import Kube
from host.core import maintenance, pins, runlock, spool, state
from host.core.version import version_key
from host.setup import engine
from host.update import apply, check, history
from host.update import request as update_request

RECONCILE = alga.RECONCILE_ANNOTATION
SUB_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def lab(update_lab):
    """An installed appliance on the fake cluster (support.updates)."""
    return update_lab


def test_an_update_with_changed_tags(lab):
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11", emailService="e5e5")
    before, files = lab.objects(), lab.host_files()
    checked = lab.check()
    assert checked["result"] == "update_available" and checked["action"] == "check"
    assert checked["changes"] == {
        "images": [{"name": "algaCore", "from": "eaec6253", "to": "c0ffee11"},
                   {"name": "emailService", "from": "61e4a00e", "to": "e5e5"}],
        "branch": None, "backwards": False, "needs_confirmation": False,
        "confirmation_reason": None, "source": None, "charts": [], "values_profile": None,
        "config_digest": None}
    assert (checked["from"]["release_version"], checked["to"]["release_version"]) == (
        "1.0", "1.0.1")
    assert lab.objects() == before and lab.host_files() == files  # a check changes nothing
    assert not (lab.root / "kubectl.log").exists()
    lab.put(alga_core("c0ffee11"))  # what Helm will have rolled out

    entry = lab.apply()
    assert entry["result"] == "succeeded", entry["failure"]
    assert entry["step"] == "waiting for login" and entry["failure"] is None
    core = lab.values("alga-core")
    assert core["server"]["image"] == core["setup"]["image"] == {"tag": "c0ffee11"}
    assert core["image"] == {"repository": "ghcr.io/nine-minds/alga-core",
                             "tag": "from-profile"} and core["replicas"] == 2
    assert (core["appUrl"], core["host"], core["domainSuffix"]) == (lab.app.url, lab.app.address,
                                                                  "")
    assert core["bootstrap"] == {"mode": "recover"}
    assert lab.values("email-service")["image"] == {
        "repository": "ghcr.io/nine-minds/email-service", "tag": "e5e5"}
    assert lab.values("workflow-worker")["image"]["tag"] == "a2cbb43"
    assert lab.values("pgbouncer")["image"]["tag"] == "from-profile"
    selection = lab.get("ConfigMap", "alga-system", "appliance-release-selection")["data"]
    assert (selection["releaseVersion"], selection["algaCore"]) == ("1.0.1", "c0ffee11")
    # One reconciliation request on the source, every Kustomization and every Helm release.
    repository = lab.get("GitRepository", "flux-system", "alga-appliance")
    requested = repository["metadata"]["annotations"][RECONCILE]
    assert SUB_SECOND.match(requested)
    assert repository["spec"]["ref"] == {"branch": "release/1.0.0"}
    flux_objects = [repository, lab.get("Kustomization", "flux-system", "alga-appliance"),
                    lab.get("Kustomization", "flux-system", "alga-platform"),
                    *(lab.get("HelmRelease", "alga-system", name)
                      for name in alga.HELM_RELEASES)]
    for obj in flux_objects:
        assert obj["metadata"]["annotations"] == {RECONCILE: requested}, obj["metadata"]
    assert_valid_flux(lab, flux_objects)
    for obj in lab.objects().values():
        if obj["kind"] in ("Namespace", "ConfigMap", "Secret"):
            assert_valid(obj)
    # The auth key was never applied again.
    assert lab.get("Secret", "msp", "alga-psa-shared") == before["Secret/msp/alga-psa-shared"]
    assert "switching branch" not in (lab.root / "var/log/alga-appliance/update.log").read_text()
    # The Helm releases were asked only after the source and Kustomizations had handled it.
    calls = lab.kubectl_calls()
    first_helm = calls.index(next(c for c in calls if c[:3] == ["annotate", "--overwrite",
                                                              "helmrelease"]))
    assert ["get", "gitrepository", "alga-appliance", "--namespace", "flux-system", "-o",
            "json"] in calls[:first_helm]

    selected = state.read(state.SELECTED_RELEASE, lab.root)
    assert (selected["release_version"], selected["images"]["algaCore"]) == ("1.0.1", "c0ffee11")
    assert state.read(state.SETUP_INPUTS, lab.root)["app_url"] == lab.app.url
    assert [(e["action"], e["result"]) for e in history.entries(lab.root)] == [
        ("apply", "succeeded"), ("check", "update_available")]
    assert lab.check()["result"] == "up_to_date"


def assert_valid_flux(lab: UpdateLab, stored: list[dict]) -> None:
    """As stored, and as Flux reports them (with status), against the real CRD schemas."""
    kube = Kube(lab.kubeconfig)
    for obj in stored:
        api_version, validator = crd_validator(obj["kind"])
        assert obj["apiVersion"] == api_version
        validator.validate(obj)
        reported = kube.get(obj["kind"].lower(), obj["metadata"]["name"],
                            obj["metadata"]["namespace"])
        validator.validate(reported)
        assert reported["status"]["lastHandledReconcileAt"] == \
            obj["metadata"]["annotations"][RECONCILE]


def test_no_change(lab):
    before, files = lab.objects(), lab.host_files()
    checked = lab.check()
    assert checked["result"] == "up_to_date"
    assert checked["changes"] == {"images": [], "branch": None, "backwards": False,
                                  "needs_confirmation": False, "confirmation_reason": None,
                                  "source": None, "charts": [], "values_profile": None,
                                  "config_digest": None}
    entry = lab.apply()
    assert entry["result"] == "up_to_date" and entry["failure"] is None
    assert lab.objects() == before and lab.host_files() == files
    assert not (lab.root / "kubectl.log").exists()  # the cluster was not even asked
    assert [e["result"] for e in history.entries(lab.root)] == ["up_to_date", "up_to_date"]


def test_a_branch_switch(lab):
    publish(lab, "stable", "1.1", "release/1.1.0")
    checked = lab.check()
    assert checked["changes"]["branch"] == {"from": "release/1.0.0", "to": "release/1.1.0"}
    assert checked["changes"]["images"] == [] and checked["result"] == "update_available"
    entry = lab.apply()
    assert entry["result"] == "succeeded", entry["failure"]
    repository = lab.get("GitRepository", "flux-system", "alga-appliance")
    assert repository["spec"]["ref"] == {"branch": "release/1.1.0"}
    reported = Kube(lab.kubeconfig).get("gitrepository", "alga-appliance", "flux-system")
    assert reported["status"]["artifact"]["revision"].startswith("release/1.1.0@sha1:")
    assert lab.values("alga-core")["replicas"] == 2  # the profile from the new branch
    log = (lab.root / "var/log/alga-appliance/update.log").read_text()
    steps = re.findall(r"^\S+ → (.+)$", log, re.MULTILINE)
    assert steps == ["preflight", "rendering values", "recording the selection",
                     "switching the Flux source", "requesting reconciliation",
                     "waiting for Flux",
                     "waiting for login"]
    assert state.read(state.SELECTED_RELEASE, lab.root)["repo_branch"] == "release/1.1.0"


@pytest.mark.parametrize(("route", "category", "phrase"), [
    (Route(body="{not json"), "release-source", "is not valid JSON"),
    (Route(body={"channel": "stable", "releaseVersion": 7, "updatedAt": None}),
     "release-source", "releaseVersion"),
    (Route(status=404), "release-source", "not found"),
    (None, "network", "cannot reach"),
])
def test_an_invalid_or_unreachable_channel_changes_nothing(lab, route, category, phrase):
    if route is None:
        closed = HttpsServer(lab.github.ca, {})
        with closed:
            url = closed.url
        state.write(state.ENDPOINTS, {**state.read(state.ENDPOINTS, lab.root), "raw_base": url},
                    lab.root)
    else:
        lab.github.routes[CHANNEL_PATH] = route
    before, files = lab.objects(), lab.host_files()
    for entry in (lab.check(), lab.apply()):
        failure = entry["failure"]
        assert entry["result"] == "failed" and entry["to"] is None, entry
        assert failure["category"] == category
        assert phrase in failure["suspected_cause"] and "release.channel" in (
            failure["suspected_cause"])
        assert "nothing was changed" in failure["suspected_cause"] and failure["next_step"]
    assert entry["step"] == "preflight"
    assert lab.objects() == before and lab.host_files() == files
    assert not (lab.root / "kubectl.log").exists()


def test_preflight_failure_is_classified_before_any_change(lab):
    # GHCR answers 503 to the image preflight pulls.
    state.write(state.ENDPOINTS, {**state.read(state.ENDPOINTS, lab.root),
                                  "ghcr_base": lab.github.url}, lab.root)
    repository, _, tag = pins.FLUX_SOURCE_CONTROLLER_IMAGE.rpartition(":")
    lab.github.routes[f"/v2/{repository}/manifests/{tag}"] = Route(status=503)
    entry = lab.apply()
    assert entry["result"] == "failed" and entry["failure"]["category"] == "network"
    assert entry["failure"]["suspected_cause"].startswith("ghcr: ")
    assert "answered 503" in entry["failure"]["suspected_cause"]
    assert "retry later" in entry["failure"]["next_step"]  # the registry's trouble, not ours
    assert not (lab.root / "kubectl.log").exists()


@pytest.mark.parametrize(("flux", "category", "phrase", "next_step"), [
    ("fail:HelmRelease", "flux", "the installation of the Alga web app (HelmRelease "
     "alga-system/alga-core) failed: UpgradeFailed",
     "the log of helm-controller says why: open the Logs page > helm-controller, "
     "or run "
     "`sudo alga-appliance logs helm-controller`"),
    ("fail:GitRepository", "release-source",
     "the release download (GitRepository flux-system/alga-appliance) failed: "
     "GitOperationFailed",
     "the log of source-controller says why: open the Logs page > "
     "source-controller, or run "
     "`sudo alga-appliance logs source-controller`"),
    ("", "flux", "Flux did not reconcile within 1 s: the release download (GitRepository "
     "flux-system/alga-appliance) has not handled the reconciliation request yet",
     "the update log says where it waited: open the Logs page > update, or run "
     "`sudo alga-appliance logs update`"),
])
def test_flux_failure_or_timeout_fails_the_update(lab, monkeypatch, flux, category, phrase,
                                                  next_step):
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", flux)
    monkeypatch.setattr(apply, "FLUX_TIMEOUT", 1.0)
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    entry = lab.apply()
    failure = entry["failure"]
    assert entry["result"] == "failed" and entry["step"] == "waiting for Flux"
    assert failure["category"] == category
    assert phrase in failure["suspected_cause"] and next_step in failure["next_step"]
    assert "applied again" in failure["next_step"]
    assert_next_step_is_ours(failure["next_step"])


def test_a_failing_background_release_never_fails_the_update(lab, monkeypatch):
    """temporal fails to upgrade: login works on the new release, so the update succeeds,
    says what is wrong in the background, and never waited for it."""
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "fail:HelmRelease/temporal")
    monkeypatch.setattr(apply, "HELM_TIMEOUT", 1.0)
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    lab.put(alga_core("c0ffee11"))  # Helm rolled alga-core out
    entry = lab.apply()
    assert entry["result"] == "succeeded", entry["failure"]
    assert entry["warnings"][0] == ("the installation of the workflow engine (HelmRelease "
                                    "alga-system/temporal): UpgradeFailed: Helm upgrade failed "
                                    "for release msp/temporal with chart temporal@0.1.0: "
                                    "context deadline exceeded")
    assert "do not block login" in entry["warnings"][-1]
    assert "  warning: the installation of the workflow engine (HelmRelease " in "\n".join(
        history.summary_lines(entry))


def test_a_failing_core_release_still_fails_the_update(lab, monkeypatch):
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "fail:HelmRelease/pgbouncer")
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    entry = lab.apply()
    assert entry["result"] == "failed" and "warnings" not in entry
    assert ("the installation of the database connection pool (HelmRelease "
            "alga-system/pgbouncer) failed: UpgradeFailed") in entry["failure"][
        "suspected_cause"]


def test_login_not_ready_on_the_new_release_fails_the_update(lab, monkeypatch):
    monkeypatch.setattr(apply, "LOGIN_TIMEOUT", 0.5)
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    entry = lab.apply()  # alga-core still runs 1.0's image
    assert entry["result"] == "failed" and entry["step"] == "waiting for login"
    assert entry["failure"]["category"] == "app-readiness"
    assert f"runs {CORE_IMAGE}:eaec6253, not c0ffee11" in entry["failure"]["suspected_cause"]


def test_a_failed_bootstrap_is_classified(lab):
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    lab.put(job(f"{ALGA_CORE}-bootstrap-r2", failed=True))
    entry = lab.apply()
    assert entry["failure"]["category"] == "app-bootstrap"
    assert entry["failure"]["suspected_cause"] == (
        f"the app's first-run setup failed (Job {ALGA_CORE}-bootstrap-r2)")
    assert entry["failure"]["next_step"] == (
        "its log says why: open the Logs page > bootstrap, or run "
        "`sudo alga-appliance logs bootstrap`; send the support bundle "
        "(sudo alga-appliance support-bundle)")
    assert_next_step_is_ours(entry["failure"]["next_step"])


def test_an_update_before_setup_finished_is_refused(lab):
    install = state.read(state.INSTALL_STATE, lab.root)
    state.write(state.INSTALL_STATE, {**install, "status": "failed"}, lab.root)
    entry = lab.apply()
    assert entry["result"] == "failed" and "setup has not finished (it is failed)" in (
        entry["failure"]["suspected_cause"])
    assert not (lab.root / "kubectl.log").exists()


def update_process(lab: UpdateLab, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "host", "--root", str(lab.root), "update",
                             "--channel", "stable", "--kubeconfig", lab.kubeconfig],
                            env={**lab.env(), **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for_step(lab: UpdateLab, process: subprocess.Popen, step: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        entries = history.entries(lab.root) if state.UPDATE_HISTORY.path(lab.root).exists() \
            else []
        if entries and entries[0]["step"] == step:
            return entries[0]
        assert process.poll() is None, "the update ended early"
        time.sleep(0.05)
    raise AssertionError(f"the update never reached {step}")


def test_a_concurrent_update_is_busy(lab):
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    first = update_process(lab)  # Flux never answers it
    try:
        running = wait_for_step(lab, first, "waiting for Flux")
        with pytest.raises(apply.UpdateBusy, match=rf"^an update to stable is running "
                           rf"\(waiting for Flux\) since {running['started_at']}, holding the "
                           rf"setup lock \(pid {first.pid}\)"):
            lab.apply()
        with pytest.raises(runlock.Busy):
            engine.run_phase("release", lab.root, lab.kubeconfig)
        assert not history.mark_interrupted(lab.root)  # its process is alive
        result = CliRunner().invoke(cli.main, ["update", "--channel", "stable",
                                               "--kubeconfig", lab.kubeconfig])
        assert result.exit_code == engine.EXIT_BUSY, result.output
        assert lab.check()["result"] == "update_available"  # a check needs no lock
        assert history.entries(lab.root)[1] == running
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("step", ["waiting for Flux", "waiting for login"])
def test_a_killed_update_is_marked_interrupted_and_a_rerun_converges(lab, step):
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    # Flux answers the second victim, but login never works on the new release.
    victim = update_process(lab, {"FAKE_FLUX_RECONCILE": "ready"}
                            if step == "waiting for login" else None)
    wait_for_step(lab, victim, step)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert history.entries(lab.root)[0]["result"] == "running"
    lab.put(alga_core("c0ffee11"))
    # The host already records 1.0.1, but the update had not finished: it runs again.
    assert lab.check()["result"] == "update_available"
    entry = lab.apply()
    assert entry["result"] == "succeeded", entry["failure"]
    interrupted = history.entries(lab.root)[2]
    assert [e["result"] for e in history.entries(lab.root)] == [
        "succeeded", "update_available", "interrupted"]
    assert interrupted["step"] == step and interrupted["finished_at"]
    assert interrupted["duration_s"] is not None
    assert lab.values("alga-core")["server"]["image"]["tag"] == "c0ffee11"
    assert not history.mark_interrupted(lab.root)


def test_nightly_needs_confirmation_and_so_does_going_back(lab):
    publish(lab, "nightly", "1.1-nightly.20261201", "main", algaCore="babe1234")
    requests_before, files = len(lab.github.requests), lab.host_files()
    with pytest.raises(check.ConfirmationRequired, match="nightly builds are for testing"):
        lab.apply("nightly")
    assert len(lab.github.requests) == requests_before  # refused before asking the network
    assert history.entries(lab.root) == [] and lab.host_files() == files
    result = CliRunner().invoke(cli.main, ["update", "--channel", "nightly"])
    assert result.exit_code == 2 and "--confirm" in result.output

    checked = lab.check("nightly")
    assert checked["changes"]["needs_confirmation"] and not checked["changes"]["backwards"]
    lab.put(alga_core("babe1234"))
    assert lab.apply("nightly", confirmed=True)["result"] == "succeeded"
    assert state.read(state.SETUP_INPUTS, lab.root)["channel"] == "nightly"
    assert lab.get("GitRepository", "flux-system", "alga-appliance")["spec"]["ref"] == {
        "branch": "main"}

    back = lab.check("stable")  # 1.0 sorts before 1.1-nightly.20261201
    assert back["changes"]["backwards"] and "older than the installed" in (
        back["changes"]["confirmation_reason"])
    entries = history.entries(lab.root)
    with pytest.raises(check.ConfirmationRequired, match="older than the installed"):
        lab.apply("stable")
    assert history.entries(lab.root) == entries  # nothing recorded
    spool.submit(spool.UPDATE, {"action": "apply", "channel": "stable",
                                           "confirmed": False, "who": "web",
                                           "requested_at": "2026-12-01T10:00:00Z"}, lab.root)
    refused = update_request.accept(lab.root, lab.kubeconfig)
    assert refused["result"] == "failed" and refused["who"] == "web"
    assert "not applied without confirmation" in refused["failure"]["suspected_cause"]
    assert state.read(state.SELECTED_RELEASE, lab.root)["channel"] == "nightly"
    lab.put(alga_core("eaec6253"))
    assert lab.apply("stable", confirmed=True)["result"] == "succeeded"


AT = "2026-12-01T10:00:00Z"
RID = "20261201T100000Z-0badf00d"


@pytest.mark.parametrize(("payload", "problem", "request_id"), [
    ("{not json", "(not JSON)", None),
    ("[1, 2]", "(request: not a JSON object)", None),
    ({"id": RID, "action": "apply", "channel": "stable", "who": "web", "requested_at": AT},
     "(confirmed: required)", RID),
    ({"id": RID, "action": "apply", "channel": "beta", "confirmed": False, "who": "web",
      "requested_at": AT}, "(channel: 'beta' is not one of ['stable', 'nightly'])", RID),
    ({"id": RID, "action": "apply", "channel": "stable", "confirmed": 1, "who": "web",
      "requested_at": AT}, "(confirmed: 1 is not of type 'boolean')", RID),
    ({"id": RID, "action": "reboot", "channel": "stable", "confirmed": True, "who": "web",
      "requested_at": AT}, "(action: 'reboot' is not one of ['check', 'apply'])", RID),
    ({"id": RID, "action": "apply", "channel": "stable", "confirmed": True, "who": "cli",
      "requested_at": AT}, "(who: 'web' was expected)", RID),
    ({"id": "../../x", "action": "check", "channel": "stable", "confirmed": False,
      "who": "web", "requested_at": AT}, "(id: '../../x' does not match", None),
])
def test_a_malformed_web_request_is_recorded_and_changes_nothing(lab, payload, problem,
                                                                 request_id):
    request_file = spool.spool_file(spool.UPDATE, lab.root)
    request_file.parent.mkdir(parents=True, exist_ok=True)
    request_file.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    before = lab.objects()
    entry = update_request.accept(lab.root, lab.kubeconfig)
    assert entry["result"] == "failed" and entry["who"] == "web"
    assert problem in entry["failure"]["suspected_cause"]
    assert entry["request_id"] == request_id  # the page follows it, when it has a usable one
    assert not request_file.exists() and lab.objects() == before
    assert update_request.accept(lab.root, lab.kubeconfig) is None


def test_web_requests_run_through_accept_update(lab):
    publish(lab, "stable", "1.0.1", "release/1.0.0", algaCore="c0ffee11")
    assert CliRunner().invoke(cli.main, ["accept-update"]).output == \
        "no update request is waiting\n"
    request = {"action": "check", "channel": "stable", "confirmed": False, "who": "web",
               "requested_at": "2026-12-01T10:00:00Z"}
    spool.submit(spool.UPDATE, request, lab.root)
    result = CliRunner().invoke(cli.main, ["accept-update", "--kubeconfig", lab.kubeconfig])
    assert result.exit_code == 0 and "check: update available" in result.output
    assert "algaCore eaec6253 → c0ffee11" in result.output
    lab.put(alga_core("c0ffee11"))
    request_id = spool.submit(spool.UPDATE, {**request, "action": "apply"}, lab.root)
    entry = update_request.accept(lab.root, lab.kubeconfig)
    assert (entry["action"], entry["who"], entry["result"]) == ("apply", "web", "succeeded")
    assert entry["request_id"] == request_id and history.entries(lab.root)[0] == entry


def test_history_keeps_the_newest_100_newest_first(lab):
    old = {"action": "check", "who": "cli", "channel": "stable", "finished_at": None,
           "result": "up_to_date", "step": None, "from": None, "to": None, "changes": None,
           "duration_s": 0.1, "failure": None}
    seeded = [{**old, "id": f"old-{n:03}", "started_at": f"2000-01-01T00:{n // 60:02}:"
               f"{n % 60:02}Z"} for n in range(99, 0, -1)]
    state.write(state.UPDATE_HISTORY, {"entries": seeded}, lab.root)
    first, second = lab.check(), lab.check()
    entries = history.entries(lab.root)
    assert len(entries) == history.HISTORY_LIMIT
    assert [e["id"] for e in entries[:3]] == [second["id"], first["id"], "old-099"]
    assert entries[-1]["id"] == "old-002"  # the oldest went
    assert [e["started_at"] for e in entries] == sorted((e["started_at"] for e in entries),
                                                        reverse=True)


def test_the_maintenance_record_after_install_and_update(lab):
    installed = state.read(state.MAINTENANCE, lab.root)
    assert installed["kernel"] == KERNEL
    assert installed["last_event"] == {"kind": "install", "at": installed["last_install"],
                                       "from_release": None, "to_release": "1.0"}
    publish(lab, "stable", "1.1", "release/1.1.0", algaCore="c0ffee11")
    lab.put(alga_core("c0ffee11"))
    assert lab.apply()["result"] == "succeeded"
    record = state.read(state.MAINTENANCE, lab.root)
    assert record["last_event"] == {"kind": "update", "at": record["last_update"],
                                    "from_release": "1.0", "to_release": "1.1"}
    assert record["app"] == {"channel": "stable", "release_version": "1.1"}
    assert record["last_install"] == installed["last_install"]
    assert (record["os"], record["k3s_version"], record["flux_version"]) == (
        installed["os"], installed["k3s_version"], installed["flux_version"])
    as_json = CliRunner().invoke(cli.main, ["maintenance", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output) == record
    text = CliRunner().invoke(cli.main, ["maintenance"]).output
    assert f"kernel {KERNEL}" in text and "last event: update 1.0 → 1.1" in text
    (lab.root / "proc/sys/kernel/osrelease").unlink()  # no record under the root: this kernel
    assert maintenance.record(lab.root, record, state.read(
        state.SELECTED_RELEASE, lab.root), "update", None, None)["kernel"] == os.uname().release


@pytest.mark.parametrize("digest", ["nope", "sha256:" + "A" * 64, "sha256:abc"])
def test_the_cli_refuses_a_malformed_digest_before_asking_anything(lab, digest):
    asked = len(lab.github.requests)
    result = CliRunner().invoke(cli.main, ["update", "--channel", "stable", "--digest", digest])
    assert result.exit_code == 2 and "is not a digest: give sha256: and 64" in result.output
    assert history.entries(lab.root) == [] and len(lab.github.requests) == asked


def test_the_cli_prints_the_plan_and_result(lab):
    publish(lab, "stable", "1.1", "release/1.1.0", algaCore="c0ffee11")
    result = CliRunner().invoke(cli.main, ["update", "--channel", "stable", "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "stable 1.0 → stable 1.1 (app 1.1) from https://github.com/Nine-Minds/alga-psa (main, "
        "branch release/1.1.0)",
        "  branch release/1.0.0 → release/1.1.0", "  algaCore eaec6253 → c0ffee11",
        f"check: update available in {history.entries(lab.root)[0]['duration_s']:g} s"]
    lab.github.routes[CHANNEL_PATH] = Route(status=404)
    failed = CliRunner().invoke(cli.main, ["update", "--channel", "stable"])
    assert failed.exit_code == 1 and "[release-source]" in failed.output
    assert "next step: check the channel" in failed.output


def test_version_order():
    ordered = ["0.9", "1.0", "1.0.1", "1.1-nightly.2", "1.1-nightly.10", "1.1-rc.1", "1.1",
               "1.10"]
    assert sorted(reversed(ordered), key=version_key) == ordered
