"""`alga-appliance console`: pick the mode, then set up, resume an interrupted setup, or
follow a setup already running."""

import os
import sys
from pathlib import Path

from host.console.plain import PlainConsole
from host.console.questions import current_answers, defaults
from host.core import state
from host.net import addresses
from host.net.resolvers import system as system_resolvers
from host.setup import recovery
from host.setup import request as setup_request
from host.setup.progress import failure_view, resumable, settled

SERIAL_LINES = ("/dev/ttyS", "/dev/ttyUSB", "/dev/ttyAMA", "/dev/hvc")
SERIAL_TERMS = ("vt100", "vt102", "vt220", "linux")


def plain_wanted(term: str, tty: str | None) -> bool:
    """Line prompts for a dumb terminal, no terminal, or a serial line's basic TERM."""
    if tty is None or term in ("", "dumb", "unknown"):
        return True
    return tty.startswith(SERIAL_LINES) and term in SERIAL_TERMS


def start(root: Path | None, force_plain: bool) -> int:
    node_ip = addresses.node_ip()
    resolvers = system_resolvers(root)
    tty = os.ttyname(sys.stdin.fileno()) if sys.stdin.isatty() else None
    plain = force_plain or plain_wanted(os.environ.get("TERM", ""), tty)
    install = recovery.view(state.read(state.INSTALL_STATE, root), root)
    busy = setup_request.why_busy(install, root)
    resume = resumable(install) and setup_request.why_not_resumable(install, root) is None
    entered = current_answers(root, defaults(node_ip))
    if plain:
        console = PlainConsole(root, node_ip, resolvers)
        if busy and not settled(install):  # running, or a request waits
            console.say(f"Setup is already under way ({busy}); following it.")
            return console.follow(None)
        if busy:
            for line in failure_view(install, state.read(state.PREFLIGHT_REPORT, root)):
                console.say(line)
            console.say(f"\nSetup cannot start from here: {busy}.")
            return 1
        if resume and console.offer_resume(install):
            return console.resume()
        return console.run(entered)
    from host.console.tui import SetupTui  # urwid only for the full-screen mode
    return SetupTui(root, node_ip, resolvers, entered, busy, install, resume).run()


def start_network(root: Path | None, force_plain: bool, window: int) -> int:
    """The Network entry on its own (the console menu calls the same screens)."""
    from host.console import network_screen
    tty = os.ttyname(sys.stdin.fileno()) if sys.stdin.isatty() else None
    if force_plain or plain_wanted(os.environ.get("TERM", ""), tty):
        return network_screen.run_plain(PlainConsole(root, addresses.node_ip(), []), window)
    from host.console.network_tui import NetworkTui  # urwid only for the full-screen mode
    return NetworkTui(root, window).run()
