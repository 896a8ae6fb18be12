"""The setup phases, in chain order (host/setup/chain.py): one module each, with the state
files it reads (their contents decide whether a re-run can skip it) and its entry point."""

from collections.abc import Callable
from dataclasses import dataclass

from host.core import state
from host.setup import chain
from host.setup.phases import dns, flux, k3s, preflight, release
from host.setup.phases.context import PhaseContext

MODULES = {"preflight": preflight, "dns": dns, "k3s": k3s, "flux": flux, "release": release}


@dataclass(frozen=True)
class Phase:
    name: str
    category: str  # the failure category of an error the phase did not classify itself
    reads: tuple[state.StateFile, ...]
    entry_point: Callable[[PhaseContext], None]


PHASES: tuple[Phase, ...] = tuple(
    Phase(step.name, step.category, MODULES[step.name].READS, MODULES[step.name].execute)
    for step in chain.CHAIN)


def by_name(name: str) -> Phase:
    for phase in PHASES:
        if phase.name == name:
            return phase
    raise KeyError(f"no phase {name!r}; phases: {', '.join(chain.NAMES)}")
