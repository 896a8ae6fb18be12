"""What a channel would install, compared with what is installed: the plan an update
check shows and an apply follows.

The channel and its release manifest are resolved from one ref by the preflight checks an
update depends on (as setup resolves them), stopping at the first that fails.
"""

from dataclasses import dataclass
from pathlib import Path

from host.cluster import alga
from host.core import paths, state
from host.core.failures import OperationFailed
from host.net import endpoints
from host.releases import channels, git_source
from host.setup import preflight
from host.update import history
from host.update.history import REFUSED_CATEGORY

WHO = ("web", "cli")
COMPARED = ("channel", "repo_url", "release_version", "repo_branch", "app_version",
            "release_branch", "values_profile", "images")
# The preflight checks an app update depends on: resolution, the proxy, the release source,
# the registry and the clock (TLS). Not the k3s and Flux downloads, disks or ports.
PREFLIGHT_CHECKS = ("dns.", "proxy", "github.channel", "github.manifest", "ghcr", "clock")
RESOLVE_CHECKS = ("github.channel", "github.manifest")
NIGHTLY_REASON = ("nightly builds are for testing, or when support asks for them: they are "
                  "not release-tested, and going back to stable may mean an older release")


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
    try:
        target = resolve(root, operation, setup_inputs(root), channel, RESOLVE_CHECKS)
    except Exception as error:  # every failure is described and recorded
        return operation.failed(error, "github-release-source")
    operation.record.update(to=history.summary(target.selection),
                            changes=changes(current, target.selection))
    pending = needs_apply(root, current, target.selection, operation.record["id"])
    return operation.finished("update_available" if pending else "up_to_date")


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


def resolve(root: Path | None, operation, inputs: dict, channel: str,
            ids: tuple[str, ...]) -> Target:
    """Run the preflight checks whose ids start with one of `ids` (they include the channel
    and its manifest, from one ref), failing at the first that fails; what the channel
    names."""
    result = preflight.run_checks({**inputs, "channel": channel}, endpoints.load(root),
                                  paths.host_root(root), only=ids, stop_at_first_fail=True,
                                  write_report=False, log=operation.log)
    if result.failure is not None:
        failure = result.failure
        raise OperationFailed(failure.category, f"{failure.check_id}: {failure.message}; "
                              "nothing was changed", failure.remediation)
    if git_source.unknown_fields(result.channel_file):
        operation.log("channel file has fields this version ignores: "
                      f"{', '.join(git_source.unknown_fields(result.channel_file))}")
    return Target(result.selection, result.manifest)


def changes(current: dict | None, target: dict) -> dict:
    before = current["images"] if current else {}
    images = [{"name": name, "from": before.get(name), "to": target["images"][name]}
              for name in alga.IMAGES if before.get(name) != target["images"][name]]
    branch = None
    if current is None or current["repo_branch"] != target["repo_branch"]:
        branch = {"from": current["repo_branch"] if current else None,
                  "to": target["repo_branch"]}
    backwards = current is not None and (version_key(target["release_version"])
                                         < version_key(current["release_version"]))
    reason = confirmation_reason(current, target["channel"], backwards, target)
    return {"images": images, "branch": branch, "backwards": backwards,
            "needs_confirmation": reason is not None, "confirmation_reason": reason}


def confirmation_reason(current: dict | None, channel: str, backwards: bool,
                        target: dict | None = None) -> str | None:
    reasons = []
    if channel in channels.TESTING_CHANNELS and (current is None or current["channel"] != channel):
        reasons.append(NIGHTLY_REASON)
    if backwards:
        reasons.append(f"release {target['release_version']} is older than the installed "
                       f"{current['release_version']}: going back is not tested, and fails if "
                       "the newer release already changed the database")
    return "; ".join(reasons) or None


def needs_apply(root: Path | None, current: dict | None, target: dict, own_id: str) -> bool:
    """Whether applying would change anything: the channel names something else, or the
    newest apply began changing the cluster and has not finished (applying again does)."""
    if current is None or any(current[key] != target[key] for key in COMPARED):
        return True
    applies = [e for e in history.entries(root) if e["action"] == "apply" and e["id"] != own_id]
    return bool(applies) and applies[0]["result"] in ("running", "failed", "interrupted") \
        and applies[0]["step"] not in (None, "preflight")


def version_key(version: str) -> tuple:
    """Release versions in order: 1.0 < 1.0.1 < 1.1-nightly.2 < 1.1 (a suffix sorts before
    its release, numeric parts by number, as semver orders pre-releases)."""
    core, _, suffix = version.partition("-")
    numbers = [int(part) for part in core.split(".")]
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in suffix.split("."))
    return (*numbers, *[0] * (3 - len(numbers)), 0 if suffix else 1, parts if suffix else ())
