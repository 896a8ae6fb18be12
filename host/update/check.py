"""What a channel would install, compared with what is installed: the plan an update
check shows and an apply follows.

The channel is resolved from the release source by the preflight checks an update depends
on (as setup resolves it), stopping at the first that fails. For an OCI source the plan
names the release artifact's digest: applying it later applies that digest or nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.cluster import alga
from host.core import failures, paths, state
from host.core.failures import OperationFailed
from host.core.version import version_key
from host.net import endpoints
from host.releases import channels, source
from host.setup import preflight
from host.update import history, notice
from host.update.history import REFUSED_CATEGORY

WHO = ("web", "cli")
# The preflight checks an app update depends on: resolution, the proxy, the release source,
# the registry and the clock (TLS). Not the k3s and Flux downloads, disks or ports.
PREFLIGHT_CHECKS = ("dns.", "proxy", "release.", "ghcr", "clock")
RESOLVE_CHECKS = ("release.",)
NIGHTLY_REASON = ("nightly builds are for testing, or when support asks for them: they are "
                  "not release-tested, and going back to stable may mean an older release")


class ConfirmationRequired(Exception):
    """The update switches to nightly or goes back to an older release."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"this update needs confirmation: {reason}")


class ChannelMoved(Exception):
    """The channel names another release artifact than the plan the admin reviewed."""

    def __init__(self, channel: str, reviewed: str, now: str, version: str):
        self.reason = (f"the {channel} channel moved since the check: the plan was for "
                       f"{reviewed}, the channel now names {now} (release {version})")
        super().__init__(self.reason)


@dataclass(frozen=True)
class Target:
    """What the channel names now."""

    selection: dict  # a selected-release document
    resolution: source.Resolution  # for the release's profile values


def check(root: Path | None = None, channel: str = "stable", who: str = "cli",
          request_id: str | None = None) -> dict:
    """Resolve `channel`, compare it with the selected release, and record the check.
    Nothing else changes."""
    require(channel, who)
    root = paths.host_root(root)
    history.mark_interrupted(root)
    current = state.read(state.SELECTED_RELEASE, root)
    operation = history.start(root, "check", channel, who, current, request_id,
                              writes_log=False)
    installed = current is not None and current["channel"] == channel
    try:
        target = resolve(root, operation.log, setup_inputs(root), channel, RESOLVE_CHECKS)
    except Exception as error:  # every failure is described and recorded
        entry = operation.failed(error, "release-source")
        if installed:
            notice.failed(root, current, entry["failure"])
        return entry
    planned = changes(current, target.selection)
    operation.record.update(to=history.summary(target.selection), changes=planned)
    if installed:
        record_notice(root, current, target.selection, planned)
    pending = needs_apply(root, current, target.selection, operation.record["id"])
    return operation.finished("update_available" if pending else "up_to_date")


def check_installed(root: Path | None = None) -> dict:
    """The daily check: what the installed channel names now, recorded in the update notice
    only. Not in the history, whose newest check is the plan the admin reviewed (an apply
    from the web is honoured only against it), nor in the update log."""
    root = paths.host_root(root)
    current = state.read(state.SELECTED_RELEASE, root)
    if current is None:
        raise OperationFailed(REFUSED_CATEGORY, "no release is installed yet, so there is no "
                              "installed channel to check", "complete setup first")
    try:
        target = resolve(root, lambda line: None, setup_inputs(root), current["channel"],
                         RESOLVE_CHECKS)
    except Exception as error:  # every failure is described and recorded
        return notice.failed(root, current, failures.failure_record(error, "release-source"))
    return record_notice(root, current, target.selection,
                         changes(current, target.selection))


def record_notice(root: Path, current: dict, target: dict, planned: dict) -> dict:
    """The update notice of a check of the installed channel: whether it names a newer
    release, and what applying it changes."""
    newer = version_key(target["release_version"]) > version_key(current["release_version"])
    app = [f"app {current['app_version']} → {target['app_version']}"] \
        if current["app_version"] != target["app_version"] else []
    return notice.found(root, current, target, newer, app + history.change_lines(planned))


def require(channel: str, who: str) -> None:
    if channel not in channels.CHANNELS or who not in WHO:
        raise ValueError(f"channel must be one of {channels.CHANNELS} and who one of {WHO}, "
                         f"not {channel!r} and {who!r}")


def setup_inputs(root: Path | None) -> dict:
    inputs = state.read(state.SETUP_INPUTS, root)
    if inputs is None:
        raise OperationFailed(REFUSED_CATEGORY, "setup has not been submitted, so there is "
                              "no app to update", "complete setup first")
    return inputs


def resolve(root: Path | None, log: Callable[[str], None], inputs: dict, channel: str,
            ids: tuple[str, ...]) -> Target:
    """Run the preflight checks whose ids start with one of `ids` (they include the channel
    and its manifest, from one ref), failing at the first that fails; what the channel
    names."""
    result = preflight.run_checks({**inputs, "channel": channel}, endpoints.load(root),
                                  paths.host_root(root), only=ids, stop_at_first_fail=True,
                                  write_report=False, log=log)
    if result.failure is not None:
        failure = result.failure
        raise OperationFailed(failure.category, f"{failure.check_id}: {failure.message}; "
                              "nothing was changed", failure.remediation)
    if result.resolution.unknown_fields():
        log("the release has fields this version ignores: "
            f"{', '.join(result.resolution.unknown_fields())}")
    return Target(result.selection, result.resolution)


def _changed(current: dict | None, target: dict, key: str, value=lambda s, key: s.get(key)
             ) -> dict | None:
    before, after = (value(current, key) if current else None), value(target, key)
    return None if before == after else {"from": before, "to": after}


def changes(current: dict | None, target: dict) -> dict:
    """What applying `target` over `current` changes: the release source, the version's
    parts (image tags, chart versions, values profile, the config bundle's digest) and the
    branch Flux tracks (git)."""
    before = current["images"] if current else {}
    images = [{"name": name, "from": before.get(name), "to": target["images"].get(name)}
              for name in alga.IMAGES if before.get(name) != target["images"].get(name)]
    charts_before, charts_after = (current or {}).get("charts", {}), target.get("charts", {})
    charts = [{"name": name, "from": charts_before.get(name), "to": charts_after.get(name)}
              for name in sorted(set(charts_before) | set(charts_after))
              if charts_before.get(name) != charts_after.get(name)]
    backwards = current is not None and (version_key(target["release_version"])
                                         < version_key(current["release_version"]))
    reason = confirmation_reason(current, target["channel"], backwards, target)
    return {"source": _changed(current, target, "", lambda s, _: source.origin(s)),
            "images": images, "charts": charts,
            "values_profile": _changed(current, target, "values_profile"),
            "config_digest": _changed(current, target, "config",
                                      lambda s, key: (s.get(key) or {}).get("digest")),
            "branch": _changed(current, target, "repo_branch"), "backwards": backwards,
            "needs_confirmation": reason is not None, "confirmation_reason": reason}


def confirmation_reason(current: dict | None, channel: str, backwards: bool,
                        target: dict | None = None) -> str | None:
    reasons = []
    if channel in channels.TESTING_CHANNELS and (current is None or current["channel"] != channel):
        reasons.append(NIGHTLY_REASON)
    if current is not None and target is not None and current["source"] != target["source"]:
        reasons.append(f"the release source changes from {current['source']} "
                       f"({source.origin(current)}) to {target['source']} "
                       f"({source.origin(target)}): Flux's source in the cluster is replaced")
    if backwards:
        reasons.append(f"release {target['release_version']} is older than the installed "
                       f"{current['release_version']}: going back is not tested, and fails if "
                       "the newer release already changed the database")
    return "; ".join(reasons) or None


def needs_apply(root: Path | None, current: dict | None, target: dict, own_id: str) -> bool:
    """Whether applying would change anything: the channel names something else, or the
    newest apply began changing the cluster and has not finished (applying again does)."""
    if current is None or _without_time(current) != _without_time(target):
        return True
    applies = [e for e in history.entries(root) if e["action"] == "apply" and e["id"] != own_id]
    return bool(applies) and applies[0]["result"] in ("running", "failed", "interrupted") \
        and applies[0]["step"] not in (None, "preflight")


def _without_time(selection: dict) -> dict:
    return {key: value for key, value in selection.items() if key != "selected_at"}
