"""Setup input validation: the one place the web UI and the console check answers.

`parse_setup_inputs` takes the answers as entered (form fields, all text) and returns the
normalised setup-inputs document, or raises InputErrors naming every bad field and what
it allows. Its output always satisfies schemas/setup-inputs.schema.json.
"""

import re
import unicodedata
from urllib.parse import urlsplit

from host.core import passwords, paths, sshkeys
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
          "proxy_password", "no_proxy", "release_source", "branch", "admin_password",
          "admin_password_confirm", "ssh_authorized_keys", "ssh_password_login")
# The admin password's rule; shown in both wizards before they submit.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
PASSWORD_RULE = (f"at least {MIN_PASSWORD} characters, not containing the admin account's "
                 "name, not one of the commonest passwords, not one character repeated")
MAX_SSH_KEYS = 100
# The commonest passwords of 12 characters or more (shorter ones fail the length rule),
# compared in lower case.
COMMON_PASSWORDS = frozenset((
    "123456789012", "1234567890123", "12345678901234", "123456789123", "098765432109",
    "111111111111", "000000000000", "123123123123", "password1234", "password12345",
    "password123!", "passwordpassword", "p@ssw0rd1234", "p@ssword1234", "qwerty123456",
    "qwertyuiop12", "qwertyuiop123", "qwertyuiopasdf", "1q2w3e4r5t6y", "1qaz2wsx3edc",
    "zaq12wsxcde3", "abc123456789", "abcdefghijkl", "abcd12345678", "iloveyou1234",
    "letmein12345", "welcome12345", "welcome@1234", "admin1234567", "administrator",
    "administrator1", "changeme1234", "changemenow1", "trustno11234", "football1234",
    "monkey123456", "dragon123456", "sunshine1234", "princess1234", "baseball1234",
    "superman1234", "starwars1234", "computer1234", "internet1234", "correcthorsebatterystaple",
    "algaappliance", "alga-appliance", "alga-appliance1", "algapsa12345",
))
# Control characters (C0, DEL, C1), lone surrogates and line or paragraph separators: none
# can be typed into a password field, and each would break a header or a log line.
_CONTROL_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)"
                       r"(\.([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*$")
_SCP_REPO = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")
_BRANCH = re.compile(r"^(?![/-])(?!.*(\.\.|//|@\{|\.lock$|/$))[A-Za-z0-9._/-]+$")


class _Invalid(Exception):
    pass


def parse_setup_inputs(raw: dict, node_ip: str, stored: dict | None = None, *,
                       password_hash: str | None = None,
                       admin_user: str = paths.DEFAULT_ADMIN_USER) -> dict:
    """The normalised setup-inputs document for `raw` answers on the node at `node_ip`.
    An empty proxy password keeps the one `stored` (the last setup's inputs) holds for the
    same proxy URL and user: forms never get the password back to re-send it. The admin
    password is hashed here; an empty one keeps `password_hash` (what a spooled request
    carries instead of the password), else the stored hash."""
    unknown = sorted(set(raw) - set(FIELDS))
    errors = [FieldError(k, f"unknown field; allowed: {', '.join(FIELDS)}") for k in unknown]
    parsers = {
        "channel": lambda: _channel(raw.get("channel")),
        "app_url": lambda: _app_url(raw.get("app_url"), node_ip),
        "dns": lambda: _dns(raw.get("dns_mode"), raw.get("dns_servers")),
        "proxy": lambda: _proxy(raw, node_ip, (stored or {}).get("proxy")),
        "overrides": lambda: _overrides(raw.get("release_source"), raw.get("branch")),
        "admin": lambda: _admin(raw, password_hash or (stored or {}).get("admin", {}).get(
            "password_hash"), admin_user),
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


def default_answers(node_ip: str) -> dict:
    """What an empty form means: the answers the wizards start from."""
    return {"channel": DEFAULT_CHANNEL, "app_url": _app_url("", node_ip), "dns_mode": "system",
            "dns_servers": "", "ssh_authorized_keys": "", "ssh_password_login": False}


def as_answers(document: dict) -> dict:
    """The answers that parse back to `document` with it as the stored inputs (what the
    forms show when editing): all but the proxy and admin passwords, never shown."""
    dns, proxy, overrides = document["dns"], document["proxy"], document["overrides"]
    answers = {"channel": document["channel"], "app_url": document["app_url"],
               "dns_mode": dns["mode"], "dns_servers": ", ".join(dns.get("servers", []))}
    if proxy:
        answers["proxy_url"] = proxy["url"]
        answers["proxy_user"] = proxy.get("user", "")
        answers["no_proxy"] = ", ".join(proxy["no_proxy"])
    answers.update(overrides)
    admin = document.get("admin", {})
    answers["ssh_authorized_keys"] = "\n".join(admin.get("ssh_authorized_keys", []))
    answers["ssh_password_login"] = admin.get("ssh_password_login", False)
    return answers


def without_password(document: dict) -> dict:
    """`document` as it may be shown: the proxy password and the admin password's hash
    (both writeOnly) left out."""
    shown = dict(document)
    proxy = document["proxy"]
    if proxy and "password" in proxy:
        shown["proxy"] = {k: v for k, v in proxy.items() if k != "password"}
    if "admin" in document:
        shown["admin"] = {k: v for k, v in document["admin"].items() if k != "password_hash"}
    return shown


def admin_password_stored(document: dict | None) -> bool:
    """Whether `document` holds an admin password hash an empty answer would keep."""
    return bool(document and document.get("admin", {}).get("password_hash"))


def spooled_answers(answers: dict) -> dict:
    """`answers` as they may be written down: without the admin password and its
    confirmation (the spooled request carries their hash instead)."""
    return {k: v for k, v in answers.items()
            if k not in ("admin_password", "admin_password_confirm")}


def password_stored(document: dict | None) -> bool:
    """Whether `document` holds a proxy password an empty answer would keep."""
    return bool(document and document["proxy"] and document["proxy"].get("password"))


def _admin(raw: dict, kept_hash: str | None, admin_user: str) -> dict:
    password = _password(raw.get("admin_password"), raw.get("admin_password_confirm"),
                         admin_user)
    if password:
        try:
            password_hash = passwords.sha512_crypt(password)
        except passwords.HashFailed as exc:
            raise _Invalid("admin_password", str(exc)) from exc
    elif kept_hash and passwords.SHA512_CRYPT.match(kept_hash):
        password_hash = kept_hash
    else:
        raise _Invalid("admin_password", f"is required: choose the password of the admin "
                                         f"account {admin_user} ({PASSWORD_RULE})")
    return {"password_hash": password_hash,
            "ssh_authorized_keys": _ssh_keys(raw.get("ssh_authorized_keys")),
            "ssh_password_login": _flag(raw.get("ssh_password_login"), "ssh_password_login")}


def _password(password: object, confirmation: object, admin_user: str) -> str:
    """The admin password exactly as typed (spaces may be part of it), or "" for none;
    messages never repeat it. The confirmation is checked here, for the API as for both
    wizards, so the one message for a mismatch comes from one place."""
    for field, value in (("admin_password", password), ("admin_password_confirm", confirmation)):
        if value is not None and not isinstance(value, str):
            raise _Invalid(field, "must be text")
    password, confirmation = password or "", confirmation or ""
    if not password:
        if confirmation:
            raise _Invalid("admin_password", "is empty but its confirmation is not: type the "
                                             "password in both fields")
        return ""
    if any(unicodedata.category(c) in _CONTROL_CATEGORIES for c in password):
        raise _Invalid("admin_password", "must not contain control characters or line breaks")
    if len(password) > MAX_PASSWORD:
        raise _Invalid("admin_password", f"is longer than {MAX_PASSWORD} characters: choose a "
                                         "shorter one")
    if len(password) < MIN_PASSWORD:
        raise _Invalid("admin_password", f"is too short: use at least {MIN_PASSWORD} "
                                         "characters (a few unrelated words make a good one)")
    if len(set(password)) == 1:
        raise _Invalid("admin_password", "is one character repeated: choose a password "
                                         "nobody could guess")
    if admin_user.lower() in password.lower():
        raise _Invalid("admin_password", f"contains the account's name ({admin_user}): "
                                         "choose a password that does not")
    if password.lower() in COMMON_PASSWORDS:
        raise _Invalid("admin_password", "is one of the commonest passwords: choose one "
                                         "nobody could guess")
    if confirmation != password:
        raise _Invalid("admin_password_confirm", "does not match the password: type the same "
                                                 "password in both fields")
    return password


def _ssh_keys(value: object) -> list[str]:
    """Public key lines as authorized_keys holds them (comments kept), in the order given,
    each key once. Text holds one key per line; in a list, an item is one line."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        lines = value.replace("\r\n", "\n").split("\n")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        lines = value
    else:
        raise _Invalid("ssh_authorized_keys", "must be text, one public key per line")
    keys, blobs = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            key = sshkeys.parse(line)
        except sshkeys.BadKey as exc:
            raise _Invalid("ssh_authorized_keys", f"key {number} {exc}") from exc
        if key.blob not in blobs:
            blobs.add(key.blob)
            keys.append(key.line)
    if len(keys) > MAX_SSH_KEYS:
        raise _Invalid("ssh_authorized_keys", f"has {len(keys)} keys; give at most "
                                              f"{MAX_SSH_KEYS}")
    return keys


def _flag(value: object, field: str) -> bool:
    """A checkbox or a console yes/no: true, false, or text saying one of them."""
    if isinstance(value, bool):
        return value
    text = _text(value, field).lower()
    if text in ("", "no", "false", "off", "0"):
        return False
    if text in ("yes", "true", "on", "1"):
        return True
    raise _Invalid(field, "must be yes or no")


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
