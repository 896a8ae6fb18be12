"""The setup questions the console asks, as data: the same answers, defaults and warnings
as the web wizard (ui-static/index.html), in the same order."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.core import sshkeys, state
from host.net import endpoints
from host.releases import source
from host.releases.channels import CHANNELS
from host.setup.inputs import (
    PASSWORD_RULE,
    InputErrors,
    as_answers,
    default_answers,
    parse_setup_inputs,
)

NIGHTLY_WARNING = ("Nightly builds are untested. Choose nightly only for a test system, or "
                   "when Alga support directs you to.")
DNS_WARNING = ("If your network uses Active Directory-integrated or split-horizon DNS, public "
               "servers cannot resolve your internal names, and the app may not reach your "
               "mail or identity servers. Keep the network's resolvers unless you know they "
               "fail.")
SSH_PASSWORD_WARNING = ("SSH will accept the admin password from anywhere that reaches this "
                        "machine: prefer SSH keys, and allow this only on a trusted network.")
REVIEW_NOTE = ("Setup sets the admin password and SSH keys first, then checks the network "
               "(preflight). Nothing else on this machine changes unless every check passes.")
# Choices that are not answers themselves: they decide which answers are asked for.
USE_PROXY, USE_OVERRIDES = "use_proxy", "use_overrides"


@dataclass(frozen=True)
class Question:
    field: str  # the answer's name (host/inputs.py FIELDS), or USE_PROXY / USE_OVERRIDES
    title: str
    hint: str = ""
    choices: tuple[str, ...] = ()  # empty: free text
    warning_when: str | None = None  # show `warning` when this choice is picked
    warning: str = ""
    asked_when: Callable[[dict], bool] = lambda answers: True
    secret: bool = False  # typed without echo, never shown, taken exactly as typed
    lines: bool = False  # several lines, one item each (SSH keys)
    # When this answer is refused, ask again from this field (a confirmation that does not
    # match: the password may be the mistyped one).
    retry_from: str = ""


QUESTIONS = (
    Question("channel", "Release channel", "stable is recommended; nightly is for testing, "
             "or when Alga support asks", choices=CHANNELS, warning_when="nightly",
             warning=NIGHTLY_WARNING),
    Question("app_url", "App address: the URL or hostname users will open",
             "for example https://psa.example.com"),
    Question("dns_mode", "DNS", "system: this network's resolvers (recommended); custom: "
             "servers you name", choices=("system", "custom"), warning_when="custom",
             warning=DNS_WARNING),
    Question("dns_servers", "DNS servers, separated by commas", "for example 8.8.8.8,8.8.4.4",
             asked_when=lambda a: a.get("dns_mode") == "custom"),
    Question(USE_PROXY, "Does this network reach the internet through an HTTP proxy?",
             choices=("no", "yes")),
    Question("proxy_url", "Proxy URL", "for example http://proxy.example.com:3128",
             asked_when=lambda a: a.get(USE_PROXY) == "yes"),
    Question("proxy_user", "Proxy user (leave empty if the proxy asks for none)",
             asked_when=lambda a: a.get(USE_PROXY) == "yes"),
    Question("proxy_password", "Proxy password",
             "what you type is not shown, and is taken exactly as typed",
             asked_when=lambda a: a.get(USE_PROXY) == "yes" and bool(a.get("proxy_user")),
             secret=True),
    Question("no_proxy", "Also bypass the proxy for (optional, commas)",
             "local and cluster addresses always bypass it",
             asked_when=lambda a: a.get(USE_PROXY) == "yes"),
    Question("admin_password", "Admin password: for the console shell and SSH login",
             f"{PASSWORD_RULE}; what you type is not shown", secret=True),
    Question("admin_password_confirm", "Admin password again",
             asked_when=lambda a: bool(a.get("admin_password")), secret=True,
             retry_from="admin_password"),
    Question("ssh_authorized_keys", "SSH public keys for the admin account (optional)",
             "one key per line, as in a .pub file, for example ssh-ed25519 AAAA... you@laptop",
             lines=True),
    Question("ssh_password_login", "Allow SSH login with the admin password?",
             "no is recommended: SSH then takes only the keys above",
             choices=("no", "yes"), warning_when="yes", warning=SSH_PASSWORD_WARNING),
    Question(USE_OVERRIDES, "Support overrides (only when Alga support gives you a release "
             "source, a pinned release or a branch)?", choices=("no", "yes")),
    Question("release_source", "Release source",
             "oci://<registry>/<repository>[:<version>|@sha256:<digest>] or a git repository URL",
             asked_when=lambda a: a.get(USE_OVERRIDES) == "yes"),
    Question("branch", "Branch (git sources only)",
             asked_when=lambda a: a.get(USE_OVERRIDES) == "yes"),
)


def index_of(field: str) -> int:
    return next(i for i, question in enumerate(QUESTIONS) if question.field == field)


def defaults(node_ip: str) -> dict:
    """What an empty form means, as the wizard shows it."""
    answers = default_answers(node_ip)
    return {**answers, "ssh_password_login": _yes_no(answers["ssh_password_login"]),
            USE_PROXY: "no", USE_OVERRIDES: "no"}


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def api_answers(entered: dict) -> dict:
    """The answers as the API takes them: only what the chosen options ask for, and no
    empty optional text (as the web wizard sends them)."""
    out = {}
    for question in QUESTIONS:
        value = entered.get(question.field, "")
        if question.field in (USE_PROXY, USE_OVERRIDES) or not question.asked_when(entered):
            continue
        if value or question.field in ("channel", "app_url", "dns_mode", "dns_servers",
                                       "proxy_url"):
            out[question.field] = value
    return out


def errors_for(field: str, entered: dict, node_ip: str, stored: dict | None,
               admin_user: str) -> list[str]:
    """The validation messages for `field` given everything entered so far and the last
    setup's inputs (`stored`, whose proxy password and admin password hash an empty answer
    keeps)."""
    try:
        parse_setup_inputs(api_answers(entered), node_ip, stored, admin_user=admin_user)
    except InputErrors as exc:
        return [e.message for e in exc.errors if e.field == field]
    return []


def review_lines(inputs: dict, resolvers: list[str], root: Path | None,
                 admin_user: str) -> list[tuple[str, str]]:
    """What setup will use, label and value; never a password or its hash."""
    dns = inputs["dns"]
    proxy = inputs["proxy"]
    releases = source.configured(inputs, endpoints.load(root), root)
    admin = inputs["admin"]
    return [
        ("Channel", "nightly (testing)" if inputs["channel"] == "nightly" else "stable"),
        ("App address", inputs["app_url"]),
        ("DNS", f"custom servers: {', '.join(dns['servers'])}" if dns["mode"] == "custom"
         else f"this network's resolvers ({', '.join(resolvers) or 'none detected'})"),
        ("Proxy", _proxy_line(proxy) if proxy else "none: direct connection"),
        ("Admin account", f"{admin_user}, admin password: set"),
        *_key_lines(admin["ssh_authorized_keys"]),
        ("SSH password", "allowed (keys and password)" if admin["ssh_password_login"]
         else "off (keys only)"),
        ("Release source", f"{releases.reference} ({releases.origin})"),
        ("Support overrides", ", ".join(f"{k}: {v}" for k, v in inputs["overrides"].items())
         or "none"),
    ]


def _key_lines(keys: list[str]) -> list[tuple[str, str]]:
    """One line per key, as `ssh-keygen -l` shows it: the fingerprint names the key."""
    if not keys:
        return [("SSH keys", "none")]
    shown = [sshkeys.parse(key).describe() for key in keys]
    return [("SSH keys" if number == 0 else "", line) for number, line in enumerate(shown)]


def _proxy_line(proxy: dict) -> str:
    return proxy["url"] + (f" as {proxy['user']} (password hidden)" if "user" in proxy else "")


def current_answers(root: Path | None, defaults: dict) -> dict:
    """The last setup's answers (to edit after a failure), else the defaults."""
    inputs = state.read(state.SETUP_INPUTS, root)
    if not inputs:
        return dict(defaults)
    answers = as_answers(inputs)
    answers[USE_PROXY] = "yes" if inputs["proxy"] else "no"
    answers[USE_OVERRIDES] = "yes" if inputs["overrides"] else "no"
    answers["ssh_password_login"] = _yes_no(answers["ssh_password_login"])
    return answers
