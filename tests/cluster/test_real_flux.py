"""A fresh install through real Flux (support/flux_site.py): the real flux and release phases
against a real control plane, Flux's real source-, kustomize- and helm-controller pulling the
OCI release and the charts from the tests' real registry and installing them with Helm, the
stand-in kubelet running the pods, and the status collector reading all of it. Each test's
conditions.log (beside its root, and printed: run with -s) shows the rollup and the Flux
conditions it passed through, with the seconds since the Flux source was applied."""

import base64
import json
import shutil

from support.alga_charts import DB_PASSWORD
from support.bundles import forms, members
from support.releases import CONFIG_REPOSITORY

from host.cluster import alga
from host.cluster.kube import Kube
from host.core import state
from host.support import bundle

# While healthy work is under way Flux says these, and they are not failures.
IN_PROGRESS = {"DependencyNotReady", "Progressing", "ProgressingWithRetry", "SourceNotReady"}
# What Flux says of each of its objects once it is done with a fresh install.
SETTLED = {
    **{f"Kustomization/{name}": "ReconciliationSucceeded"
       for name in ("alga-appliance", "alga-platform", "alga-core", "alga-background")},
    **{f"HelmRelease/{name}": "InstallSucceeded" for name in alga.HELM_RELEASES},
    "OCIRepository/alga-appliance": "Succeeded",
}


def flux_objects(snapshot: dict) -> dict[str, dict]:
    return {f"{item['kind']}/{item['name']}": item for item in snapshot["flux"]}


def test_a_fresh_install_reaches_login_readiness_through_the_stable_channel(flux_site):
    flux_site.publish()
    flux_site.install()
    ready = flux_site.wait_for("ready_to_log_in", "fully_healthy")
    assert ready["tiers"]["login"]["ready"], ready["tiers"]
    healthy = flux_site.wait_for("fully_healthy")
    assert all(tier["ready"] for tier in healthy["tiers"].values()), healthy["tiers"]
    # The workloads can be up before Flux has finished with them: its objects say so a
    # moment later.
    settled = flux_site.wait_until(lambda snapshot: all(
        (flux_objects(snapshot)[name]["ready"], flux_objects(snapshot)[name]["reason"])
        == (True, reason) for name, reason in SETTLED.items()), "Flux done")
    assert settled["rollup"]["state"] == "fully_healthy"
    states = flux_site.states_passed()
    assert states[0] == "installing" and "failed_action_required" not in states, states
    # Real Flux went through its in-progress reasons on the way, and the collector took them
    # for what they are.
    assert flux_site.reasons_seen() & IN_PROGRESS, flux_site.seen


def settled(flux_site, expected: dict[str, str]) -> dict:
    """Collect until Flux says `expected` (object -> Ready reason, Ready=True) of each."""
    return flux_site.wait_until(lambda snapshot: all(
        (flux_objects(snapshot).get(name, {}).get("ready"),
         flux_objects(snapshot).get(name, {}).get("reason")) == (True, reason)
        for name, reason in expected.items()), f"Flux reporting {expected}")


def test_an_update_moves_the_release_and_flux_upgrades_it(flux_site):
    flux_site.publish()
    flux_site.install()
    settled(flux_site, SETTLED)
    new_digest, manifest = flux_site.publish("1.0.4", charts={"sebastian": "0.0.2"},
                                             algaCore="beefcafe")

    done = flux_site.cli("update", "--channel", "stable")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "stable 1.0.3 → stable 1.0.4" in done.stdout, done.stdout
    api = flux_site.api
    source = api.get("ocirepository", alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    assert source["spec"]["ref"]["digest"] == manifest["config"]["digest"]
    # source-controller's artifact is its own tarball; its revision names what it pulled.
    assert source["status"]["artifact"]["revision"].endswith(manifest["config"]["digest"])
    core = api.get("helmrelease", "alga-core", alga.ALGA_SYSTEM)
    ready = next(c for c in core["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "UpgradeSucceeded"), ready
    assert core["status"]["history"][0]["chartVersion"] == "0.0.2"
    deployment = api.get("deployment", alga.ALGA_CORE, alga.APP_NAMESPACE)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        ":beefcafe")
    # The bootstrap ran again for the upgrade: Helm's second revision, its own Job.
    job = api.get("job", f"{alga.BOOTSTRAP_JOB_PREFIX}2", alga.APP_NAMESPACE)
    assert job["status"].get("succeeded") == 1, job["status"]
    after = flux_site.wait_for("fully_healthy")
    assert after["release"]["release_version"] == "1.0.4", after["release"]
    assert state.read(state.SELECTED_RELEASE, flux_site.root)["manifest_digest"] == new_digest
    assert "failed_action_required" not in flux_site.states_passed()


def blocker(snapshot: dict, component: str) -> dict:
    return next(b for b in snapshot["blockers"] if b["component"] == component)


def test_a_core_chart_that_does_not_install_fails_with_flux_s_own_reason(flux_site):
    flux_site.publish(broken=frozenset({"sebastian"}))
    flux_site.install()
    failed = flux_site.wait_for("failed_action_required")
    found = blocker(failed, "HelmRelease/alga-core")
    assert found["reason"].startswith("the installation of the Alga web app failed: "), found
    assert found["detail"]["reason"] == "InstallFailed", found
    assert found["blocks_login"] and found["severity"] == "critical"
    assert "`sudo alga-appliance logs helm-controller`" in found["next_action"]
    assert "Alga is not available" in failed["rollup"]["message"]
    # Flux waited on it, as it says, and that was never taken for the failure itself.
    early = next(o for o in flux_site.seen if o.rollup == "failed_action_required")
    assert early.flux["HelmRelease/alga-core"] == (False, "InstallFailed"), early


def test_a_background_release_that_fails_never_blocks_login(flux_site):
    flux_site.publish(broken=frozenset({"temporal"}))
    flux_site.install()
    snapshot = flux_site.wait_until(
        lambda s: flux_objects(s).get("HelmRelease/temporal", {}).get("reason")
        == "InstallFailed" and s["tiers"]["login"]["ready"], "temporal InstallFailed")
    assert snapshot["rollup"]["state"] == "ready_with_background_issues", snapshot["rollup"]
    found = blocker(snapshot, "HelmRelease/temporal")
    assert found["layer"] == "background" and not found["blocks_login"], found
    assert found["severity"] == "warning", found  # as the rollup says: login works
    assert "failed_action_required" not in flux_site.states_passed()


def test_a_config_bundle_that_does_not_build_names_the_kustomization(flux_site):
    flux_site.publish(unbuildable=True)
    flux_site.install()
    failed = flux_site.wait_for("failed_action_required")
    found = blocker(failed, "Kustomization/alga-core")
    assert found["detail"]["reason"] == "BuildFailed", found
    assert "missing.yaml" in found["detail"]["message"], found
    assert found["reason"].startswith("the app's configuration failed: "), found
    assert "`sudo alga-appliance logs kustomize-controller`" in found["next_action"]


def test_the_support_bundle_collects_from_this_cluster(flux_site, tmp_path):
    """Objects, events and the controllers' own logs (through `kubectl logs`, the API server
    and the kubelet's log endpoint), and none of the cluster's secrets in any form."""
    flux_site.kubelet.crash_looping.add("temporal-worker")
    flux_site.publish()
    flux_site.install()
    snapshot = flux_site.wait_until(lambda s: s["tiers"]["login"]["ready"] and any(
        b["component"] == "temporal-worker" for b in s["blockers"]), "temporal-worker failing")
    assert snapshot["rollup"]["state"] == "ready_with_background_issues"
    api = flux_site.api
    auth_key = base64.b64decode(api.get("secret", alga.AUTH_SECRET, alga.APP_NAMESPACE)[
        "data"][alga.AUTH_KEY]).decode()
    # Helm's own release records (in the HelmReleases' namespace), which embed the values.
    helm_secrets = api.kubectl("get", "secrets", "--namespace", alga.ALGA_SYSTEM, "-o", "name",
                               "--selector", "owner=helm").stdout.split()
    assert len(helm_secrets) == len(alga.HELM_RELEASES), helm_secrets

    archive = bundle.create(flux_site.root, tmp_path / "bundle.tar.gz",
                            kube=Kube(flux_site.kubeconfig))

    found = members(archive)
    for controller in flux_site.flux.controllers:
        log = found[f"flux/logs/{controller.name}.log"].decode()
        first = controller.log.read_text().splitlines()[0]
        assert first in log, (controller.name, log[:500])
    releases = json.loads(found["flux/helmreleases.json"])
    assert {item["metadata"]["name"] for item in releases["items"]} == set(alga.HELM_RELEASES)
    pods = json.loads(found["kubernetes/pods.json"])
    assert any(p["metadata"]["name"].startswith("temporal-worker") for p in pods["items"])
    assert any(name.startswith("kubernetes/pod-logs/msp/temporal-worker") for name in found)
    leaks = [(name, secret) for secret in (auth_key, DB_PASSWORD) for form in forms(secret)
             for name, data in found.items() if form in data]
    assert not leaks, leaks


def test_a_withdrawn_config_bundle_is_named_while_login_keeps_working(flux_site):
    """Alga withdraws the artifact the installed release pins. Real source-controller does
    not look again while it holds the digest ("artifact up-to-date"), so nothing shows until
    its storage is gone, as after a reboot (it is an emptyDir): then it cannot pull it, says
    so, and the app keeps answering."""
    _, manifest = flux_site.publish()
    flux_site.install()
    settled(flux_site, SETTLED)
    flux_site.registry.delete(CONFIG_REPOSITORY, manifest["config"]["digest"])
    source_controller = flux_site.flux.controllers[0]
    source_controller.stop()
    shutil.rmtree(source_controller.storage)
    source_controller.storage.mkdir()
    source_controller.start()
    flux_site.api.kubectl("annotate", "--overwrite", "ocirepository", alga.SOURCE_NAME,
                          "--namespace", alga.FLUX_NAMESPACE,
                          f"{alga.RECONCILE_ANNOTATION}=withdrawn")
    # First it says Ready=False Progressing ("building artifact: disappeared from storage"):
    # work in progress, no blocker. Then it tries to pull, and fails.
    snapshot = flux_site.wait_until(lambda s: (source := flux_objects(s)[
        f"OCIRepository/{alga.SOURCE_NAME}"])["ready"] is False and
        source["reason"] not in IN_PROGRESS, "the source failing")
    found = blocker(snapshot, f"OCIRepository/{alga.SOURCE_NAME}")
    assert found["detail"]["reason"] == "OCIArtifactPullFailed", found
    assert "MANIFEST_UNKNOWN" in found["detail"]["message"], found
    assert found["reason"].startswith("the release download failed: "), found
    assert "withdrawn" in found["next_action"] and "update" in found["next_action"], found
    assert snapshot["tiers"]["login"]["ready"], snapshot["tiers"]
    assert snapshot["rollup"]["state"] == "ready_with_background_issues", snapshot["rollup"]
