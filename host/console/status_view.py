"""The Status entry's text, for both console modes: the collector's status.json as the web
status page shows it (its rollup, tiers, blockers and next steps, in the snapshot's own
words, with each blocker's Kubernetes detail), or before its first snapshot, what the
install state says."""

from pathlib import Path

from host.core import state, words
from host.setup.progress import describe


def lines(root: Path | None) -> list[str]:
    status = state.read(state.STATUS, root)
    if status is None:
        return ["No status yet: the status collector reports within a minute of setup.",
                "What the install says:", "",
                *describe(state.read(state.INSTALL_STATE, root),
                          state.read(state.PREFLIGHT_REPORT, root))]
    rollup = status["rollup"]
    shown = [f"{rollup['label']} (as of {status['collected_at']})"]
    shown += [line for line in (rollup["message"], rollup["next_action"] and
                                f"Next: {rollup['next_action']}") if line]
    failure = status["app_failure"]  # the app stage past its limits: what it waited for
    if failure:
        shown.append(f"Last action: {failure['last_action']}")
        shown += [f"  {line}" for line in failure["log_excerpt"].splitlines()]
    shown += ["", "Steps to a working Alga:"]
    for key in words.TIERS:  # the ladder's order (status.json's keys are sorted)
        tier = status["tiers"][key]
        shown.append(f"  [{tier['state']:^8}] {tier['title']} ({tier['meaning']})")
        if not tier["ready"]:  # 80x24: a ready tier's reason only on the status page
            shown.append(f"             {tier['reason']}")
    shown += ["", "Problems:" if status["blockers"] else "Problems: none."]
    for blocker in status["blockers"]:
        effect = "blocks login" if blocker["blocks_login"] else "login still works"
        shown += [f"  {blocker['severity']} ({effect}): {blocker['reason']}",
                  f"    Next: {blocker['next_action']}"]
        if blocker["detail"]:
            shown.append(f"    Detail: {detail(blocker['detail'])}")
    return shown


def detail(kubernetes: dict) -> str:
    """A blocker's Kubernetes detail on one line, as the status page shows it unfolded."""
    return ": ".join(part for part in (f"{kubernetes['kind']} {kubernetes['name']}",
                                        kubernetes["reason"], kubernetes["message"]) if part)
