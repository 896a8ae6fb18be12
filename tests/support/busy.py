"""The state files of a setup run or an update under way, as host/core/busy.py reads them,
for the busy rule's tests (tests/web/test_busy.py, the nspawn security tier)."""

from host.core import state
from host.setup import chain

STARTED = "2026-12-01T09:58:00Z"


def install(status: str) -> dict:
    """An install state of `status` whose phases have not run (or all succeeded)."""
    phases = {name: {"state": "succeeded" if status == "succeeded" else "pending",
                     "started_at": None, "finished_at": None, "last_action": None,
                     "failure": None} for name in chain.NAMES}
    return {"status": status, "current_phase": None, "updated_at": "2026-12-01T10:00:00Z",
            "phases": phases}


def update_running(root, action: str = "apply", channel: str = "stable",
                   step: str | None = "waiting for Flux") -> None:
    """Setup completed, and an update (or check) recorded as running."""
    release = {"source": "git", "channel": "stable", "release_version": "1.0",
               "app_version": "1.0", "repo_branch": "release/1.0.0"}
    state.write(state.INSTALL_STATE, install("succeeded"), root)
    state.write(state.UPDATE_HISTORY, {"entries": [{
        "id": "20261201T095800Z-0a1b2c3d", "request_id": None, "action": action, "who": "cli",
        "channel": channel, "started_at": STARTED, "finished_at": None, "result": "running",
        "step": step, "from": release, "to": None, "changes": None, "duration_s": None,
        "failure": None}]}, root)
