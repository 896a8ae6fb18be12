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
    # How long the phase usually takes (documented in the admin guide): progress estimates
    # what remains from it until this appliance has run the phase itself.
    typical_seconds: int


CHAIN = (
    Step("preflight", "Preflight checks", "network", 60),
    Step("dns", "DNS for k3s", "dns", 15),
    Step("k3s", "Install k3s", "k3s", 240),
    Step("flux", "Install Flux", "flux", 180),
    Step("release", "Point Flux at the Alga release", "release-source", 60),
)
NAMES = tuple(step.name for step in CHAIN)


def title(name: str) -> str:
    """The phase's title; an unknown name (a newer state file) stands for itself."""
    return next((step.title for step in CHAIN if step.name == name), name)


def typical_seconds(name: str) -> int:
    """How long the phase `name` usually takes (an unknown one: a minute)."""
    return next((step.typical_seconds for step in CHAIN if step.name == name), 60)


def category(name: str) -> str:
    """The failure category of the phase `name` (an unknown one: the first phase's)."""
    return next((step.category for step in CHAIN if step.name == name), CHAIN[0].category)


def ordered(phases: dict) -> list[tuple[str, dict]]:
    """`phases` (name -> record, as the install state keeps them) in chain order."""
    return sorted(phases.items(), key=lambda item: NAMES.index(item[0])
                  if item[0] in NAMES else len(NAMES))
