"""App updates from the OCI release source: an appliance the release phase installed with
release 1.0.3 from a real registry (GHCR's token challenge and blob redirect,
support.registry), on kubectl's interface (tests/fakes/kubectl playing Flux's controllers).
Updates compare release artifacts by digest, apply exactly the one the admin reviewed, and
switch between the OCI and git sources only when confirmed."""

import json
import os
import re

import pytest
import requests
from click.testing import CliRunner
from support.base import serve_wsgi
from support.openapi_check import assert_documented
from support.releases import (
    CONFIG_REPOSITORY,
    OCI_CHARTS,
    OCI_IMAGES,
    RELEASE_REPOSITORY,
    publish_oci,
)
from support.updates import OciUpdateLab, alga_core, publish

from host import cli
from host.cluster import alga
from host.cluster.kube import Kube
from host.core import pins, state, token
from host.update import apply, check, history
from host.web import make_app

RECONCILE = alga.RECONCILE_ANNOTATION
SOURCE = ("flux-system", alga.SOURCE_NAME)
NO_CHANGES = {"source": None, "images": [], "charts": [], "values_profile": None,
              "config_digest": None, "branch": None, "backwards": False,
              "needs_confirmation": False, "confirmation_reason": None}


@pytest.fixture
def lab(oci_update_lab):
    """Release 1.0.3 installed from the OCI source (support.updates)."""
    return oci_update_lab


def config_digest(lab: OciUpdateLab) -> str:
    return lab.get("OCIRepository", *SOURCE)["spec"]["ref"]["digest"]


def location(lab: OciUpdateLab, digest: str) -> str:
    return f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}@{digest}"


def test_an_update_to_the_next_release_on_stable(lab):
    installed_config = config_digest(lab)
    digest, manifest = lab.publish("1.0.4", replicas=2, charts={"sebastian": "0.0.2"},
                                   algaCore="c0ffee11")
    before, files = lab.objects(), lab.host_files()
    checked = lab.check()
    assert checked["result"] == "update_available"
    assert checked["changes"] == {
        **NO_CHANGES,
        "images": [{"name": "algaCore", "from": OCI_IMAGES["algaCore"], "to": "c0ffee11"}],
        "charts": [{"name": "sebastian", "from": OCI_CHARTS["sebastian"], "to": "0.0.2"}],
        "config_digest": {"from": installed_config, "to": manifest["config"]["digest"]}}
    assert checked["from"] == {"source": "oci", "channel": "stable", "release_version": "1.0.3",
                               "app_version": "1.0.3", "manifest_digest": lab.installed,
                               "location": location(lab, lab.installed)}
    assert checked["to"] == {"source": "oci", "channel": "stable", "release_version": "1.0.4",
                             "app_version": "1.0.4", "manifest_digest": digest,
                             "location": location(lab, digest)}
    assert lab.objects() == before and lab.host_files() == files  # a check changes nothing
    assert not lab.log.exists()
    lab.put(alga_core("c0ffee11"))  # what Helm will have rolled out

    entry = lab.apply(digest=checked["to"]["manifest_digest"])
    assert entry["result"] == "succeeded", entry["failure"]
    for name in alga.HELM_RELEASES:  # from the new manifest's profileValues
        assert lab.values(name)["replicas"] == 2
    core = lab.values("alga-core")
    assert core["server"]["image"] == core["setup"]["image"] == {"tag": "c0ffee11"}
    assert core["bootstrap"] == {"mode": "recover"}
    assert lab.values("email-service")["image"]["tag"] == OCI_IMAGES["emailService"]
    repository = lab.get("OCIRepository", *SOURCE)
    assert repository["spec"] == {"url": f"oci://{lab.registry.host}/{CONFIG_REPOSITORY}",
                                  "ref": {"digest": manifest["config"]["digest"]},
                                  "interval": "1m"}
    requested = repository["metadata"]["annotations"][RECONCILE]
    assert lab.get("Kustomization", *SOURCE)["metadata"]["annotations"][RECONCILE] == requested
    reported = Kube(lab.kubeconfig).get("ocirepository", alga.SOURCE_NAME, "flux-system")
    assert reported["status"]["artifact"]["revision"] == manifest["config"]["digest"]
    assert reported["status"]["lastHandledReconcileAt"] == requested
    assert not [key for key in lab.objects() if key.startswith("GitRepository/")]
    selection = lab.get("ConfigMap", "alga-system", "appliance-release-selection")["data"]
    assert (selection["releaseVersion"], selection["manifestDigest"]) == ("1.0.4", digest)

    selected = state.read(state.SELECTED_RELEASE, lab.root)
    assert (selected["release_version"], selected["manifest_digest"], selected["config"]) == (
        "1.0.4", digest, manifest["config"])
    assert selected["charts"]["sebastian"] == "0.0.2"
    assert state.read(state.MAINTENANCE, lab.root)["last_event"]["to_release"] == "1.0.4"
    assert [(e["action"], e["result"], e["from"]["source"], e["to"]["release_version"],
             e["to"]["manifest_digest"]) for e in history.entries(lab.root)] == [
        ("apply", "succeeded", "oci", "1.0.4", digest),
        ("check", "update_available", "oci", "1.0.4", digest)]
    assert lab.check()["result"] == "up_to_date"


def test_no_change_does_not_ask_the_cluster(lab):
    before, files = lab.objects(), lab.host_files()
    checked = lab.check()
    assert checked["result"] == "up_to_date" and checked["changes"] == NO_CHANGES
    assert checked["to"]["manifest_digest"] == lab.installed
    entry = lab.apply(digest=lab.installed)
    assert entry["result"] == "up_to_date" and entry["failure"] is None
    assert lab.objects() == before and lab.host_files() == files
    assert not lab.log.exists()


def test_a_plan_whose_tag_moved_is_refused_and_a_new_apply_takes_the_new_release(lab):
    reviewed, _ = lab.publish("1.0.4", algaCore="c0ffee11")
    assert lab.check()["to"]["manifest_digest"] == reviewed
    moved, manifest = lab.publish("1.0.5", algaCore="d00d2222")  # stable moves on
    before, files = lab.objects(), lab.host_files()

    refused = lab.apply(digest=reviewed)
    assert refused["result"] == "failed" and refused["step"] == "preflight"
    failure = refused["failure"]
    assert failure["category"] == history.REFUSED_CATEGORY
    assert (f"the stable channel moved since the check: the plan was for {reviewed}, the "
            f"channel now names {moved} (release 1.0.5); nothing was changed") == (
        failure["suspected_cause"])
    assert "check again, review the new plan" in failure["next_step"]
    assert lab.objects() == before and lab.host_files() == files
    assert not lab.log.exists()

    lab.put(alga_core("d00d2222"))
    entry = lab.apply()
    assert entry["result"] == "succeeded", entry["failure"]
    assert entry["to"]["manifest_digest"] == moved
    assert config_digest(lab) == manifest["config"]["digest"]


def test_a_digest_pin_keeps_its_release_when_stable_moves(lab):
    pinned, manifest = lab.publish("1.0.4", algaCore="c0ffee11")
    lab.publish("1.0.5", algaCore="d00d2222")  # stable is past the pin
    inputs = state.read(state.SETUP_INPUTS, lab.root)
    state.write(state.SETUP_INPUTS, {**inputs, "overrides": {
        "release_source": lab.source(f"@{pinned}")}}, lab.root)
    checked = lab.check()
    assert (checked["to"]["release_version"], checked["to"]["manifest_digest"]) == (
        "1.0.4", pinned)
    lab.put(alga_core("c0ffee11"))
    assert lab.apply(digest=pinned)["result"] == "succeeded"
    assert config_digest(lab) == manifest["config"]["digest"]
    selected = state.read(state.SELECTED_RELEASE, lab.root)
    assert (selected["release_version"], selected["pin"]) == ("1.0.4", pinned)

    lab.publish("1.0.6", algaCore="e11e3333")
    again = lab.check()
    assert again["result"] == "up_to_date" and again["to"]["manifest_digest"] == pinned


def switch_to_oci(lab, registry) -> None:
    """Support names the OCI registry in endpoints.json (a mirror override)."""
    endpoints = state.read(state.ENDPOINTS, lab.root)
    state.write(state.ENDPOINTS, {**endpoints, "release_source":
                                  f"oci://{registry.host}/{RELEASE_REPOSITORY}"}, lab.root)


def test_switching_from_git_to_oci_needs_confirmation_and_replaces_the_source(
        update_lab, registry):
    digest, manifest = publish_oci(registry)
    switch_to_oci(update_lab, registry)
    checked = update_lab.check()
    changes = checked["changes"]
    assert changes["source"] == {"from": pins.ALGA_REPO_URL,
                                 "to": f"oci://{registry.host}/{RELEASE_REPOSITORY}"}
    assert changes["branch"] == {"from": "release/1.0.0", "to": None}
    assert changes["needs_confirmation"] and "the release source changes from git" in (
        changes["confirmation_reason"])
    entries, files = history.entries(update_lab.root), update_lab.host_files()
    with pytest.raises(check.ConfirmationRequired, match="release source changes"):
        update_lab.apply()
    assert history.entries(update_lab.root) == entries and update_lab.host_files() == files
    assert not update_lab.log.exists()

    update_lab.put(alga_core(OCI_IMAGES["algaCore"]))
    entry = update_lab.apply(confirmed=True, digest=digest)
    assert entry["result"] == "succeeded", entry["failure"]
    assert entry["step"] == "removing the previous source"
    assert update_lab.get("OCIRepository", *SOURCE)["spec"]["ref"] == {
        "digest": manifest["config"]["digest"]}
    kustomization = update_lab.get("Kustomization", *SOURCE)["spec"]
    assert (kustomization["sourceRef"], kustomization["path"]) == (
        {"kind": "OCIRepository", "name": alga.SOURCE_NAME}, "./base")
    assert "GitRepository/flux-system/alga-appliance" not in update_lab.objects()
    assert update_lab.kubectl_calls()[-1] == [
        "delete", "gitrepository", alga.SOURCE_NAME, "--namespace", "flux-system",
        "--ignore-not-found"]  # only once the new release works
    assert state.read(state.SELECTED_RELEASE, update_lab.root)["source"] == "oci"


def test_switching_from_oci_back_to_git(lab):
    publish(lab, "stable", "1.1", "release/1.1.0", algaCore="c0ffee11")
    inputs = state.read(state.SETUP_INPUTS, lab.root)
    state.write(state.SETUP_INPUTS, {**inputs, "overrides": {
        "release_source": pins.ALGA_REPO_URL}}, lab.root)  # support's setup override
    checked = lab.check()
    assert checked["changes"]["source"] == {
        "from": f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}", "to": pins.ALGA_REPO_URL}
    assert checked["changes"]["config_digest"]["to"] is None
    with pytest.raises(check.ConfirmationRequired, match="from oci"):
        lab.apply()
    lab.put(alga_core("c0ffee11"))
    entry = lab.apply(confirmed=True)
    assert entry["result"] == "succeeded", entry["failure"]
    assert lab.get("GitRepository", *SOURCE)["spec"]["ref"] == {"branch": "release/1.1.0"}
    kustomization = lab.get("Kustomization", *SOURCE)["spec"]
    assert (kustomization["sourceRef"], kustomization["path"]) == (
        {"kind": "GitRepository", "name": alga.SOURCE_NAME}, "./ee/appliance/flux/base")
    assert "OCIRepository/flux-system/alga-appliance" not in lab.objects()
    selected = state.read(state.SELECTED_RELEASE, lab.root)
    assert (selected["source"], selected["repo_branch"]) == ("git", "release/1.1.0")
    assert "manifest_digest" not in selected


def test_an_oci_source_flux_cannot_pull_fails_as_the_release_source(lab, monkeypatch):
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "fail:OCIRepository")
    monkeypatch.setattr(apply, "FLUX_TIMEOUT", 2.0)
    _, manifest = lab.publish("1.0.4", algaCore="c0ffee11")
    entry = lab.apply()
    failure = entry["failure"]
    assert entry["result"] == "failed" and entry["step"] == "waiting for Flux"
    assert failure["category"] == "release-source"
    assert failure["suspected_cause"].startswith(
        "the release download (OCIRepository flux-system/alga-appliance) failed: "
        "OCIArtifactPullFailed: ")
    assert f"{manifest['config']['digest']}: MANIFEST_UNKNOWN" in failure["suspected_cause"]
    assert "`sudo alga-appliance logs source-controller`" in failure["next_step"]
    assert "kubectl" not in failure["next_step"]


def test_the_cli_shows_the_digest_and_refuses_a_moved_channel(lab):
    reviewed, manifest = lab.publish("1.0.4", algaCore="c0ffee11")
    result = CliRunner().invoke(cli.main, ["update", "--channel", "stable", "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [
        f"stable 1.0.3 → stable 1.0.4 (app 1.0.4) from {location(lab, reviewed)}",
        f"  config digest {config_digest(lab)} → {manifest['config']['digest']}",
        f"  algaCore {OCI_IMAGES['algaCore']} → c0ffee11"]
    moved, _ = lab.publish("1.0.5")
    refused = CliRunner().invoke(cli.main, ["update", "--channel", "stable", "--digest",
                                            reviewed, "--kubeconfig", lab.kubeconfig])
    assert refused.exit_code == 1
    assert f"the stable channel moved since the check: the plan was for {reviewed}" in (
        refused.output)
    assert f"the channel now names {moved}" in refused.output
    assert re.search(r"^apply: failed", refused.output, re.MULTILINE)
    assert state.read(state.SELECTED_RELEASE, lab.root)["release_version"] == "1.0.3"



def old_shape(lab) -> dict:
    """The state files as the appliance wrote them before the OCI source: selections and
    summaries without `source`, the category github-release-source, overrides.repo_url; the
    install state of a setup re-run that failed on the release source after the install."""
    selected = state.read(state.SELECTED_RELEASE, lab.root)
    release = {key: selected[key] for key in ("channel", "release_version", "app_version",
                                              "repo_branch")}
    failure = {"category": "github-release-source", "suspected_cause": "release.channel: 404",
               "next_step": "check the channel"}
    install = state.read(state.INSTALL_STATE, lab.root)
    install["phases"]["release"].update(state="failed", failure={
        **failure, "last_action": "resolving the stable channel", "log_excerpt": "",
        "support_command": "alga-appliance support-bundle"})
    return {
        state.SELECTED_RELEASE: {k: v for k, v in selected.items() if k != "source"},
        state.SETUP_INPUTS: {**state.read(state.SETUP_INPUTS, lab.root),
                             "overrides": {"repo_url": pins.ALGA_REPO_URL}},
        state.INSTALL_STATE: {**install, "status": "failed", "current_phase": "release"},
        state.UPDATE_HISTORY: {"entries": [{
            "id": "20261127T100000Z-0ldf0rm0", "action": "check", "who": "cli",
            "channel": "stable", "started_at": "2026-11-27T10:00:00Z",
            "finished_at": "2026-11-27T10:00:01Z", "result": "failed", "step": None,
            "from": release, "to": release, "changes": None, "duration_s": 1.0,
            "failure": failure}]}}


def test_state_files_in_the_old_shape_are_read_in_the_new(update_lab):
    for state_file, document in old_shape(update_lab).items():
        state_file.path(update_lab.root).write_text(json.dumps(document))
    assert state.read(state.SELECTED_RELEASE, update_lab.root)["source"] == "git"
    assert state.read(state.SETUP_INPUTS, update_lab.root)["overrides"] == {
        "release_source": pins.ALGA_REPO_URL}
    assert state.read(state.INSTALL_STATE, update_lab.root)["phases"]["release"]["failure"][
        "category"] == "release-source"
    [old] = history.entries(update_lab.root)
    assert (old["failure"]["category"], old["from"]["source"], old["to"]["source"]) == (
        "release-source", "git", "git")

    checked = update_lab.check()  # the same git source, named by the migrated override
    assert checked["result"] == "up_to_date", checked["failure"]
    secret = token.ensure_token(update_lab.root, owner=os.environ.get("USER", "root"))
    with serve_wsgi(make_app(update_lab.root, node_ip=lambda: "10.0.0.5")) as url:
        served = requests.get(f"{url}/api/updates", timeout=5,
                              headers={"Authorization": f"Bearer {secret}"})
    assert served.status_code == 200, served.text
    assert_documented(served, "GET", "/api/updates")
    body = served.json()
    assert body["current"]["source"] == "git"
    assert [e["id"] for e in body["history"]] == [checked["id"], old["id"]]
    assert body["history"][1]["failure"]["category"] == "release-source"
    assert body["busy"] == "updates are possible once setup has completed"
