"""The console's Network entry: choose a wired interface, DHCP or static, the fields (with
the current settings as defaults), review, apply, then keep it within the window or it is
rolled back. Two modes with one flow: `run_plain` (line prompts, serial consoles) and
network_tui.NetworkTui (urwid, the style of tui.SetupTui). The checks are host.net.netconfig's, the
apply and rollback host.net.netchange's, so the console and `alga-appliance network` agree."""

import select
import time
from pathlib import Path

from host.console import banner
from host.console.plain import Cancelled, PlainConsole
from host.core import paths, state
from host.core.validation import InputErrors
from host.net import addresses, netchange, netconfig

# The questions after the interface, in order: (field, title, hint); static ones only when
# the mode is static.
MODE_QUESTION = ("mode", "Addressing", "dhcp: from the network's DHCP server; static: "
                                       "addresses you give")
STATIC_QUESTIONS = (
    ("ipv4_address", "IPv4 address/prefix", "like 192.0.2.10/24; empty for IPv6 only"),
    ("ipv4_gateway", "IPv4 gateway", "the router, in that subnet; empty for none"),
    ("ipv6_address", "IPv6 address/prefix", "like 2001:db8::10/64; empty for none"),
    ("ipv6_gateway", "IPv6 gateway", "in the subnet, or link-local fe80::...; empty for none"),
    ("dns_servers", "DNS servers", "up to 3, separated by commas"),
)
VLAN_QUESTION = ("vlan", "VLAN id", "1-4094 when the network is a tagged VLAN; empty for none")
CLEAR = "-"  # typed to empty a field that has a default
KEEP_PROMPT = "Keep this configuration? [y/N]"


def describe(interface: netconfig.Interface, settings: dict) -> str:
    now = ", ".join(interface.addresses) or "no address"
    return (f"{interface.name}  link {interface.link}  MAC {interface.mac}\n"
            f"       now: {now}\n       set: {netchange.summary(interface.name, settings)}")


def questions_for(answers: dict) -> list[tuple[str, str, str]]:
    static = STATIC_QUESTIONS if answers.get("mode") == "static" else ()
    return [MODE_QUESTION, *static, VLAN_QUESTION]


def setup_urls(root: Path | None) -> list[str]:
    """Where the setup page is: the static addresses set (an IPv6-only one included, which
    the banner does not list), then the node's IPv4 addresses as the banner shows them."""
    static = [address.split("/")[0] for settings in
              netconfig.read_settings(root)["interfaces"].values()
              for address in settings.get("addresses", [])]
    hosts = dict.fromkeys([*static, *addresses.node_addresses()])
    return [f"http://{f'[{host}]' if ':' in host else host}:{paths.WEB_PORT}/setup"
            for host in hosts]


# --- plain mode -------------------------------------------------------------------------------


def run_plain(console: PlainConsole, window: int = netchange.CONFIRM_SECONDS) -> int:
    """The Network entry in line mode; 0 when a change was kept, 1 when it was rolled back
    or refused, 130 when cancelled before anything changed."""
    waiting = netchange.pending(console.root)
    if waiting:
        console.say(f"A network change is waiting for confirmation: {waiting['summary']}.")
        return _keep_or_roll_back(console, seconds_left(waiting))
    interfaces = netconfig.wired_interfaces(console.root)
    if not interfaces:
        console.say("No wired network interface was found: check the VM's network adapter.")
        return 1
    console.say("Network settings. Enter keeps the [default], '-' empties it, 'back' returns")
    console.say("to the previous question, 'cancel' leaves without changing anything.")
    try:
        chosen = _choose_interface(console, interfaces)
        answers = netconfig.as_answers(
            chosen, netconfig.settings_of(netconfig.read_settings(console.root), chosen))
        settings = _ask_until_valid(console, answers, [i.name for i in interfaces])
        if not _reviewed(console, chosen, settings, window):
            console.say("\nCancelled: nothing was changed.")
            return 130
    except Cancelled:
        console.say("\nCancelled: nothing was changed.")
        return 130
    try:
        change = netchange.apply(chosen, settings, console.root, window)
    except netchange.ChangeRefused as exc:
        console.say(f"Error: {exc}")
        return 1
    console.say(f"\nApplied: {change['summary']}")
    _say_banner_problem(console)
    for url in setup_urls(console.root):
        console.say(f"  The setup page is now at {url}")
    return _keep_or_roll_back(console, seconds_left(change))  # the timer's deadline


def _choose_interface(console: PlainConsole, interfaces: list[netconfig.Interface]) -> str:
    settings = netconfig.read_settings(console.root)
    console.say("\nWired interfaces:")
    for number, interface in enumerate(interfaces, 1):
        wanted = netconfig.settings_of(settings, interface.name)
        console.say(f"  {number}) {describe(interface, wanted)}")
    names = [interface.name for interface in interfaces]
    while True:
        reply = console.ask(f"Interface (number or name) [{names[0]}]: ") or names[0]
        if reply.isdigit() and 1 <= int(reply) <= len(names):
            return names[int(reply) - 1]
        if reply in names:
            return reply
        console.say(f"Error: answer a number from 1 to {len(names)}, or one of: "
                    f"{', '.join(names)}")


def _ask_until_valid(console: PlainConsole, answers: dict, names: list[str]) -> dict:
    """Ask every question, then again each one whose answer is refused, until all pass."""
    _ask(console, answers)
    while True:
        try:
            return netconfig.parse_settings(used_answers(answers), names)[1]
        except InputErrors as exc:
            wrong = {error.field: error.message for error in exc.errors}
        for field, message in wrong.items():
            console.say(f"Error: {field}: {message}")
            answers[field] = ""  # not offered again as the default
        _ask(console, answers, set(wrong))


def used_answers(answers: dict) -> dict:
    """The answers the chosen mode uses (DHCP keeps no static fields)."""
    static = {field for field, _, _ in STATIC_QUESTIONS}
    return {k: v for k, v in answers.items()
            if answers.get("mode") == "static" or k not in static}


def _ask(console: PlainConsole, answers: dict, only: set[str] | None = None) -> None:
    """Ask the questions the chosen mode needs (only those in `only`, when given); the
    static ones come or go as the mode is answered."""
    index = 0
    while True:
        questions = [q for q in questions_for(answers) if only is None or q[0] in only]
        if index >= len(questions):
            return
        field, title, hint = questions[index]
        console.say(f"\n{title}\n  ({hint})")
        choices = "/".join(netconfig.MODES) if field == "mode" else ">"
        reply = console.ask(f"{choices} [{answers.get(field, '')}]: ")
        if reply.lower() == "back":
            index = max(index - 1, 0)
            continue
        answers[field] = "" if reply == CLEAR else reply or answers.get(field, "")
        if field == "mode":  # d or s will do
            typed = answers[field].lower()
            answers[field] = next((m for m in netconfig.MODES if typed and m.startswith(typed)),
                                  typed)
        index += 1


def _reviewed(console: PlainConsole, interface: str, settings: dict, window: int) -> bool:
    console.say(f"\nReview\n  {netchange.summary(interface, settings)}")
    console.say(f"It is applied at once and rolled back unless you keep it within {window} s.")
    while True:
        reply = console.ask("Apply? yes/no [yes]: ").lower() or "yes"
        if reply in ("yes", "y", "no", "n"):
            return reply.startswith("y")


def _keep_or_roll_back(console: PlainConsole, seconds: int) -> int:
    console.write(f"{KEEP_PROMPT} (rolled back in {seconds} s): ")
    reply = _reply_within(console, seconds)
    if reply is None:
        console.say(f"\nNo answer within {seconds} s.")
    if reply is not None and reply.lower() in ("y", "yes"):
        try:
            change = netchange.confirm(console.root)
        except netchange.NothingPending:  # the timer was faster
            console.say("Too late: the change was already rolled back.")
            return 1
        console.say(f"Kept: {change['summary']}")
        _say_banner_problem(console)
        for url in setup_urls(console.root):
            console.say(f"  Setup: {url}")
        return 0
    return _roll_back(console, netchange.TIMED_OUT if reply is None else "not kept at the "
                                                                          "console")


def _roll_back(console: PlainConsole, reason: str) -> int:
    try:
        netchange.rollback(console.root, reason=reason)
        console.say("Rolled back to the previous configuration.")
    except netchange.NothingPending:
        console.say("The change was already rolled back.")
    except netchange.hostcmd.CommandFailed as exc:
        console.say(f"The previous files are back but could not be applied ({exc}): reboot "
                    "to use them.")
    _say_banner_problem(console)
    return 1


def _reply_within(console: PlainConsole, seconds: float) -> str | None:
    """A line typed within `seconds`, or None (also at the end of input)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([console.stdin], [], [], left)[0]:
            line = console.stdin.readline()
            return line.strip() if line else None
    return None


def seconds_left(change: dict) -> int:
    left = (state.moment(change["deadline"]) - state.moment(state.timestamp())).total_seconds()
    return max(int(left), 1)


def _say_banner_problem(console: PlainConsole) -> None:
    problem = banner.refresh(console.root)
    if problem:
        console.say(f"Note: {problem}")
