"""The setup questions the console asks, as data: the same answers, defaults and warnings
as the web wizard (ui-static/index.html), in the same order."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.core import state
from host.net import endpoints
from host.releases import source
from host.releases.channels import CHANNELS
from host.setup.inputs import InputErrors, as_answers, parse_setup_inputs

NIGHTLY_WARNING = ("Nightly builds are untested. Choose nightly only for a test system, or "
                   "when Alga support directs you to.")
DNS_WARNING = ("If your network uses Active Directory-integrated or split-horizon DNS, public "
               "servers cannot resolve your internal names, and the app may not reach your "
               "mail or identity servers. Keep the network's resolvers unless you know they "
               "fail.")
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
    Question(USE_OVERRIDES, "Support overrides (only when Alga support gives you a release "
             "source, a pinned release or a branch)?", choices=("no", "yes")),
    Question("release_source", "Release source",
             "oci://<registry>/<repository>[:<version>|@sha256:<digest>] or a git repository URL",
             asked_when=lambda a: a.get(USE_OVERRIDES) == "yes"),
    Question("branch", "Branch (git sources only)",
             asked_when=lambda a: a.get(USE_OVERRIDES) == "yes"),
)


def defaults(node_ip: str) -> dict:
    """What an empty form means, as the wizard shows it."""
    return {"channel": "stable", "app_url": parse_setup_inputs({}, node_ip)["app_url"],
            "dns_mode": "system", USE_PROXY: "no", USE_OVERRIDES: "no"}


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


def errors_for(field: str, entered: dict, node_ip: str, stored: dict | None) -> list[str]:
    """The validation messages for `field` given everything entered so far and the last
    setup's inputs (`stored`, whose proxy password an empty answer keeps)."""
    try:
        parse_setup_inputs(api_answers(entered), node_ip, stored)
    except InputErrors as exc:
        return [e.message for e in exc.errors if e.field == field]
    return []


def review_lines(inputs: dict, resolvers: list[str], root: Path | None
                 ) -> list[tuple[str, str]]:
    dns = inputs["dns"]
    proxy = inputs["proxy"]
    releases = source.configured(inputs, endpoints.load(root), root)
    return [
        ("Channel", "nightly (testing)" if inputs["channel"] == "nightly" else "stable"),
        ("App address", inputs["app_url"]),
        ("DNS", f"custom servers: {', '.join(dns['servers'])}" if dns["mode"] == "custom"
         else f"this network's resolvers ({', '.join(resolvers) or 'none detected'})"),
        ("Proxy", _proxy_line(proxy) if proxy else "none: direct connection"),
        ("Release source", f"{releases.reference} ({releases.origin})"),
        ("Support overrides", ", ".join(f"{k}: {v}" for k, v in inputs["overrides"].items())
         or "none"),
    ]


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
    return answers
