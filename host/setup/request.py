"""Starting setup: the one entry point the web API and the console share.

`submit` validates the answers with host/inputs.py, refuses while setup runs, while a
request already waits, or after a failure that is not safe to retry, and spools the request
for systemd (alga-appliance-setup-request.path), which starts the same unit chain whichever
way the answers came in.
"""

from dataclasses import dataclass
from pathlib import Path

from host.core import paths, state
from host.core import spool as requests_spool
from host.setup.inputs import parse_setup_inputs


class SetupBusy(Exception):
    """Setup cannot start now; the message says why and what to do."""


@dataclass(frozen=True)
class Submitted:
    inputs: dict  # the normalised setup inputs the answers become
    submitted_at: str
    install: dict | None  # the install state when accepted: the previous run's


def submit(answers: dict, node_ip: str, root: Path | None = None) -> Submitted:
    """Spool `answers` for systemd. Raises InputErrors or SetupBusy."""
    inputs = parse_setup_inputs(answers, node_ip)
    install = state.read(state.INSTALL_STATE, root)
    busy = why_busy(install, root)
    if busy:
        raise SetupBusy(busy)
    submitted = state.timestamp()
    try:
        requests_spool.submit(paths.SETUP_REQUEST,
                              {"answers": answers, "submitted_at": submitted}, root)
    except requests_spool.AlreadyPending as exc:
        raise SetupBusy("a setup request is already waiting to start") from exc
    return Submitted(inputs, submitted, install)


def why_busy(install: dict | None, root: Path | None = None) -> str | None:
    """Why a new setup cannot start now, or None when it can."""
    if install and install["status"] == "running":
        return f"setup is already running ({install['current_phase']})"
    if requests_spool.spool_file(paths.SETUP_REQUEST, root).exists():
        return "a setup request is already waiting to start"
    for name, phase in (install or {}).get("phases", {}).items():
        failure = phase["failure"]
        if phase["state"] == "failed" and failure and not failure["retry_safe"]:
            return (f"the {name} phase failed in a way that is not safe to retry from here; "
                    f"next step: {failure['next_step']}")
    return None
