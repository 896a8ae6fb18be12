"""The app stage of a first install: from the release phase handing the app to Flux until
login works and the background services run. Flux and Kubernetes retry for ever, so
without limits a stuck install would say "installing" for ever; past these limits (or at
once, for a bootstrap job that failed) the stage has failed, in one of the categories
support knows, with its cause, the last action, a log excerpt and the next step.
"""

import datetime
from dataclasses import dataclass

from host.cluster import alga, readiness
from host.cluster.kube import Kube, KubeError
from host.core import words
from host.core.failures import SUPPORT_COMMAND, log_excerpt

# Counted from the end of the release phase, except the background's: from login working.
STORAGE_SECONDS = 10 * 60  # a pod left unschedulable (an unbound volume claim) this long
BOOTSTRAP_SECONDS = 30 * 60  # the bootstrap job (the app's database setup) has finished
LOGIN_SECONDS = 45 * 60  # login works (images pulled, alga-core answering)
BACKGROUND_SECONDS = 30 * 60  # the background services run, after login works
EVENT_LINES = 20
NOT_RUNNING = ("see which components are not running under Components and Recent warning events on "
               "the status page")
NOT_INSTALLED = "the Alga web app has not been installed; the log of helm-controller says why"
# The readiness tiers each failure category stands in the way of: shown failing, no longer
# waiting, once the stage has failed.
BLOCKED_TIERS = {"storage": ("core", "login", "fully_healthy"),
                 "app-bootstrap": ("bootstrap", "login", "fully_healthy"),
                 "app-readiness": ("login", "fully_healthy"),
                 "background-services": ("background", "fully_healthy")}


@dataclass(frozen=True)
class Stage:
    """When the app stage began, and when login first worked (None: not yet)."""

    began: datetime.datetime
    login_since: datetime.datetime | None
    now: datetime.datetime

    def past(self, limit: int, since: datetime.datetime | None = None) -> bool:
        return (self.now - (since or self.began)).total_seconds() > limit


def failure(stage: Stage, view: readiness.ClusterView, verdicts: dict, blockers: list[dict],
            events: list[dict], kube: Kube, app_address: str) -> dict | None:
    """The app stage's failure record (install-state's failure shape), or None while it
    is within its limits or done."""
    if "failed" in verdicts["bootstrap"].reason or (
            not verdicts["bootstrap"].ready and stage.past(BOOTSTRAP_SECONDS)):
        return _bootstrap(view, verdicts["bootstrap"].reason, kube)
    if not verdicts["login"].ready:
        storage = [b for b in blockers if b["blocks_login"] and _waits_for_storage(b)]
        if storage and stage.past(STORAGE_SECONDS):
            return _record("storage", f"{storage[0]['label']} still has no storage after "
                           f"{_minutes(STORAGE_SECONDS)}: {storage[0]['detail']['message']}",
                           f"waiting for {storage[0]['label']} to get its storage",
                           _events(events, storage[0]["component"]),
                           f"check free disk under Host on the status page (the app's "
                           f"volumes live under /var/lib/rancher) and see Recent warning "
                           f"events there; then send the support bundle ({SUPPORT_COMMAND})")
        if stage.past(LOGIN_SECONDS):
            blocking = [b for b in blockers if b["blocks_login"]]
            cause = blocking[0]["reason"] if blocking else verdicts["login"].reason
            return _record("app-readiness", f"login did not work within "
                           f"{_minutes(LOGIN_SECONDS)} of the release being applied: {cause}",
                           f"waiting for login at {app_address}", _events(events),
                           blocking[0]["next_action"] if blocking else
                           f"{NOT_RUNNING}; then send the support bundle ({SUPPORT_COMMAND})")
        return None
    if not verdicts["background"].ready and stage.login_since and stage.past(
            BACKGROUND_SECONDS, stage.login_since):
        background = [b for b in blockers if b["layer"] == "background"]
        cause = background[0]["reason"] if background else verdicts["background"].reason
        return _record("background-services", f"the background services did not start within "
                       f"{_minutes(BACKGROUND_SECONDS)} of login working: {cause}",
                       "waiting for the background services", _events(events, *alga.BACKGROUND),
                       (background[0]["next_action"] if background else
                        f"{NOT_RUNNING}; then send the support bundle ({SUPPORT_COMMAND})")
                       + "; you can log in meanwhile")
    return None


def _bootstrap(view: readiness.ClusterView, reason: str, kube: Kube) -> dict:
    job = readiness.bootstrap_job(view)
    if job is None:
        return _record("app-bootstrap", f"{reason} after {_minutes(BOOTSTRAP_SECONDS)}",
                       "waiting for the bootstrap job", "",
                       f"{words.read_log('helm-controller', NOT_INSTALLED)}; then send the "
                       f"support bundle ({SUPPORT_COMMAND})")
    name = job["metadata"]["name"]
    try:
        excerpt = kube.logs(alga.APP_NAMESPACE, f"job/{name}", f"--tail={EVENT_LINES}")
    except KubeError as exc:
        excerpt = f"(the job's log could not be read: {exc})"
    cause = reason if "failed" in reason else f"{reason} after {_minutes(BOOTSTRAP_SECONDS)}"
    return _record("app-bootstrap", cause, f"waiting for the bootstrap job {name}", excerpt,
                   f"{words.read_log('bootstrap', 'its log says why')}; then send the support "
                   f"bundle ({SUPPORT_COMMAND}) to Alga support")


def _waits_for_storage(blocker: dict) -> bool:
    """A pod the scheduler cannot place for want of its volume claim (the scheduler's
    message names it)."""
    detail = blocker["detail"] or {}
    return detail.get("kind") == "Pod" and "PersistentVolumeClaim" in detail.get("message", "")


def _record(category: str, cause: str, last_action: str, excerpt: str, next_step: str) -> dict:
    return {"category": category, "suspected_cause": cause, "last_action": last_action,
            "log_excerpt": log_excerpt(excerpt.splitlines()), "next_step": next_step,
            "support_command": SUPPORT_COMMAND}


def _events(events: list[dict], *components: str) -> str:
    """The warning events (of `components`' objects, when named), oldest first."""
    chosen = [e for e in events if not components or e["object"].split("/", 1)[-1].startswith(
        components)]
    return "\n".join(f"{e['time']} {e['object']} {e['reason']}: {e['message']}"
                     for e in reversed(chosen[:EVENT_LINES]))


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min"
