"""Run one setup phase: the entry point every phase unit calls.

Takes the setup lock, records this process as the run's owner (host/setup/recovery.py
tells an interrupted run by an owner that is gone), skips a phase that already succeeded
with the same inputs, records running / succeeded / failed (with the failure record) in
the install state, and logs to /var/log/alga-appliance/<phase>.log. The exit status is
what systemd uses to stop the chain.
"""

import hashlib
import json
from pathlib import Path

from host.core import failures, paths, runlock, state
from host.core.version import __version__
from host.setup import timing
from host.setup.phases import PHASES, Phase, by_name
from host.setup.phases.context import PhaseContext

EXIT_FAILED = 1
EXIT_BUSY = 75  # EX_TEMPFAIL: another setup or update holds the lock


def fresh_install_state() -> dict:
    return {"status": "pending", "current_phase": None, "updated_at": state.timestamp(),
            "request_id": None, "phases": {p.name: _pending() for p in PHASES}}


def _pending() -> dict:
    return {"state": "pending", "started_at": None, "finished_at": None, "last_action": None,
            "failure": None}


def inputs_digest(phase: Phase, root: Path | None, kubeconfig: str) -> str:
    """Identifies what the phase would act on: its input files, the cluster and the code
    version."""
    digest = hashlib.sha256(f"{phase.name} {__version__} {kubeconfig}\n".encode())
    for source in phase.reads:
        digest.update(f"{source.filename}\n".encode())
        digest.update(_acted_on(source, root))
    return digest.hexdigest()


def _acted_on(source: state.StateFile, root: Path | None) -> bytes:
    """What of `source` the install phases act on. Not the admin's credentials: they are
    the credentials unit's, and their hash has a new salt on every submission, which must
    not make a resumed setup run its finished phases again."""
    path = source.path(root)
    if not path.exists():
        return b"<absent>"
    if source is not state.SETUP_INPUTS:
        return path.read_bytes()
    document = {key: value for key, value in state.read(source, root).items() if key != "admin"}
    return json.dumps(document, sort_keys=True).encode()


def _save(install: dict, root: Path | None) -> None:
    install["updated_at"] = state.timestamp()
    state.write(state.INSTALL_STATE, install, root)


def run_phase(name: str, root: Path | None = None,
              kubeconfig: str = paths.K3S_KUBECONFIG) -> int:
    phase = by_name(name)
    root = paths.host_root(root)
    with runlock.held(root):
        install = state.read(state.INSTALL_STATE, root) or fresh_install_state()
        # This process owns the run from now on; once the chain settles nobody does.
        install["owner"] = runlock.owner()
        record = install["phases"].setdefault(name, _pending())
        digest = inputs_digest(phase, root, kubeconfig)
        last = phase is PHASES[-1]
        chain_status = {"status": "succeeded" if last else "running",
                        "current_phase": None if last else name}
        if record["state"] in ("succeeded", "skipped") and record.get("inputs_digest") == digest:
            record.update(state="skipped", last_action="inputs unchanged since it succeeded")
            install.update(chain_status)
            if last:
                install.pop("owner")
            _save(install, root)
            return 0
        record.update(state="running", started_at=state.timestamp(), finished_at=None,
                      failure=None, last_action="starting")
        record.pop("inputs_digest", None)
        install.update(status="running", current_phase=name)
        _save(install, root)
        ctx = PhaseContext(name, root, install, kubeconfig, lambda: _save(install, root))
        try:
            phase.entry_point(ctx)
        except Exception as error:  # every failure is described and recorded, then reported
            ctx.log(f"failed: {error}")
            record.update(state="failed", finished_at=state.timestamp(), failure={
                **failures.failure_record(error, phase.category),
                "last_action": record["last_action"] or "starting",
                "log_excerpt": failures.log_excerpt(ctx.operation.lines),
                "support_command": failures.SUPPORT_COMMAND})
            install["status"] = "failed"
            install.pop("owner")
            _save(install, root)
            return EXIT_FAILED
        record.update(state="succeeded", finished_at=state.timestamp(), inputs_digest=digest)
        install.update(chain_status, durations=timing.learned(install, name, record))
        if last:
            install.setdefault("completed_at", record["finished_at"])
            install.pop("owner")
        _save(install, root)
        return 0
