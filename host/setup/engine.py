"""Run one setup phase: the entry point every phase unit calls.

Takes the setup lock, skips a phase that already succeeded with the same inputs,
records running / succeeded / failed (with the classified failure) in the install
state, and logs to /var/log/alga-appliance/<phase>.log. The exit status is what
systemd uses to stop the chain.
"""

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from host.cluster.kube import K3S_KUBECONFIG
from host.core import paths, state
from host.core.failures import classify
from host.core.version import __version__
from host.setup.phases import PHASES, Phase, by_name

LOCK_FILE = "setup.lock"
EXIT_FAILED = 1
EXIT_BUSY = 75  # EX_TEMPFAIL: another setup or update holds the lock


class SetupBusy(Exception):
    pass


@dataclass
class PhaseRun:
    """What a running phase may do: say what it is doing, log, and know the root."""

    phase: Phase
    root: Path
    install: dict
    kubeconfig: str
    log_lines: list[str] = field(default_factory=list)

    def action(self, text: str) -> None:
        self.install["phases"][self.phase.name]["last_action"] = text
        self.log(f"→ {text}")
        _save(self.install, self.root)

    def log(self, line: str) -> None:
        self.log_lines.append(line)
        append_log(self.root, f"{self.phase.name}.log", line)


def append_log(root: Path, name: str, line: str) -> None:
    """A timestamped line in the log file `name` under paths.LOG_DIR."""
    log_path = root / paths.LOG_DIR.lstrip("/") / name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fp:
        fp.write(f"{state.timestamp()} {line}\n")


@contextlib.contextmanager
def setup_lock(root: Path | None = None) -> Iterator[None]:
    """Only one setup or update at a time, across processes."""
    path = state.host_root(root) / paths.STATE_DIR.lstrip("/") / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fp:
        try:
            fcntl.flock(fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fp.seek(0)
            holder = fp.read().strip() or "unknown"
            raise SetupBusy(f"another setup or update is running ({holder}); wait for it to "
                            "finish, then retry") from exc
        fp.seek(0)
        fp.truncate()
        fp.write(f"pid {os.getpid()}\n")
        fp.flush()
        yield


def fresh_install_state() -> dict:
    return {"status": "pending", "current_phase": None, "updated_at": state.timestamp(),
            "phases": {p.name: _pending() for p in PHASES}}


def _pending() -> dict:
    return {"state": "pending", "started_at": None, "finished_at": None, "last_action": None,
            "failure": None}


def inputs_digest(phase: Phase, root: Path | None, kubeconfig: str) -> str:
    """Identifies what the phase would act on: its input files, the cluster and the code
    version."""
    digest = hashlib.sha256(f"{phase.name} {__version__} {kubeconfig}\n".encode())
    for source in phase.reads:
        path = source.path(root)
        digest.update(f"{source.filename}\n".encode())
        digest.update(path.read_bytes() if path.exists() else b"<absent>")
    return digest.hexdigest()


def _save(install: dict, root: Path | None) -> None:
    install["updated_at"] = state.timestamp()
    state.write(state.INSTALL_STATE, install, root)


def run_phase(name: str, root: Path | None = None, kubeconfig: str = K3S_KUBECONFIG) -> int:
    phase = by_name(name)
    root = state.host_root(root)
    with setup_lock(root):
        install = state.read(state.INSTALL_STATE, root) or fresh_install_state()
        record = install["phases"].setdefault(name, _pending())
        digest = inputs_digest(phase, root, kubeconfig)
        last = phase is PHASES[-1]
        chain_status = {"status": "succeeded" if last else "running",
                        "current_phase": None if last else name}
        if record["state"] in ("succeeded", "skipped") and record.get("inputs_digest") == digest:
            record.update(state="skipped", last_action="inputs unchanged since it succeeded")
            install.update(chain_status)
            _save(install, root)
            return 0
        record.update(state="running", started_at=state.timestamp(), finished_at=None, failure=None,
                      last_action="starting")
        record.pop("inputs_digest", None)
        install.update(status="running", current_phase=name)
        _save(install, root)
        run = PhaseRun(phase, root, install, kubeconfig)
        try:
            phase.run(run)
        except Exception as error:  # every failure is classified and recorded, then reported
            run.log(f"failed: {error}")
            record.update(state="failed", finished_at=state.timestamp(), failure=classify(
                error, phase_category=phase.category, phase_retry_safe=phase.retry_safe,
                last_action=record["last_action"] or "starting",
                log_text="\n".join(run.log_lines)))
            install["status"] = "failed"
            _save(install, root)
            return EXIT_FAILED
        record.update(state="succeeded", finished_at=state.timestamp(), inputs_digest=digest)
        install.update(chain_status)
        if last:
            install.setdefault("completed_at", record["finished_at"])
        _save(install, root)
        return 0
