"""The setup phases, declared once: the units run them, the UI lists them, in this order.

Each phase names the failure category it maps to, whether a retry is safe, the state
files it reads (their contents decide whether a re-run can skip it) and writes, and one
entry point. The k3s, Flux and release phases plug in here.
"""

from collections.abc import Callable
from dataclasses import dataclass

from host import endpoints, preflight, state
from host.failures import PhaseFailure


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    category: str
    retry_safe: bool
    reads: tuple[state.StateFile, ...]
    writes: tuple[state.StateFile, ...]
    run: Callable[["PhaseRun"], None]  # noqa: F821 - host.engine.PhaseRun


def run_preflight(run) -> None:
    inputs = state.read(state.SETUP_INPUTS, run.root)
    if inputs is None:
        raise PhaseFailure("network", "setup has not been submitted yet",
                           "complete setup in the web UI or on the console", retry_safe=True)
    run.action("checking DNS, GitHub, GHCR, the proxy and the channel")
    result = preflight.run_checks(inputs, endpoints.load(run.root), run.root)
    for check in result.report["checks"]:
        run.log(f"{check['status']:4} {check['id']}: {check['message']}")
    if result.failure is not None:
        failure = result.failure
        raise PhaseFailure(failure.category, f"{failure.check_id}: {failure.message}",
                           failure.remediation, retry_safe=True)
    run.action("recording the selected release")
    state.write(state.SELECTED_RELEASE, result.selected_release, run.root)


PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Preflight checks", "network", True,
          reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(state.PREFLIGHT_REPORT, state.SELECTED_RELEASE), run=run_preflight),
)


def by_name(name: str) -> Phase:
    for phase in PHASES:
        if phase.name == name:
            return phase
    raise KeyError(f"no phase {name!r}; phases: {', '.join(p.name for p in PHASES)}")
