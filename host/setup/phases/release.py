"""Point Flux at the release the channel names: the app's namespaces, its auth key (once),
the values ConfigMaps, the release selection, the Flux source and the root Kustomization."""

import secrets

from host.cluster import alga, objects, readiness
from host.cluster.kube import Kube, KubeError
from host.core import maintenance, pins, state, words
from host.core.failures import OperationFailed
from host.net import endpoints, https
from host.releases import source

READS = (state.SETUP_INPUTS, state.ENDPOINTS, state.RELEASE_SOURCE)
FETCH_TIMEOUT = 30.0
FLUX_DOWN = "check that Flux's controllers run (Flux and Helm on the status page says)"


def execute(ctx) -> None:
    inputs = ctx.inputs()
    site = endpoints.load(ctx.root)
    resolution = source.resolution(inputs, site, ctx.root, https.session(inputs, site),
                                   inputs["channel"])
    try:
        ctx.action(f"resolving the {inputs['channel']} channel from {resolution.describe()}")
        for check_id, step in resolution.steps:
            ctx.log(f"{check_id}: {step(FETCH_TIMEOUT)}")
        if resolution.unknown_fields():
            ctx.log(f"the release has fields this version ignores: "
                    f"{', '.join(resolution.unknown_fields())}")
        selection = resolution.selection(state.timestamp())
        ctx.action(f"reading the {selection['values_profile']} values of release "
                   f"{selection['release_version']}")
        profile_values = resolution.profile_values(FETCH_TIMEOUT)
    except https.FetchError as exc:
        raise OperationFailed(exc.category, str(exc), exc.next_step or (
            "check the release source override; if the release is broken upstream, choose "
            "another channel")) from exc
    previous = state.read(state.MAINTENANCE, ctx.root)
    # Recover once an install has completed (recorded with that success, so a run killed
    # after applying but before its success is recorded converges on "fresh" again).
    mode = "recover" if ctx.install.get("completed_at") else "fresh"
    _apply(ctx, inputs, profile_values, selection, mode)
    state.write(state.SELECTED_RELEASE, selection, ctx.root)
    done = {name for name, record in ctx.install["phases"].items()
            if record["state"] in ("succeeded", "skipped")}
    # None when this cluster's k3s or Flux were not installed by these phases.
    state.write(state.MAINTENANCE, maintenance.record(
        ctx.root, previous, selection, "install",
        k3s_version=_running_k3s(ctx) if "k3s" in done else None,
        flux_version=pins.FLUX_VERSION if "flux" in done else None), ctx.root)


def _running_k3s(ctx) -> str | None:
    """The version the k3s node reports, not the pin: what runs is what support needs."""
    try:
        nodes = Kube(ctx.kubeconfig).list("nodes")
    except KubeError:
        return None
    return readiness.k3s_version(readiness.ClusterView(nodes=nodes))


def _apply(ctx, inputs: dict, profile_values: dict, selection: dict, mode: str) -> None:
    kube = Kube(ctx.kubeconfig)
    requested_at = objects.reconcile_requested_at()
    try:
        ctx.action("checking for the app's auth key")
        applied = [objects.namespace(n) for n in (alga.ALGA_SYSTEM, alga.APP_NAMESPACE)]
        if kube.get("secret", alga.AUTH_SECRET, alga.APP_NAMESPACE) is None:
            applied.append(objects.auth_secret(secrets.token_urlsafe(48)))
        applied += objects.values_configmaps(inputs, selection, profile_values, mode)
        flux_source = objects.flux_source(selection, requested_at)
        applied += [objects.release_selection(selection), flux_source,
                    objects.kustomization(flux_source, requested_at)]
        ctx.action(f"applying release {selection['release_version']} ({mode}) to the cluster "
                   f"from {source.describe(selection)}")
        kube.apply(applied)
    except KubeError as exc:
        raise OperationFailed("flux", f"the cluster refused the release objects: {exc}",
                              f"{words.flux_logs(FLUX_DOWN)}; then retry") from exc
