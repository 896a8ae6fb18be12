"""The setup chain: each phase's name, title and failure category, in the order the units
run them, declared once.

The engine builds its phases from this list, a test checks the units' Requires= chain
against it, the web API serves it to the UI (GET /api/setup) and the console reads it.
It is light on purpose: the web process imports it without the phases' code.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    name: str
    title: str  # what the UI and the console call it
    category: str  # the failure category of an error the phase did not classify itself


CHAIN = (
    Step("preflight", "Preflight checks", "network"),
    Step("dns", "DNS for k3s", "dns"),
    Step("k3s", "Install k3s", "k3s"),
    Step("flux", "Install Flux", "flux"),
    Step("release", "Point Flux at the Alga release", "release-source"),
)
NAMES = tuple(step.name for step in CHAIN)


def title(name: str) -> str:
    """The phase's title; an unknown name (a newer state file) stands for itself."""
    return next((step.title for step in CHAIN if step.name == name), name)


def category(name: str) -> str:
    """The failure category of the phase `name` (an unknown one: the first phase's)."""
    return next((step.category for step in CHAIN if step.name == name), CHAIN[0].category)


def ordered(phases: dict) -> list[tuple[str, dict]]:
    """`phases` (name -> record, as the install state keeps them) in chain order."""
    return sorted(phases.items(), key=lambda item: NAMES.index(item[0])
                  if item[0] in NAMES else len(NAMES))
