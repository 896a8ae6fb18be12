"""Setup input validation: the one place the web UI and the console check answers.

`parse_setup_inputs` takes the answers as entered (form fields, all text) and returns the
normalised setup-inputs document, or raises InputErrors naming every bad field and what
it allows. Its output always satisfies schemas/setup-inputs.schema.json.
"""

import re
import unicodedata
from urllib.parse import urlsplit

from host.core.validation import (
    FieldError,
    InputErrors,
    IPAddress,
    ip_address,
    not_a_resolver,
    validate,
)
from host.releases.channels import CHANNELS, DEFAULT_CHANNEL
from host.releases.oci_source import Reference

APP_PORT = 3000  # the Alga server listens on the host network on this port
# k3s's default pod and service networks; always kept off the proxy.
CLUSTER_CIDRS = ("10.42.0.0/16", "10.43.0.0/16")
ALWAYS_NO_PROXY = ("localhost", "127.0.0.1", "::1", *CLUSTER_CIDRS, ".svc", ".cluster.local")
MAX_RESOLVERS = 3
FIELDS = ("channel", "app_url", "dns_mode", "dns_servers", "proxy_url", "proxy_user",
          "proxy_password", "no_proxy", "release_source", "branch")
# Control characters (C0, DEL, C1), lone surrogates and line or paragraph separators: none
# can be typed into a password field, and each would break a header or a log line.
_CONTROL_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)"
                       r"(\.([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*$")
_SCP_REPO = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")
_BRANCH = re.compile(r"^(?![/-])(?!.*(\.\.|//|@\{|\.lock$|/$))[A-Za-z0-9._/-]+$")


class _Invalid(Exception):
    pass


def parse_setup_inputs(raw: dict, node_ip: str, stored: dict | None = None) -> dict:
    """The normalised setup-inputs document for `raw` answers on the node at `node_ip`.
    An empty proxy password keeps the one `stored` (the last setup's inputs) holds for the
    same proxy URL and user: forms never get the password back to re-send it."""
    unknown = sorted(set(raw) - set(FIELDS))
    errors = [FieldError(k, f"unknown field; allowed: {', '.join(FIELDS)}") for k in unknown]
    parsers = {
        "channel": lambda: _channel(raw.get("channel")),
        "app_url": lambda: _app_url(raw.get("app_url"), node_ip),
        "dns": lambda: _dns(raw.get("dns_mode"), raw.get("dns_servers")),
        "proxy": lambda: _proxy(raw, node_ip, (stored or {}).get("proxy")),
        "overrides": lambda: _overrides(raw.get("release_source"), raw.get("branch")),
    }
    document = {}
    for key, parse in parsers.items():
        try:
            document[key] = parse()
        except _Invalid as exc:
            field, message = exc.args
            errors.append(FieldError(field, message))
    if errors:
        raise InputErrors(errors)
    validate(document, "setup-inputs.schema.json", name="setup inputs", source="parsed answers")
    return document


def as_answers(document: dict) -> dict:
    """The answers that parse back to `document` with it as the stored inputs (what the
    forms show when editing): all but the proxy password, which is never shown."""
    dns, proxy, overrides = document["dns"], document["proxy"], document["overrides"]
    answers = {"channel": document["channel"], "app_url": document["app_url"],
               "dns_mode": dns["mode"], "dns_servers": ", ".join(dns.get("servers", []))}
    if proxy:
        answers["proxy_url"] = proxy["url"]
        answers["proxy_user"] = proxy.get("user", "")
        answers["no_proxy"] = ", ".join(proxy["no_proxy"])
    answers.update(overrides)
    return answers


def without_password(document: dict) -> dict:
    """`document` as it may be shown: the proxy password (writeOnly) left out."""
    proxy = document["proxy"]
    if not proxy or "password" not in proxy:
        return document
    return {**document, "proxy": {k: v for k, v in proxy.items() if k != "password"}}


def password_stored(document: dict | None) -> bool:
    """Whether `document` holds a proxy password an empty answer would keep."""
    return bool(document and document["proxy"] and document["proxy"].get("password"))


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(field, "must be text")
    return value.strip()


def _channel(value: object) -> str:
    channel = _text(value, "channel").lower() or DEFAULT_CHANNEL
    if channel not in CHANNELS:
        raise _Invalid("channel", "must be stable (recommended) or nightly (testing)")
    return channel


def _app_url(value: object, node_ip: str) -> str:
    text = _text(value, "app_url")
    if not text:
        return _origin("http", node_ip, APP_PORT)
    if "://" not in text:
        text = f"http://{text}:{APP_PORT}" if ":" not in text else f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _Invalid("app_url", f"is not a URL or hostname ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise _Invalid("app_url", "must be an http:// or https:// URL, or a hostname")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _Invalid("app_url", "must be scheme, host and port only")
    if parts.path not in ("", "/"):
        raise _Invalid("app_url", "must not have a path: Alga is served at the root")
    return _origin(parts.scheme.lower(), _host(parts.hostname or "", "app_url"),
                   _port(port, "app_url"))


def _origin(scheme: str, host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{shown}" + ("" if port in (None, default) else f":{port}")


def _host(text: str, field: str) -> str:
    """A host name in its ASCII form (full-width and other compatibility characters
    normalised by NFKC, international names as IDNA punycode), or an IP address without a
    zone. Invisible characters are refused, not stripped: what was typed is not what the
    admin sees."""
    if any(unicodedata.category(c) == "Cf" for c in text):
        raise _Invalid(field, "contains an invisible character (zero-width or formatting): "
                              "type the host name again")
    address = _ip(text, field)
    if address is not None:
        return text.lower()
    try:
        host = unicodedata.normalize("NFKC", text).encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise _Invalid(field, "needs a valid hostname or IP address (a label is empty, "
                              "longer than 63 characters or not a valid name)") from exc
    if not _HOSTNAME.match(host):
        raise _Invalid(field, "needs a valid hostname or IP address")
    return host


def _ip(text: str, field: str) -> IPAddress | None:
    """`text` as an IP address, or None when it is not one; a zone (fe80::1%eth0) is refused:
    it names an interface of the machine it was typed on, which k3s and Flux cannot use."""
    try:
        return ip_address(text)
    except ValueError as exc:
        raise _Invalid(field, f"{exc}, or a host name") from exc


def _port(port: int | None, field: str) -> int | None:
    if port == 0:
        raise _Invalid(field, "port 0 cannot be connected to: give a port from 1 to 65535")
    return port


def _dns(mode: object, servers: object) -> dict:
    mode = _text(mode, "dns_mode").lower() or "system"
    listed = _list(servers, "dns_servers")
    if mode == "system":
        if listed:
            raise _Invalid("dns_servers", "are only used with dns_mode custom")
        return {"mode": "system"}
    if mode != "custom":
        raise _Invalid("dns_mode", "must be system (DHCP or the host's resolvers) or custom")
    if not 1 <= len(listed) <= MAX_RESOLVERS:
        raise _Invalid("dns_servers", f"custom DNS needs 1 to {MAX_RESOLVERS} resolver addresses")
    addresses = []
    for item in listed:
        address = _ip(item, "dns_servers")
        if address is None:
            raise _Invalid("dns_servers", f"{item!r} is not an IPv4 or IPv6 address")
        unusable = not_a_resolver(address)
        if unusable:
            raise _Invalid("dns_servers", f"{item} is {unusable}; give the network's resolvers")
        if str(address) not in addresses:
            addresses.append(str(address))
    return {"mode": "custom", "servers": addresses}


def _list(value: object, field: str) -> list[str]:
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise _Invalid(field, "must be a list of text")
        items = value
    else:
        items = re.split(r"[,\s]+", _text(value, field))
    return [item.strip() for item in items if item.strip()]


def _proxy(raw: dict, node_ip: str, stored: dict | None) -> dict | None:
    text = _text(raw.get("proxy_url"), "proxy_url")
    user, password = _credentials(raw.get("proxy_user"), raw.get("proxy_password"))
    extra = _list(raw.get("no_proxy"), "no_proxy")
    if not text:
        for field, given in (("proxy_user", user), ("proxy_password", password),
                             ("no_proxy", extra)):
            if given:
                raise _Invalid(field, "is only used together with a proxy URL")
        return None
    url = _proxy_url(text)
    for item in extra:
        if not re.fullmatch(r"[A-Za-z0-9.*:/_\[\]-]+", item):
            raise _Invalid("no_proxy", f"{item!r} is not a host, domain, IP or CIDR")
    entries = []
    for item in [*ALWAYS_NO_PROXY, node_ip, *extra]:
        if item not in entries:
            entries.append(item)
    proxy = {"url": url, "no_proxy": entries}
    if not user:
        if password:
            raise _Invalid("proxy_user", "is needed with a proxy password")
        return proxy
    if not password and stored and (stored["url"], stored.get("user")) == (url, user):
        password = stored["password"]
    if not password:
        raise _Invalid("proxy_password", "is needed with a proxy user")
    return {**proxy, "user": user, "password": password}


def _credentials(user: object, password: object) -> tuple[str, str]:
    """The proxy user (trimmed) and password (exactly as typed: spaces may be part of it).
    Messages never repeat what was typed."""
    user = _text(user, "proxy_user")
    if password is None:
        password = ""
    if not isinstance(password, str):
        raise _Invalid("proxy_password", "must be text")
    if ":" in user:
        raise _Invalid("proxy_user", "must not contain ':' (proxy authentication cannot "
                                     "carry it)")
    for field, value in (("proxy_user", user), ("proxy_password", password)):
        if any(unicodedata.category(c) in _CONTROL_CATEGORIES for c in value):
            raise _Invalid(field, "must not contain control characters or line breaks")
    return user, password


def _proxy_url(text: str) -> str:
    """scheme://host:port, lower case; credentials in the URL are refused (they have fields
    of their own, so no percent-encoding rules apply to them)."""
    if "@" in text:
        raise _Invalid("proxy_url", "must not contain a user or password: give them in the "
                                    "proxy user and proxy password fields")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _Invalid("proxy_url", f"is not a URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port is None:
        raise _Invalid("proxy_url", "must look like http(s)://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _Invalid("proxy_url", "must be scheme, host and port only")
    host = _host(parts.hostname, "proxy_url")
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown}:{_port(port, 'proxy_url')}"


def _overrides(release_source: object, branch: object) -> dict:
    overrides = {}
    reference = _text(release_source, "release_source")
    if reference:
        overrides["release_source"] = normalise_release_source(reference)
    name = _text(branch, "branch")
    if name:
        if name.startswith("-"):
            raise _Invalid("branch", "must not start with '-' (git would read it as an option)")
        if not _BRANCH.match(name):
            raise _Invalid("branch", "is not a valid git branch name")
        overrides["branch"] = name
    return overrides


def normalise_release_source(text: str) -> str:
    """An OCI reference as given, or the HTTPS form of a git repository URL."""
    if text.lower().startswith("oci://"):
        try:
            Reference.parse(text)
        except ValueError as exc:
            raise _Invalid("release_source", "must be oci://<registry>/<repository> (lower "
                           "case), optionally with :<tag> or @sha256:<digest>") from exc
        return text
    return normalise_repo_url(text)


def normalise_repo_url(text: str) -> str:
    """HTTPS form of a git URL; scp-style `git@host:owner/repo(.git)` is converted."""
    scp = _SCP_REPO.match(text)
    if scp and "://" not in text:
        text = f"https://{scp['host']}/{scp['path']}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _Invalid("release_source", f"is not a URL ({exc})") from exc
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise _Invalid("release_source", "must be oci://<registry>/<repository>, an "
                       "https:// git repository URL or git@host:owner/repo")
    if "@" in parts.netloc:
        raise _Invalid("release_source", "must not contain a user or password: the "
                       "appliance reads the release repository without credentials")
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    if path.count("/") < 2 or parts.query or parts.fragment:
        raise _Invalid("release_source", "must name a repository, like "
                       "https://github.com/owner/repo")
    if any(c.isspace() or c == "@" or unicodedata.category(c) in _CONTROL_CATEGORIES
           for c in path):
        raise _Invalid("release_source", "the repository path must not contain spaces, "
                       "'@' or control characters")
    host = _host(parts.hostname, "release_source")
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}" + ("" if port is None else f":{_port(port, 'release_source')}") \
        + path
