"""A fresh install through real Flux (support/flux_site.py): the real flux and release phases
against a real control plane, Flux's real source-, kustomize- and helm-controller pulling the
OCI release and the charts from the tests' real registry and installing them with Helm, the
stand-in kubelet running the pods, and the status collector reading all of it. Run with -s to
see the Flux conditions the install passes through."""

from host.cluster import alga

# While healthy work is under way Flux says these, and they are not failures.
IN_PROGRESS = {"DependencyNotReady", "Progressing", "ProgressingWithRetry"}
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
