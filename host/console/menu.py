"""The console menu's entries as data: what each is called and when it is offered. The
full-screen (tui.py) and line (plain.py) menus draw them; app.py carries out the chosen
one, the same way for both."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.core import state
from host.setup import recovery
from host.setup import request as setup_request
from host.setup.progress import settled


@dataclass(frozen=True)
class Situation:
    """What the menu is drawn for."""
    setup: str  # "open" (required, failed or interrupted), "running" or "done"
    service: bool  # the console service on a tty: it never exits, so no Exit entry


@dataclass(frozen=True)
class Entry:
    id: str
    label: str
    offered: Callable[[Situation], bool]


ENTRIES = (
    Entry("setup", "Set up here", lambda s: s.setup == "open"),
    Entry("progress", "Follow setup progress", lambda s: s.setup == "running"),
    Entry("status", "Status", lambda s: s.setup == "done"),
    # Before setup too: on a VLAN without DHCP the setup address comes from here.
    Entry("network", "Network", lambda s: True),
    Entry("bundle", "Support bundle", lambda s: True),
    Entry("token", "Token", lambda s: True),
    # Read-only: the network checks may run beside setup, and help most when it fails.
    Entry("diagnostics", "Network diagnostics", lambda s: True),
    Entry("shell", "Shell (log in with the admin password)", lambda s: True),
    Entry("exit", "Exit", lambda s: not s.service),
)


def situation(root: Path | None, service: bool) -> Situation:
    install = recovery.view(state.read(state.INSTALL_STATE, root), root)
    if install is not None and install["status"] == "succeeded":
        return Situation("done", service)
    if setup_request.why_busy(install, root) and not settled(install):
        return Situation("running", service)  # running, or a request waits for its unit
    return Situation("open", service)


def offered(now: Situation) -> list[Entry]:
    return [entry for entry in ENTRIES if entry.offered(now)]
