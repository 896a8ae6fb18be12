"""Installing what a channel names now.

An apply holds the setup lock, so setup and updates never interleave; runs the network
preflight checks before anything changes; re-renders the values ConfigMaps with the new
image tags (runtime values from the stored setup inputs, bootstrap in recover mode, the auth
key untouched); records the selection in the cluster and on the host; moves Flux's source
(the OCIRepository's digest, the GitRepository's branch, or from one kind to the other);
asks Flux to reconcile, and waits until Flux has handled that request at the new revision
and login works on the new release; the background services are reported, never waited
for. Applying again after a failure or an interruption
converges. Given the digest of the plan the admin reviewed, an apply installs exactly that
release artifact, or nothing.
"""

import contextlib
from collections.abc import Callable
from pathlib import Path

from host.cluster import alga, objects, readiness
from host.cluster.kube import Kube, KubeError
from host.cluster.probe import app_on_node, probe_login
from host.core import busy, maintenance, paths, runlock, state, words
from host.core.failures import SUPPORT_COMMAND, OperationFailed
from host.core.wait import TimedOut, wait_until
from host.net import addresses, https, resolvers
from host.releases import source
from host.update import history, notice
from host.update.check import (
    PREFLIGHT_CHECKS,
    ChannelMoved,
    ConfirmationRequired,
    Target,
    changes,
    confirmation_reason,
    needs_apply,
    require,
    resolve,
    setup_inputs,
)
from host.update.history import REFUSED_CATEGORY

FETCH_TIMEOUT = 30.0
FLUX_TIMEOUT = 600.0  # the source and the Kustomizations
HELM_TIMEOUT = 1200.0  # the Helm releases: upgrades wait for new pods and image pulls
LOGIN_TIMEOUT = 600.0
POLL_SECONDS = 5.0
BOOTSTRAP_MODE = "recover"  # the database exists: an update never bootstraps afresh
# What an error nobody anticipated most likely concerns, by the step it happened in.
STEP_CATEGORY = {None: "release-source", "preflight": "network",
                 "rendering values": "release-source",
                 "recording the selection": "flux", "switching the Flux source": "flux",
                 "requesting reconciliation": "flux", "waiting for Flux": "flux",
                 "waiting for login": "app-readiness", "removing the previous source": "flux"}
SOURCE_KINDS = {"oci": "OCIRepository", "git": "GitRepository"}
AGAIN = "the update can be applied again safely"
CLUSTER_DOWN = ("look at the cluster node and Flux on the Status page; if k3s is not "
                "answering, its log says why")


class UpdateBusy(Exception):
    """Another setup or update holds the setup lock; the message says which."""


def apply(root: Path | None = None, channel: str = "stable", confirmed: bool = False,
          who: str = "cli", kubeconfig: str = paths.K3S_KUBECONFIG,
          request_id: str | None = None, digest: str | None = None) -> dict:
    """Update the app to what `channel` names now (with `digest`, only if that is still the
    release artifact it names), under the setup lock; record and return the result. Raises
    UpdateBusy when a setup or update holds the lock, and ConfirmationRequired (recording
    nothing) for nightly, an older release or another release source unless `confirmed`."""
    require(channel, who)
    root = paths.host_root(root)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(runlock.held(root))
        except runlock.Busy as exc:
            raise UpdateBusy(busy.lock_holder(root, exc)) from exc
        history.interrupt_running(root)  # with the lock held, a running entry's process is gone
        return _apply(root, channel, confirmed, who, kubeconfig, request_id, digest)


def _apply(root: Path, channel: str, confirmed: bool, who: str, kubeconfig: str,
           request_id: str | None, digest: str | None) -> dict:
    current = state.read(state.SELECTED_RELEASE, root)
    switching = confirmation_reason(current, channel, backwards=False)
    if switching and not confirmed:  # known before the network is asked
        raise ConfirmationRequired(switching)
    operation = history.start(root, "apply", channel, who, current, request_id,
                              writes_log=True)
    operation.step("preflight")
    try:
        inputs = _installed_inputs(root)
        target = resolve(root, operation.log, inputs, channel, PREFLIGHT_CHECKS)
        _same_as_reviewed(target.selection, digest)
    except Exception as error:  # every failure is described and recorded
        return operation.failed(error, STEP_CATEGORY["preflight"])
    planned = changes(current, target.selection)
    operation.record.update(to=history.summary(target.selection), changes=planned)
    if planned["needs_confirmation"] and not confirmed:
        history.discard(root, operation.record["id"])
        raise ConfirmationRequired(planned["confirmation_reason"])
    if not needs_apply(root, current, target.selection, operation.record["id"]):
        return operation.finished("up_to_date")
    try:
        _switch(root, operation, kubeconfig, inputs, current, target)
    except Exception as error:  # every failure is described and recorded
        return operation.failed(error, STEP_CATEGORY[operation.record["step"]])
    # What the channel named is installed now: the notice of it is settled.
    notice.found(root, target.selection, target.selection, newer=False, what_changes=[])
    return operation.finished("succeeded")


def _same_as_reviewed(selection: dict, digest: str | None) -> None:
    resolved = selection.get("manifest_digest")
    if digest is not None and resolved != digest:
        moved = ChannelMoved(selection["channel"], digest, resolved or source.origin(selection),
                             selection["release_version"])
        raise OperationFailed(REFUSED_CATEGORY, f"{moved.reason}; nothing was changed",
                              "check again, review the new plan, and apply that") from moved


def _installed_inputs(root: Path) -> dict:
    inputs = setup_inputs(root)
    install = state.read(state.INSTALL_STATE, root)
    if install is None or install["status"] != "succeeded":
        found = install["status"] if install else "not started"
        raise OperationFailed(REFUSED_CATEGORY, f"setup has not finished (it is {found}), so "
                              "the app cannot be updated yet; nothing was changed",
                              "let setup finish (or fix and retry it), then update")
    return inputs


def _switch(root: Path, operation, kubeconfig: str, inputs: dict, current: dict | None,
            target: Target) -> None:
    selection, kube = target.selection, Kube(kubeconfig)
    operation.step("rendering values")
    operation.log(f"{selection['values_profile']} values of {source.describe(selection)}")
    configmaps = objects.values_configmaps(inputs, selection,
                                           _profile_values(inputs, target.resolution),
                                           BOOTSTRAP_MODE)
    _apply_objects(kube, configmaps, "the values ConfigMaps")
    operation.step("recording the selection")
    _apply_objects(kube, [objects.release_selection(selection)],
                   "the release-selection ConfigMap")
    _record_on_host(root, inputs, selection)
    requested_at = objects.reconcile_requested_at()
    flux_source = objects.flux_source(selection, requested_at)
    if current is None or _flux_source_spec(current) != flux_source["spec"]:
        operation.step("switching the Flux source")
        operation.log(f"{flux_source['kind']} {alga.SOURCE_NAME}: {flux_source['spec']}")
        _apply_objects(kube, [flux_source], f"the {flux_source['kind']}")
    operation.step("requesting reconciliation")
    _apply_objects(kube, [flux_source, objects.kustomization(flux_source, requested_at)],
                   "the reconciliation request")
    _request_reconciliation(kube, "kustomization", alga.FLUX_NAMESPACE, requested_at)
    operation.step("waiting for Flux")
    _wait(operation, "Flux did not reconcile", FLUX_TIMEOUT, "flux",
          lambda: _source_and_kustomizations_pending(kube, requested_at, selection))
    # Only now: a release changed by the new tree would otherwise be reconciled twice.
    _request_reconciliation(kube, "helmrelease", alga.ALGA_SYSTEM, requested_at)
    _wait(operation, "the Helm releases were not upgraded", HELM_TIMEOUT, "flux",
          lambda: _helm_releases_pending(kube, requested_at))
    operation.step("waiting for login")
    _wait(operation, f"login did not work on release {selection['release_version']}",
          LOGIN_TIMEOUT, "app-readiness",
          lambda: _login_pending(kube, selection["images"]["algaCore"]))
    _note_background_problems(operation, kube)
    if current is not None and current["source"] != selection["source"]:
        operation.step("removing the previous source")
        _remove_source(kube, SOURCE_KINDS[current["source"]])


def _flux_source_spec(selection: dict) -> dict:
    return objects.flux_source(selection, "")["spec"]


def _remove_source(kube: Kube, kind: str) -> None:
    """The source the root Kustomization no longer uses (nothing refers to it once the new
    tree is applied)."""
    try:
        kube.delete(kind.lower(), alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    except KubeError as exc:
        raise OperationFailed("flux", f"the previous {kind} could not be removed: {exc}",
                              f"apply the update again, which removes it ({AGAIN}); the "
                              f"update itself succeeded") from exc


def _profile_values(inputs: dict, resolution: source.Resolution) -> dict:
    try:
        with resolvers.resolving_through(resolvers.custom(inputs)):
            return resolution.profile_values(FETCH_TIMEOUT)
    except https.FetchError as exc:
        raise OperationFailed(exc.category, f"{exc}; nothing was changed", exc.next_step or (
            "check the release source override; if the release is broken upstream, choose "
            "another channel")) from exc


def _apply_objects(kube: Kube, applied: list[dict], what: str) -> None:
    try:
        kube.apply(applied)
    except KubeError as exc:
        raise OperationFailed("flux", f"the cluster refused {what}: {exc}",
                              f"{words.read_log('k3s', CLUSTER_DOWN)}; then apply the update "
                              f"again ({AGAIN})") from exc


def _record_on_host(root: Path, inputs: dict, selection: dict) -> None:
    """The host's record of the selection: the selected release, the channel a later setup
    re-run installs from, and the maintenance metadata."""
    previous = state.read(state.MAINTENANCE, root)
    state.write(state.SELECTED_RELEASE, selection, root)
    state.write(state.SETUP_INPUTS, {**inputs, "channel": selection["channel"]}, root)
    state.write(state.MAINTENANCE, maintenance.record(
        root, previous, selection, "update",
        k3s_version=previous["k3s_version"] if previous else None,
        flux_version=previous["flux_version"] if previous else None), root)


def _request_reconciliation(kube: Kube, resource: str, namespace: str,
                            requested_at: str) -> None:
    """Ask Flux to reconcile every `resource` in `namespace` (the Alga tree's own objects,
    which the appliance does not apply itself) that has not been asked yet."""
    try:
        for obj in kube.list(f"{resource}s", namespace):
            annotations = obj["metadata"].get("annotations", {})
            if annotations.get(alga.RECONCILE_ANNOTATION) != requested_at:
                kube.annotate(resource, obj["metadata"]["name"], namespace,
                              {alga.RECONCILE_ANNOTATION: requested_at})
    except KubeError as exc:
        raise OperationFailed("flux", f"requesting reconciliation of the {resource}s failed: "
                              f"{exc}", f"{words.flux_logs('check that Flux runs')}; then apply "
                              f"the update again ({AGAIN})") from exc


# --- waiting ---------------------------------------------------------------------------


def _wait(operation, what: str, timeout: float, category: str,
          pending: Callable[[], str | None]) -> None:
    """Poll until `pending` says nothing is (it returns what still is), within `timeout`;
    the API server restarting is worth waiting for."""
    try:
        wait_until(pending, timeout, POLL_SECONDS,
                   on_change=lambda waiting: operation.log(f"waiting: {waiting}"),
                   transient=(KubeError,))
    except TimedOut as exc:
        raise OperationFailed(category, f"{what} within {exc.timeout:.0f} s: {exc.pending}",
                              _next_step_after_timeout(category)) from exc


def _next_step_after_timeout(category: str) -> str:
    if category == "app-readiness":
        return (f"look at the Status page's blockers, then apply the update again ({AGAIN}); "
                f"if it persists, send the support bundle ({SUPPORT_COMMAND})")
    return (f"look at the Status page's blockers and Flux objects, and "
            f"{words.read_log('update', 'the update log says where it waited')}; then apply "
            f"the update again ({AGAIN}); if it persists, send the support bundle "
            f"({SUPPORT_COMMAND})")


def _at_selection(selection: dict, revision: str) -> bool:
    """Whether the source's artifact revision is the selected release's: the digest (Flux
    writes `sha256:…` for a digest ref, `<tag>@sha256:…` for a tag) or the branch's."""
    if selection["source"] == "oci":
        digest = selection["config"]["digest"]
        return revision == digest or revision.endswith(f"@{digest}")
    return revision.startswith(f"{selection['repo_branch']}@")


def _source_and_kustomizations_pending(kube: Kube, requested_at: str,
                                       selection: dict) -> str | None:
    kind = SOURCE_KINDS[selection["source"]]
    repository = kube.get(kind.lower(), alga.SOURCE_NAME, alga.FLUX_NAMESPACE)
    if repository is None:
        return f"{kind} {alga.SOURCE_NAME} does not exist"
    waiting = _flux_pending(repository, requested_at, lambda flux_status: _at_selection(
        selection, flux_status.get("artifact", {}).get("revision", "")))
    if waiting:
        return waiting
    revision = repository["status"]["artifact"]["revision"]
    for kustomization in kube.list("kustomizations", alga.FLUX_NAMESPACE):
        if _background(kustomization):
            continue
        source_ref = kustomization["spec"].get("sourceRef", {})
        ours = (source_ref.get("kind"), source_ref.get("name")) == (kind, alga.SOURCE_NAME)
        waiting = _flux_pending(kustomization, requested_at, lambda flux_status, ours=ours: (
            not ours or flux_status.get("lastAppliedRevision") == revision))
        if waiting:
            return waiting
    return None


def _helm_releases_pending(kube: Kube, requested_at: str) -> str | None:
    for release in kube.list("helmreleases", alga.ALGA_SYSTEM):
        if _background(release):
            continue
        waiting = _flux_pending(release, requested_at, lambda flux_status: True)
        if waiting:
            return waiting
    return None


def _background(obj: dict) -> bool:
    """The background services' Kustomization and Helm releases: an update neither waits
    for them nor fails on them (they never take login away); it reports their problems."""
    name = obj["metadata"]["name"]
    return (obj["kind"] == "Kustomization" and name == alga.BACKGROUND_KUSTOMIZATION) or (
        obj["kind"] == "HelmRelease" and name in alga.BACKGROUND)


def _note_background_problems(operation, kube: Kube) -> None:
    """Once login works on the new release: the background services Flux reports failing,
    as warnings of a succeeded update."""
    try:
        found = [*kube.list("kustomizations", alga.FLUX_NAMESPACE),
                 *kube.list("helmreleases", alga.ALGA_SYSTEM)]
    except KubeError as exc:
        found = []
        operation.log(f"the background services could not be read: {exc}")
    warnings = [f"{_named(obj)}: {problem}"
                for obj in found if _background(obj) for problem in [_flux_failure(obj)]
                if problem]
    for warning in warnings:
        operation.log(f"warning: {warning}")
    if warnings:
        operation.record["warnings"] = [
            *warnings, "background services do not block login; the Status page shows "
                       "their progress and next steps"]


def _flux_pending(obj: dict, requested_at: str, at_revision: Callable[[dict], bool]
                  ) -> str | None:
    """None once Flux has handled our request on `obj` and reports it Ready at the new
    revision, else what it is still doing. Raises OperationFailed when Flux reports failure."""
    kind, named, flux_status = obj["kind"], _named(obj), obj.get("status", {})
    if obj["metadata"].get("annotations", {}).get(
            alga.RECONCILE_ANNOTATION) != requested_at:
        return None  # created by the new tree after the request: it reconciles by itself
    if flux_status.get("lastHandledReconcileAt") != requested_at:
        return f"{named} has not handled the reconciliation request yet"
    problem = _flux_failure(obj)
    if problem:
        raise OperationFailed(_flux_category(kind), f"{named} failed: {problem}",
                              f"{_controller_log(kind)}; "
                              f"fix the cause or choose another channel, then apply the update "
                              f"again ({AGAIN})")
    ready = readiness.condition(obj, "Ready") or {}
    if ready.get("status") != "True":
        return f"{named} is in progress ({ready.get('reason', 'no Ready condition')})"
    if flux_status.get("observedGeneration") != obj["metadata"].get("generation"):
        return f"{named} has not taken in its latest change"
    if not at_revision(flux_status):
        return f"{named} does not report the new release yet"
    return None


def _named(obj: dict) -> str:
    """A Flux object as admins know it, its Kubernetes kind and name after it: "the
    installation of the database (HelmRelease alga-system/db)"."""
    kind, metadata = obj["kind"], obj["metadata"]
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{words.flux_label(kind, metadata['name'])} ({kind} {where}{metadata['name']})"


def _controller_log(kind: str) -> str:
    controller = words.flux_log(kind)
    return words.read_log(controller, f"the log of {controller} says why")


def _flux_failure(obj: dict) -> str | None:
    """"<reason>: <message>" when Flux reports `obj` failed (Stalled, or not Ready for a
    reason other than work in progress), else None."""
    ready = readiness.condition(obj, "Ready") or {}
    stalled = readiness.condition(obj, "Stalled") or {}
    if stalled.get("status") == "True":
        failed = stalled
    elif ready.get("status") == "False" and ready.get("reason") not in readiness.FLUX_IN_PROGRESS:
        failed = ready
    else:
        return None
    return f"{failed.get('reason', '')}: {failed.get('message', '')}"


def _flux_category(kind: str) -> str:
    if kind in SOURCE_KINDS.values():
        return "release-source"  # the config bundle, the channel's branch or the repository
    return "flux"


def _login_pending(kube: Kube, core_tag: str) -> str | None:
    view = readiness.read_view(kube)
    login_probe = probe_login(app_on_node(view, addresses.node_ip()))
    # The app was installed before, so an expired bootstrap job counts as done.
    verdicts = readiness.tiers(view, login_probe, bootstrap_seen=True)
    if "failed" in verdicts["bootstrap"].reason:
        job = readiness.bootstrap_job(view)["metadata"]["name"]
        raise OperationFailed("app-bootstrap", f"{verdicts['bootstrap'].reason} (Job {job})",
                              f"{words.read_log('bootstrap', 'its log says why')}; "
                              f"send the support bundle ({SUPPORT_COMMAND})")
    if not verdicts["login"].ready:
        return verdicts["login"].reason
    core = next((d for d in view.deployments
                 if d["metadata"]["name"] == alga.ALGA_CORE), {})
    images = [c.get("image", "") for c in core.get("spec", {}).get("template", {}).get(
        "spec", {}).get("containers", [])]
    if not any(image.endswith(f":{core_tag}") for image in images):
        return f"{alga.ALGA_CORE} runs {', '.join(images) or 'no image'}, not {core_tag}"
    return None
