"""The Status entry's text, for both console modes: the collector's status.json in plain
words (the web status page's tiers, blockers and next step), or before its first snapshot,
what the install state says."""

from pathlib import Path

from host.core import state
from host.setup.progress import describe

ROLLUP = {
    "setup_required": "Setup required",
    "installing": "Installing",
    "failed_action_required": "Action required",
    "ready_to_log_in": "Ready to log in",
    "ready_with_background_issues": "Ready to log in, with background issues",
    "fully_healthy": "Fully healthy",
}
# The web status page's ladder, in words for people who do not run the cluster.
TIERS = (
    ("platform", "Platform", "the appliance's system services"),
    ("core", "Core", "database and core services"),
    ("bootstrap", "Bootstrap", "first-run setup of the app"),
    ("login", "Login", "you can log in to Alga"),
    ("background", "Background", "email, workflows and other background services"),
    ("fully_healthy", "Fully healthy", "everything is running"),
)


def lines(root: Path | None) -> list[str]:
    status = state.read(state.STATUS, root)
    if status is None:
        return ["No status yet: the status collector reports within a minute of setup.",
                "What the install says:", "",
                *describe(state.read(state.INSTALL_STATE, root),
                          state.read(state.PREFLIGHT_REPORT, root))]
    rollup = status["rollup"]
    shown = [f"{ROLLUP[rollup['state']]} (as of {status['collected_at']})"]
    shown += [line for line in (rollup["message"], rollup["next_action"] and
                                f"Next: {rollup['next_action']}") if line]
    shown += ["", "Steps to a working Alga:"]
    for key, title, meaning in TIERS:
        tier = status["tiers"][key]
        shown.append(f"  [{tier['state']:^8}] {title} ({meaning})")
        if not tier["ready"] and tier["reason"]:
            shown.append(f"             {tier['reason']}")
    shown += ["", "Problems:" if status["blockers"] else "Problems: none."]
    for blocker in status["blockers"]:
        effect = "blocks login" if blocker["blocks_login"] else "login still works"
        shown += [f"  {blocker['severity']} ({effect}): {blocker['reason']}",
                  f"    Next: {blocker['next_action']}"]
    return shown
