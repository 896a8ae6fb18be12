"""`alga-appliance console`: the console menu (setup, status, support bundle, token, shell)
above the banner's text, full screen or in plain lines; on tty1 and the serial console it
is the alga-appliance-console@ service, run as root instead of a login prompt.

Whatever goes wrong comes back to the menu with a short message: the service's terminal
must never fall through to a root prompt (and if the process dies, systemd restarts it)."""

import os
import signal
import sys
import time
from pathlib import Path

from host.console import actions, banner, menu, qr, status_view
from host.console.plain import PlainConsole, PlainMenu
from host.console.questions import current_answers, defaults
from host.core import state, token
from host.net import addresses, netchange
from host.net.resolvers import system as system_resolvers
from host.setup import diagnostics, recovery
from host.setup import request as setup_request
from host.setup.progress import failure_view, resumable, settled
from host.support import request as support_request

SERIAL_LINES = ("/dev/ttyS", "/dev/ttyUSB", "/dev/ttyAMA", "/dev/hvc")
SERIAL_TERMS = ("vt100", "vt102", "vt220", "linux")
ERROR_PAUSE_SECONDS = 1  # after a failure, so a fault that repeats never spins the CPU
EXIT_CANCELLED = 130


def plain_wanted(term: str, tty: str | None) -> bool:
    """Line prompts for a dumb terminal, no terminal, or a serial line's basic TERM."""
    if tty is None or term in ("", "dumb", "unknown"):
        return True
    return tty.startswith(SERIAL_LINES) and term in SERIAL_TERMS


def start(root: Path | None, force_plain: bool, service: bool) -> int:
    """The menu until Exit; `service`: the tty service's, which never exits by itself."""
    if service:  # Ctrl-\ and Ctrl-Z would leave the terminal without its console
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    tty = os.ttyname(sys.stdin.fileno()) if sys.stdin.isatty() else None
    plain = force_plain or plain_wanted(os.environ.get("TERM", ""), tty)
    if plain:
        ui = PlainMenu(root)
    else:
        from host.console.tui import MenuTui  # urwid only for the full-screen mode
        ui = MenuTui(root, bool(tty) and tty.removeprefix("/dev/tty").isdigit(), service)
    return serve(root, ui, plain, service)


def serve(root: Path | None, ui, plain: bool, service: bool) -> int:
    note = ""
    while True:
        try:
            now = menu.situation(root, service)
            chosen = ui.choose(menu.offered(now), banner.now(root), note)
            note = ""
            if chosen == "exit":
                return 0
            if chosen is not None:  # None: redraw
                note = act(chosen, root, ui, plain)
        except KeyboardInterrupt:
            note = "Interrupted: back at the menu."
        except EOFError:  # the terminal went away (a serial hangup): systemd starts anew
            return 0
        except Exception as exc:  # any: never a traceback on the console
            if isinstance(exc, state.StateFileInvalid) and not service:
                raise  # run from a shell: the one line every command prints for it, exit 1
            note = (f"That did not work: {exc or type(exc).__name__}. Nothing else changed; "
                    "try again, and if it repeats make a support bundle.")
            time.sleep(ERROR_PAUSE_SECONDS)


def act(chosen: str, root: Path | None, ui, plain: bool) -> str:
    """Carry out the menu entry `chosen`; a note for the menu (empty: none)."""
    if chosen in ("setup", "progress"):
        return "Setup cancelled: nothing was started." \
            if run_setup(root, ui, plain) == EXIT_CANCELLED else ""
    if chosen == "status":
        ui.page("Status", status_view.lines(root))
    elif chosen == "network":
        run_network(root, plain, netchange.CONFIRM_SECONDS)
    elif chosen == "bundle":
        try:
            request_id = support_request.submit(root)
        except support_request.Busy as exc:
            return f"No new support bundle: {exc}."
        ui.watch("Support bundle", lambda: actions.bundle_progress(root, request_id))
    elif chosen == "diagnostics":
        try:
            request_id = diagnostics.submit(root)
        except diagnostics.Busy as exc:
            return f"No new network diagnostics: {exc}."
        ui.watch("Network diagnostics", lambda: diagnostics.progress_lines(root, request_id))
    elif chosen == "token":
        return token_screen(root, ui)
    elif chosen == "shell":
        ui.before_login()
        actions.run_login()
    return ""


def token_screen(root: Path | None, ui) -> str:
    """The token, its setup link and the link's QR code (where the terminal can draw it),
    then whether to rotate it."""
    try:
        shown, setup_link = banner.token_lines(token.read_token(root))
        code = []
        if setup_link and qr.can_draw(ui.encoding):
            code = qr.terminal_lines(setup_link)
        elif setup_link:
            shown.append("No QR code on this terminal (plain text only): open the link or "
                         "type the token.")
        ui.page("Token", shown, code)
        shown = []
    except token.NoValidToken as exc:
        shown = [f"There is no valid token: {exc.problem}. Rotate makes a new one.", ""]
    shown += ["Rotating makes a new token: the old one stops working at once, in every",
              "browser that used it."]
    if not ui.confirm("Token", shown, "Rotate the token now?"):
        return ""
    new = token.for_people(actions.rotate_token(root))
    return f"New setup token: {new} (the old one no longer works)."


def run_setup(root: Path | None, ui, plain: bool) -> int:
    """The console setup: follow a setup already under way, resume an interrupted one, or
    ask the questions and start one."""
    node_ip = addresses.node_ip()
    resolvers = system_resolvers(root)
    install = recovery.view(state.read(state.INSTALL_STATE, root), root)
    busy = setup_request.why_busy(install, root)
    resume = resumable(install) and setup_request.why_not_resumable(install, root) is None
    entered = current_answers(root, defaults(node_ip))
    if plain:
        console = PlainConsole(root, node_ip, resolvers, ui.lines.stdin, ui.lines.stdout)
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
    from host.console.tui import SetupTui
    return SetupTui(root, node_ip, resolvers, entered, busy, install, resume).run()


def start_network(root: Path | None, force_plain: bool, window: int) -> int:
    """The Network entry on its own (`alga-appliance network edit`)."""
    tty = os.ttyname(sys.stdin.fileno()) if sys.stdin.isatty() else None
    return run_network(root, force_plain or plain_wanted(os.environ.get("TERM", ""), tty),
                       window)


def run_network(root: Path | None, plain: bool, window: int) -> int:
    """The Network screens: choose, review, apply, keep or roll back within `window` s."""
    from host.console import network_screen
    if plain:
        return network_screen.run_plain(PlainConsole(root, addresses.node_ip(), []), window)
    from host.console.network_tui import NetworkTui  # urwid only for the full-screen mode
    return NetworkTui(root, window).run()
