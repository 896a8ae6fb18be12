"""Point Flux at the release the channel names: the app's namespaces, its auth key (once),
the values ConfigMaps, the release selection, the Flux source and the root Kustomization."""

import secrets

from host.cluster import alga, objects
from host.cluster.kube import Kube, KubeError
from host.core import maintenance, pins, state
from host.core.failures import OperationFailed
from host.net import endpoints, https
from host.releases import git_source

READS = (state.SETUP_INPUTS, state.ENDPOINTS)
FETCH_TIMEOUT = 30.0


def execute(ctx) -> None:
    inputs = ctx.inputs()
    site = endpoints.load(ctx.root)
    session = https.session(inputs, site)
    source = git_source.Source.for_inputs(inputs, site)
    try:
        ctx.action(f"resolving the {inputs['channel']} channel and its manifest from "
                   f"{source.ref}")
        channel_file = git_source.fetch_channel(session, source, inputs["channel"],
                                                FETCH_TIMEOUT)
        if git_source.unknown_fields(channel_file):
            ctx.log(f"channel file has fields this version ignores: "
                    f"{', '.join(git_source.unknown_fields(channel_file))}")
        manifest = git_source.fetch_manifest(session, source, channel_file["releaseVersion"],
                                             FETCH_TIMEOUT)
        ctx.action(f"reading the {manifest['app']['valuesProfile']} values profile from "
                   f"{channel_file['repoBranch']}")
        profile_values = git_source.fetch_profile_values(
            session, source, channel_file["repoBranch"], manifest["app"]["valuesProfile"],
            FETCH_TIMEOUT)
    except https.FetchError as exc:
        raise OperationFailed(exc.category, str(exc), "check the channel and repository "
                              "override; if the release is broken upstream, choose another "
                              "channel") from exc
    selection = git_source.selection(inputs["channel"], source, channel_file, manifest,
                                     state.timestamp())
    previous = state.read(state.MAINTENANCE, ctx.root)
    # Recover once an install has completed (recorded with that success, so a run killed
    # after applying but before its success is recorded converges on "fresh" again).
    mode = "recover" if ctx.install.get("completed_at") else "fresh"
    _apply(ctx, inputs, manifest, profile_values, selection, mode)
    state.write(state.SELECTED_RELEASE, selection, ctx.root)
    done = {name for name, record in ctx.install["phases"].items()
            if record["state"] in ("succeeded", "skipped")}
    # None when this cluster's k3s or Flux were not installed by these phases.
    state.write(state.MAINTENANCE, maintenance.record(
        ctx.root, previous, selection, "install",
        k3s_version=pins.K3S_VERSION if "k3s" in done else None,
        flux_version=pins.FLUX_VERSION if "flux" in done else None), ctx.root)


def _apply(ctx, inputs: dict, manifest: dict, profile_values: dict, selection: dict,
           mode: str) -> None:
    kube = Kube(ctx.kubeconfig)
    requested_at = state.timestamp()
    try:
        ctx.action("checking for the app's auth key")
        applied = [objects.namespace(n) for n in (alga.ALGA_SYSTEM, alga.APP_NAMESPACE)]
        if kube.get("secret", alga.AUTH_SECRET, alga.APP_NAMESPACE) is None:
            applied.append(objects.auth_secret(secrets.token_urlsafe(48)))
        applied += objects.values_configmaps(inputs, manifest, profile_values, mode)
        applied += [objects.release_selection(selection),
                    objects.git_repository(selection["repo_url"], selection["repo_branch"],
                                           requested_at),
                    objects.kustomization(requested_at)]
        ctx.action(f"applying release {selection['release_version']} ({mode}) to the cluster")
        kube.apply(applied)
    except KubeError as exc:
        raise OperationFailed("flux", f"the cluster refused the release objects: {exc}",
                              "check that Flux is installed and its controllers run "
                              "(kubectl -n flux-system get pods), then retry") from exc
