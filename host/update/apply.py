"""App channel updates: what a channel would install, and installing it.

A check resolves the channel from one ref (as setup does) and compares it with the selected
release. An apply holds the setup lock, so setup and updates never interleave; runs the
network preflight checks before anything changes; re-renders the values ConfigMaps with the
new image tags (runtime values from the stored setup inputs, bootstrap in recover mode, the
auth key untouched); records the selection in the cluster and on the host; switches the
branch Flux tracks if the channel moved; asks Flux to reconcile, and waits until Flux has
handled that request at the new revision and login works on the new release.

Every check and apply is recorded in update-history.json, newest first, the newest 100
kept; a running apply keeps its step current there. The web UI and the CLI read progress
and results from it. An apply whose process died (a reboot, a kill) is marked interrupted
at the next start, and applying again converges.
"""

import contextlib
import datetime
import fcntl
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from host import status
from host.cluster import objects as cluster_objects
from host.cluster import readiness
from host.cluster.kube import K3S_KUBECONFIG, Kube, KubeError
from host.cluster.probe import probe_login
from host.core import paths, state, validation
from host.core import spool as requests_spool
from host.core.failures import SUPPORT_COMMAND, PhaseFailure
from host.net import endpoints
from host.net import https as http
from host.releases import git_source as release_channel
from host.setup import engine, phases, preflight

CHANNELS = ("stable", "nightly")
WHO = ("web", "cli")
HISTORY_LIMIT = 100
HISTORY_LOCK = "update-history.lock"  # in paths.STATE_DIR: checks write without the setup lock
LOG_FILE = "update.log"  # in paths.LOG_DIR, beside the phase logs (the support bundle has it)
FLUX_TIMEOUT = 600.0  # the source and the Kustomizations
HELM_TIMEOUT = 1200.0  # the Helm releases: upgrades wait for new pods and image pulls
LOGIN_TIMEOUT = 600.0
POLL_SECONDS = 5.0
BOOTSTRAP_MODE = "recover"  # the database exists: an update never bootstraps afresh
IMAGES = ("algaCore", "workflowWorker", "emailService", "temporalWorker")
COMPARED = ("channel", "repo_url", "release_version", "repo_branch", "app_version",
            "release_branch", "values_profile", "images")
# The preflight checks an app update depends on: resolution, the proxy, the release source,
# the registry and the clock (TLS). Not the k3s and Flux downloads, disks or ports.
PREFLIGHT_CHECKS = ("dns.", "proxy", "github.channel", "github.manifest", "ghcr", "clock")
RESOLVE_CHECKS = ("github.channel", "github.manifest")
# Reasons Flux gives for Ready=False while it is still working rather than failed.
FLUX_PROGRESSING = ("Progressing", "ProgressingWithRetry", "DependencyNotReady")
# What an error nobody anticipated most likely concerns, by the step it happened in.
STEP_CATEGORY = {None: "github-release-source", "preflight": "network",
                 "rendering values": "github-release-source",
                 "recording the selection": "flux", "switching branch": "flux",
                 "requesting reconciliation": "flux", "waiting for Flux": "flux",
                 "waiting for login": "app-readiness"}
# No failure category names a refused request; the app stays as it was.
REFUSED_CATEGORY = "app-readiness"
NIGHTLY_REASON = ("nightly builds are for testing, or when support asks for them: they are "
                  "not release-tested, and going back to stable may mean an older release")
AGAIN = "the update can be applied again safely"


class UpdateBusy(engine.SetupBusy):
    """Another setup or update holds the setup lock."""


class ConfirmationRequired(Exception):
    """The update switches to nightly or goes back to an older release."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"this update needs confirmation: {reason}")


@dataclass(frozen=True)
class Target:
    """What the channel names now."""

    selection: dict  # a selected-release document
    manifest: dict


@dataclass
class UpdateRun:
    """One check or apply: its history entry, its log, its clock."""

    root: Path
    kubeconfig: str
    entry: dict
    writes_log: bool  # a check changes nothing, not even the log
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def step(self, name: str) -> None:
        self.entry["step"] = name
        self.log(f"→ {name}")
        _save(self.root, self.entry)

    def log(self, line: str) -> None:
        self.lines.append(line)
        if self.writes_log:
            engine.append_log(self.root, LOG_FILE, line)

    def finished(self, result: str, failure: dict | None = None) -> dict:
        self.entry.update(result=result, finished_at=state.timestamp(), failure=failure,
                          duration_s=round(time.monotonic() - self.started, 1))
        self.log(f"{self.entry['action']} {result}")
        _save(self.root, self.entry)
        return self.entry

    def failed(self, error: Exception) -> dict:
        self.log(f"failed: {error}")
        return self.finished("failed", _failure(error, self.entry["step"]))


# --- the public entry points -----------------------------------------------------------


def check(root: Path | None = None, channel: str = "stable", who: str = "cli",
          kubeconfig: str = K3S_KUBECONFIG) -> dict:
    """Resolve `channel`, compare it with the selected release, and record the check.
    Nothing else changes; `kubeconfig` is accepted for symmetry with apply (a check never
    asks the cluster)."""
    _require(channel, who)
    root = state.host_root(root)
    mark_interrupted(root)
    current = state.read(state.SELECTED_RELEASE, root)
    run = UpdateRun(root, kubeconfig, _new_entry("check", channel, who, current),
                    writes_log=False)
    try:
        inputs = _setup_inputs(root)
        target = _resolve(run, inputs, channel, RESOLVE_CHECKS)
    except Exception as error:  # every failure is classified and recorded
        return run.failed(error)
    run.entry.update(to=_summary(target.selection), changes=_changes(current, target.selection))
    pending = _needs_apply(root, current, target.selection, run.entry["id"])
    return run.finished("update_available" if pending else "up_to_date")


def apply(root: Path | None = None, channel: str = "stable", confirmed: bool = False,
          who: str = "cli", kubeconfig: str = K3S_KUBECONFIG) -> dict:
    """Update the app to what `channel` names now, under the setup lock; record and
    return the result. Raises UpdateBusy when a setup or update holds the lock, and
    ConfirmationRequired (recording nothing) for nightly or an older release unless
    `confirmed`."""
    _require(channel, who)
    root = state.host_root(root)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(engine.setup_lock(root))
        except engine.SetupBusy as exc:
            raise UpdateBusy(str(exc)) from exc
        _interrupt_running(root)  # with the lock held, a running entry's process is gone
        return _apply(root, channel, confirmed, who, kubeconfig)


def mark_interrupted(root: Path | None = None) -> bool:
    """Mark an apply recorded as running whose process is gone (the setup lock is free) as
    interrupted; whether there was one."""
    if not any(entry["result"] == "running" for entry in history(root)):
        return False  # the lock is only touched when there is something to mark
    try:
        with engine.setup_lock(root):
            return _interrupt_running(root)
    except engine.SetupBusy:
        return False  # its process, or a setup phase, still runs


def run_request(root: Path | None = None, kubeconfig: str = K3S_KUBECONFIG) -> dict | None:
    """Take the web UI's spooled request, validate it again (nothing from the web process
    is trusted) and run it; the recorded entry, or None when no request waits."""
    root = state.host_root(root)
    request = requests_spool.take(paths.UPDATE_REQUEST, root)
    if request is None:
        return None
    mark_interrupted(root)
    problem = _request_problem(request)
    if problem is not None:
        return _refused(root, request, f"the update request was malformed ({problem}); "
                        "nothing was changed", "request it again from the Updates page; if "
                        f"this repeats, send the support bundle ({SUPPORT_COMMAND})")
    if request["action"] == "check":
        return check(root, request["channel"], "web", kubeconfig)
    try:
        return apply(root, request["channel"], request["confirmed"], "web", kubeconfig)
    except ConfirmationRequired as exc:
        return _refused(root, request, f"not applied without confirmation: {exc.reason}",
                        "check again, read what will change, and confirm it")
    except UpdateBusy as exc:
        return _refused(root, request, str(exc), "wait until it has finished, then request "
                        "the update again")


def history(root: Path | None = None) -> list[dict]:
    """Every recorded check and apply, newest first."""
    document = state.read(state.UPDATE_HISTORY, root)
    return document["entries"] if document else []


def summary_lines(entry: dict) -> list[str]:
    """The entry as text: what changes, the result and, for a failure, the next step."""
    source, target, changes = entry["from"], entry["to"], entry["changes"]
    lines = []
    if target is not None:
        was = f"{source['channel']} {source['release_version']}" if source else "nothing"
        lines.append(f"{was} → {target['channel']} {target['release_version']} "
                     f"(app {target['app_version']}, branch {target['repo_branch']})")
    if changes is not None:
        if changes["branch"]:
            lines.append(f"  branch {changes['branch']['from']} → {changes['branch']['to']}")
        lines += [f"  {image['name']} {image['from']} → {image['to']}"
                  for image in changes["images"]]
        if changes["needs_confirmation"]:
            lines.append(f"  needs confirmation: {changes['confirmation_reason']}")
    took = f" in {entry['duration_s']:g} s" if entry["duration_s"] is not None else ""
    lines.append(f"{entry['action']}: {entry['result'].replace('_', ' ')}{took}")
    if entry["failure"]:
        failure = entry["failure"]
        lines += [f"  [{failure['category']}] {failure['suspected_cause']}",
                  f"  next step: {failure['next_step']}"]
    return lines


def version_key(version: str) -> tuple:
    """Release versions in order: 1.0 < 1.0.1 < 1.1-nightly.2 < 1.1 (a suffix sorts before
    its release, numeric parts by number, as semver orders pre-releases)."""
    core, _, suffix = version.partition("-")
    numbers = [int(part) for part in core.split(".")]
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in suffix.split("."))
    return (*numbers, *[0] * (3 - len(numbers)), 0 if suffix else 1, parts if suffix else ())


# --- apply ---------------------------------------------------------------------------


def _apply(root: Path, channel: str, confirmed: bool, who: str, kubeconfig: str) -> dict:
    current = state.read(state.SELECTED_RELEASE, root)
    switching = _confirmation_reasons(current, channel, backwards=False)
    if switching and not confirmed:  # known before the network is asked
        raise ConfirmationRequired(switching)
    run = UpdateRun(root, kubeconfig, _new_entry("apply", channel, who, current),
                    writes_log=True)
    run.step("preflight")
    try:
        inputs = _installed_inputs(root)
        target = _resolve(run, inputs, channel, PREFLIGHT_CHECKS)
    except Exception as error:  # every failure is classified and recorded
        return run.failed(error)
    changes = _changes(current, target.selection)
    run.entry.update(to=_summary(target.selection), changes=changes)
    if changes["needs_confirmation"] and not confirmed:
        _discard(root, run.entry["id"])
        raise ConfirmationRequired(changes["confirmation_reason"])
    if not _needs_apply(root, current, target.selection, run.entry["id"]):
        return run.finished("up_to_date")
    try:
        _switch(run, inputs, current, target)
    except Exception as error:  # every failure is classified and recorded
        return run.failed(error)
    return run.finished("succeeded")


def _switch(run: UpdateRun, inputs: dict, current: dict | None, target: Target) -> None:
    selection, kube = target.selection, Kube(run.kubeconfig)
    run.step("rendering values")
    run.log(f"{selection['values_profile']} values from {selection['repo_branch']}")
    configmaps = phases.values_configmaps(inputs, target.manifest,
                                          _profile_values(run, inputs, selection),
                                          BOOTSTRAP_MODE)
    _apply_objects(kube, configmaps, "the values ConfigMaps")
    run.step("recording the selection")
    _apply_objects(kube, [cluster_objects.release_selection(selection)],
                   "the release-selection ConfigMap")
    _record_on_host(run.root, inputs, selection)
    requested_at = _requested_at()
    repository = cluster_objects.git_repository(selection["repo_url"], selection["repo_branch"],
                                                requested_at)
    if current is None or current["repo_branch"] != selection["repo_branch"]:
        run.step("switching branch")
        _apply_objects(kube, [repository], "the GitRepository")
    run.step("requesting reconciliation")
    _apply_objects(kube, [repository, cluster_objects.kustomization(requested_at)],
                   "the reconciliation request")
    _request_reconciliation(kube, "kustomization", cluster_objects.FLUX_NAMESPACE, requested_at)
    run.step("waiting for Flux")
    _wait(run, "Flux did not reconcile", FLUX_TIMEOUT, "flux",
          lambda: _source_and_kustomizations_pending(kube, requested_at,
                                                     selection["repo_branch"]))
    # Only now: a release changed by the new tree would otherwise be reconciled twice.
    _request_reconciliation(kube, "helmrelease", cluster_objects.ALGA_SYSTEM, requested_at)
    _wait(run, "the Helm releases were not upgraded", HELM_TIMEOUT, "flux",
          lambda: _helm_releases_pending(kube, requested_at))
    run.step("waiting for login")
    _wait(run, f"login did not work on release {selection['release_version']}",
          LOGIN_TIMEOUT, "app-readiness",
          lambda: _login_pending(kube, inputs["app_url"], selection["images"]["algaCore"]))


def _profile_values(run: UpdateRun, inputs: dict, selection: dict) -> dict:
    site = endpoints.load(run.root)
    try:
        with http.resolving_through(http.custom_resolvers(inputs)):
            return phases.fetch_profile_values(
                http.session(inputs, site), release_channel.Source.for_inputs(inputs, site),
                selection["repo_branch"], selection["values_profile"])
    except http.FetchError as exc:
        raise PhaseFailure(exc.category, f"{exc}; nothing was changed", "check the channel "
                           "and repository override; if the release is broken upstream, "
                           "choose another channel", retry_safe=True) from exc


def _apply_objects(kube: Kube, objects: list[dict], what: str) -> None:
    try:
        kube.apply(objects)
    except KubeError as exc:
        raise PhaseFailure("flux", f"the cluster refused {what}: {exc}", "check the cluster "
                           "(kubectl get nodes; kubectl -n flux-system get pods), then apply "
                           f"the update again; {AGAIN}", retry_safe=True) from exc


def _record_on_host(root: Path, inputs: dict, selection: dict) -> None:
    """The host's record of the selection: the selected release, the channel a later setup
    re-run installs from, and the maintenance metadata."""
    previous = state.read(state.MAINTENANCE, root)
    state.write(state.SELECTED_RELEASE, selection, root)
    state.write(state.SETUP_INPUTS, {**inputs, "channel": selection["channel"]}, root)
    state.write(state.MAINTENANCE, phases.maintenance_record(
        root, previous, selection, "update",
        k3s_version=previous["k3s_version"] if previous else None,
        flux_version=previous["flux_version"] if previous else None), root)


def _requested_at() -> str:
    # Sub-second, as `flux reconcile` writes it: two updates within a second still differ.
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _request_reconciliation(kube: Kube, resource: str, namespace: str,
                            requested_at: str) -> None:
    """Ask Flux to reconcile every `resource` in `namespace` (the Alga tree's own objects,
    which the appliance does not apply itself) that has not been asked yet."""
    try:
        for obj in kube.list(f"{resource}s", namespace):
            annotations = obj["metadata"].get("annotations", {})
            if annotations.get(cluster_objects.RECONCILE_ANNOTATION) != requested_at:
                kube.annotate(resource, obj["metadata"]["name"], namespace,
                              {cluster_objects.RECONCILE_ANNOTATION: requested_at})
    except KubeError as exc:
        raise PhaseFailure("flux", f"requesting reconciliation of the {resource}s failed: "
                           f"{exc}", f"check that Flux runs (kubectl -n flux-system get "
                           f"pods), then apply the update again; {AGAIN}",
                           retry_safe=True) from exc


# --- waiting ---------------------------------------------------------------------------


def _wait(run: UpdateRun, what: str, timeout: float, category: str,
          pending: Callable[[], str | None]) -> None:
    """Poll until `pending` says nothing is (it returns what still is), within `timeout`."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            waiting = pending()
        except KubeError as exc:  # the API server restarting is worth waiting for
            waiting = str(exc)
        if waiting is None:
            return
        if waiting != last:
            run.log(f"waiting: {waiting}")
            last = waiting
        if time.monotonic() >= deadline:
            raise PhaseFailure(category, f"{what} within {timeout:.0f} s: {waiting}",
                               _next_step_after_timeout(category), retry_safe=True)
        time.sleep(POLL_SECONDS)


def _next_step_after_timeout(category: str) -> str:
    if category == "app-readiness":
        return (f"look at the Status page's blockers, then apply the update again ({AGAIN}); "
                f"if it persists, send the support bundle ({SUPPORT_COMMAND})")
    return ("check `kubectl -n flux-system get gitrepositories,kustomizations` and "
            f"`kubectl -n {cluster_objects.ALGA_SYSTEM} get helmreleases`, then apply the "
            f"update again ({AGAIN}); if it persists, send the support bundle "
            f"({SUPPORT_COMMAND})")


def _source_and_kustomizations_pending(kube: Kube, requested_at: str,
                                       branch: str) -> str | None:
    repository = kube.get("gitrepository", cluster_objects.SOURCE_NAME,
                          cluster_objects.FLUX_NAMESPACE)
    if repository is None:
        return f"GitRepository {cluster_objects.SOURCE_NAME} does not exist"
    waiting = _flux_pending(repository, requested_at, lambda flux_status: flux_status.get(
        "artifact", {}).get("revision", "").startswith(f"{branch}@"))
    if waiting:
        return waiting
    revision = repository["status"]["artifact"]["revision"]
    for kustomization in kube.list("kustomizations", cluster_objects.FLUX_NAMESPACE):
        source = kustomization["spec"].get("sourceRef", {})
        ours = (source.get("kind"), source.get("name")) == ("GitRepository",
                                                            cluster_objects.SOURCE_NAME)
        waiting = _flux_pending(kustomization, requested_at, lambda flux_status, ours=ours: (
            not ours or flux_status.get("lastAppliedRevision") == revision))
        if waiting:
            return waiting
    return None


def _helm_releases_pending(kube: Kube, requested_at: str) -> str | None:
    for release in kube.list("helmreleases", cluster_objects.ALGA_SYSTEM):
        waiting = _flux_pending(release, requested_at, lambda flux_status: True)
        if waiting:
            return waiting
    return None


def _flux_pending(obj: dict, requested_at: str, at_revision: Callable[[dict], bool]
                  ) -> str | None:
    """None once Flux has handled our request on `obj` and reports it Ready at the new
    revision, else what it is still doing. Raises PhaseFailure when Flux reports failure."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    namespace, flux_status = obj["metadata"].get("namespace", ""), obj.get("status", {})
    if obj["metadata"].get("annotations", {}).get(
            cluster_objects.RECONCILE_ANNOTATION) != requested_at:
        return None  # created by the new tree after the request: it reconciles by itself
    if flux_status.get("lastHandledReconcileAt") != requested_at:
        return f"{kind} {name} has not handled the reconciliation request yet"
    ready = readiness.condition(obj, "Ready") or {}
    stalled = readiness.condition(obj, "Stalled") or {}
    failed = None
    if stalled.get("status") == "True":
        failed = stalled
    elif ready.get("status") == "False" and ready.get("reason") not in FLUX_PROGRESSING:
        failed = ready
    if failed is not None:
        raise PhaseFailure(_flux_category(kind, name), f"{kind} {namespace}/{name} failed: "
                           f"{failed.get('reason', '')}: {failed.get('message', '')}",
                           f"check `kubectl -n {namespace} describe {kind.lower()} {name}`; "
                           f"fix the cause or choose another channel, then apply the update "
                           f"again ({AGAIN})", retry_safe=True)
    if ready.get("status") != "True":
        return f"{kind} {name} is reconciling ({ready.get('reason', 'no Ready condition')})"
    if flux_status.get("observedGeneration") != obj["metadata"].get("generation"):
        return f"{kind} {name} has not reconciled its latest change"
    if not at_revision(flux_status):
        return f"{kind} {name} does not report the new revision yet"
    return None


def _flux_category(kind: str, name: str) -> str:
    if kind == "GitRepository":
        return "github-release-source"  # the channel's branch or the repository
    if kind == "HelmRelease" and name in status.BACKGROUND_RELEASES:
        return "background-services"
    return "flux"


def _login_pending(kube: Kube, app_url: str, core_tag: str) -> str | None:
    view = status.read_cluster(kube).view
    # The app was installed before, so an expired bootstrap job counts as done.
    verdicts = readiness.tiers(view, probe_login(app_url), bootstrap_seen=True)
    if "failed" in verdicts["bootstrap"].reason:
        raise PhaseFailure("app-bootstrap", verdicts["bootstrap"].reason,
                           f"look at the bootstrap job's logs (kubectl -n "
                           f"{readiness.APP_NAMESPACE} logs job/<name>); send the support "
                           f"bundle ({SUPPORT_COMMAND})", retry_safe=True)
    if not verdicts["login"].ready:
        return verdicts["login"].reason
    core = next((d for d in view.deployments
                 if d["metadata"]["name"] == readiness.ALGA_CORE), {})
    images = [c.get("image", "") for c in core.get("spec", {}).get("template", {}).get(
        "spec", {}).get("containers", [])]
    if not any(image.endswith(f":{core_tag}") for image in images):
        return f"{readiness.ALGA_CORE} runs {', '.join(images) or 'no image'}, not {core_tag}"
    return None


# --- resolving and comparing -------------------------------------------------------------


def _setup_inputs(root: Path) -> dict:
    inputs = state.read(state.SETUP_INPUTS, root)
    if inputs is None:
        raise PhaseFailure(REFUSED_CATEGORY, "setup has not been submitted, so there is no "
                           "app to update", "complete setup first", retry_safe=True)
    return inputs


def _installed_inputs(root: Path) -> dict:
    inputs = _setup_inputs(root)
    install = state.read(state.INSTALL_STATE, root)
    if install is None or install["status"] != "succeeded":
        found = install["status"] if install else "not started"
        raise PhaseFailure(REFUSED_CATEGORY, f"setup has not finished (it is {found}), so "
                           "the app cannot be updated yet; nothing was changed",
                           "let setup finish (or fix and retry it), then update",
                           retry_safe=True)
    return inputs


def _resolve(run: UpdateRun, inputs: dict, channel: str, ids: tuple[str, ...]) -> Target:
    """Run the preflight checks whose ids start with one of `ids` (they include the channel
    and its manifest, from one ref), failing at the first that fails; what the channel
    names."""
    site = endpoints.load(run.root)
    ctx = preflight.Context({**inputs, "channel": channel}, site, run.root,
                            http.session(inputs, site))
    with http.resolving_through(http.custom_resolvers(inputs)):
        for check_ in (c for c in preflight.checks(site) if c.id.startswith(ids)):
            try:
                run.log(f"pass {check_.id}: {check_.run(ctx, check_.timeout)}")
            except preflight.CheckFailed as exc:
                if exc.status == "warn":
                    run.log(f"warn {check_.id}: {exc}")
                    continue
                raise PhaseFailure(exc.category or check_.category, f"{check_.id}: {exc}; "
                                   "nothing was changed", check_.remediation,
                                   retry_safe=True) from exc
    if release_channel.unknown_fields(ctx.channel_file):
        run.log("channel file has fields this version ignores: "
                f"{', '.join(release_channel.unknown_fields(ctx.channel_file))}")
    selection = release_channel.selection(channel, ctx.source, ctx.channel_file, ctx.manifest,
                                          state.timestamp())
    return Target(selection, ctx.manifest)


def _summary(selection: dict | None) -> dict | None:
    if selection is None:
        return None
    return {key: selection[key] for key in ("channel", "release_version", "app_version",
                                            "repo_branch")}


def _changes(current: dict | None, target: dict) -> dict:
    before = current["images"] if current else {}
    images = [{"name": name, "from": before.get(name), "to": target["images"][name]}
              for name in IMAGES if before.get(name) != target["images"][name]]
    branch = None
    if current is None or current["repo_branch"] != target["repo_branch"]:
        branch = {"from": current["repo_branch"] if current else None,
                  "to": target["repo_branch"]}
    backwards = current is not None and (version_key(target["release_version"])
                                         < version_key(current["release_version"]))
    reason = _confirmation_reasons(current, target["channel"], backwards, target)
    return {"images": images, "branch": branch, "backwards": backwards,
            "needs_confirmation": reason is not None, "confirmation_reason": reason}


def _confirmation_reasons(current: dict | None, channel: str, backwards: bool,
                          target: dict | None = None) -> str | None:
    reasons = []
    if channel == "nightly" and (current is None or current["channel"] != "nightly"):
        reasons.append(NIGHTLY_REASON)
    if backwards:
        reasons.append(f"release {target['release_version']} is older than the installed "
                       f"{current['release_version']}: going back is not tested, and fails if "
                       "the newer release already changed the database")
    return "; ".join(reasons) or None


def _needs_apply(root: Path, current: dict | None, target: dict, own_id: str) -> bool:
    """Whether applying would change anything: the channel names something else, or the
    newest apply began changing the cluster and has not finished (applying again does)."""
    if current is None or any(current[key] != target[key] for key in COMPARED):
        return True
    applies = [e for e in history(root) if e["action"] == "apply" and e["id"] != own_id]
    return bool(applies) and applies[0]["result"] in ("running", "failed", "interrupted") \
        and applies[0]["step"] not in (None, "preflight")


# --- the history -------------------------------------------------------------------------


def _new_entry(action: str, channel: str, who: str, current: dict | None) -> dict:
    started = datetime.datetime.now(datetime.UTC)
    return {"id": f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}", "action": action,
            "who": who, "channel": channel, "started_at": state.timestamp(started),
            "finished_at": None, "result": "running", "step": None, "from": _summary(current),
            "to": None, "changes": None, "duration_s": None, "failure": None}


@contextlib.contextmanager
def _history_lock(root: Path | None) -> Iterator[None]:
    """Checks run beside an apply, so every change to the file is read-modify-write under
    this lock."""
    path = state.host_root(root) / paths.STATE_DIR.lstrip("/") / HISTORY_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        yield


def _save(root: Path, entry: dict) -> None:
    """Write `entry` in place, or as the newest; the newest HISTORY_LIMIT are kept."""
    with _history_lock(root):
        entries = history(root)
        index = next((i for i, e in enumerate(entries) if e["id"] == entry["id"]), None)
        if index is None:
            entries.insert(0, entry)
        else:
            entries[index] = entry
        state.write(state.UPDATE_HISTORY, {"entries": entries[:HISTORY_LIMIT]}, root)


def _discard(root: Path, entry_id: str) -> None:
    with _history_lock(root):
        entries = [e for e in history(root) if e["id"] != entry_id]
        state.write(state.UPDATE_HISTORY, {"entries": entries}, root)


def _interrupt_running(root: Path) -> bool:
    """Only call with the setup lock held: then no running apply has a live process."""
    with _history_lock(root):
        entries = history(root)
        running = [e for e in entries if e["result"] == "running"]
        for entry in running:
            started = datetime.datetime.strptime(entry["started_at"], state.TIMESTAMP_FORMAT)
            took = datetime.datetime.now(datetime.UTC) - started.replace(tzinfo=datetime.UTC)
            entry.update(result="interrupted", finished_at=state.timestamp(),
                         duration_s=max(0.0, round(took.total_seconds(), 1)))
        if running:
            state.write(state.UPDATE_HISTORY, {"entries": entries}, root)
    return bool(running)


def _failure(error: Exception, step: str | None) -> dict:
    if isinstance(error, PhaseFailure):
        return {"category": error.category, "suspected_cause": error.suspected_cause,
                "next_step": error.next_step,
                "retry_safe": True if error.retry_safe is None else error.retry_safe}
    return {"category": STEP_CATEGORY[step],
            "suspected_cause": f"unexpected {type(error).__name__} "
                               f"({step or 'checking'}): {error}",
            "next_step": f"try again; if it fails again, send the support bundle "
                         f"({SUPPORT_COMMAND})", "retry_safe": True}


# --- web requests ------------------------------------------------------------------------


def _request_problem(request: dict) -> str | None:
    if request.get("__malformed__"):
        return "not a JSON object"
    problems = validation.problems(request, requests_spool.UPDATE_SCHEMA)
    return "; ".join(f"{p['field']}: {p['message']}" for p in problems) or None


def _refused(root: Path, request: dict, cause: str, next_step: str) -> dict:
    """A failed entry for a web request that was not run: the UI learns why from history."""
    current = state.read(state.SELECTED_RELEASE, root)
    action = request.get("action") if request.get("action") in ("check", "apply") else "apply"
    channel = request.get("channel") if request.get("channel") in CHANNELS else (
        current["channel"] if current else "stable")
    run = UpdateRun(root, K3S_KUBECONFIG, _new_entry(action, channel, "web", current),
                    writes_log=True)
    return run.finished("failed", {"category": REFUSED_CATEGORY, "suspected_cause": cause,
                                   "next_step": next_step, "retry_safe": True})


def _require(channel: str, who: str) -> None:
    if channel not in CHANNELS or who not in WHO:
        raise ValueError(f"channel must be one of {CHANNELS} and who one of {WHO}, not "
                         f"{channel!r} and {who!r}")
