"""Redaction: the one place every support-bundle member is scrubbed before it enters the
archive, and the report of what that changed (rule, member, count; never a value).

The order is the point. Known values come first, as literals in every form they are
written in (plain, base64, JSON-escaped, percent-encoded): the setup token, the proxy
password, the app's ALGA_AUTH_KEY, the k3s server token and every value read from a
Kubernetes Secret. Known values beat patterns, which come next and catch the secrets
nobody told us about. In JSON members, Kubernetes Secrets keep only their key names, and
fields and env vars named like secrets lose their values, before each string goes through
the same text pass. With a NetworkMap, IP addresses and the site's host names are then
replaced consistently; the mapping stays with the caller, outside the bundle.
"""

import base64
import contextlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

MARKER = "<redacted>"
# Shorter known values would match ordinary words; the patterns still catch them in
# key=value, URL and header form. Longer ones are blobs (Helm release records) that are
# never written anywhere but their own Secret, whose values are dropped anyway.
MIN_KNOWN_VALUE = 6
MAX_KNOWN_VALUE = 16 * 1024
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# What makes a field, env var or header name a secret's name: a word containing one of
# SECRET_PARTS (dbpassword), or ending in one of SECRET_ENDINGS (accesstoken, but not
# tokenizer or author); and last words that make it about a secret instead of one
# (secretName, tokenFile, TOKEN_URL, AWS_ACCESS_KEY_ID, TokenExpired, …).
SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "credential", "apikey",
                "authkey", "privatekey", "accesskey", "signingkey", "encryptionkey")
SECRET_ENDINGS = ("token", "auth", "pwd", "authorization")
REFERENCE_WORDS = frozenset({"name", "ref", "file", "path", "dir", "namespace", "kind",
                             "type", "mode", "id", "url", "uri", "endpoint", "seconds", "ttl",
                             "expiry", "expires", "expired", "error", "failed", "invalid",
                             "missing", "required", "length", "size", "count"})
# Digits separate words, as underscores do: API_KEY_2 is an API key, as API_KEY is.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
# Anything a line rule could match contains one of these, in lower case; most lines contain
# none. (Searching lower-cased text is some seven times faster than ignoring case.)
_TRIGGER = re.compile(r"ls0tls1|://|bearer|gh[pousr]_|github_pat_|eyj|pass|pwd|token|secret"
                      r"|credential|key|auth|\$(?:1|2[aby]|5|6|7|gy|y)\$")
_SECRET_HINT = r"(?i:pass|pwd|token|secret|credential|key|auth)"
_KEY_NAME = rf"(?=[\w.-]{{0,64}}?{_SECRET_HINT})(?P<key>[\w.-]{{1,80}})"
_KEY = rf"(?<![\w.-]){_KEY_NAME}"
_B64 = r"[A-Za-z0-9+/=]"


def is_secret_name(name: str) -> bool:
    """Whether a field, env var or header called `name` holds a secret value:
    DB_PASSWORD, apiKey, ALGA_AUTH_KEY, client-key-data; not secretName, key, KeyError or
    author."""
    words = [word.lower() for word in _WORDS.findall(name)]
    if not words or words[-1] in REFERENCE_WORDS:
        return False
    if any(part in word for word in words for part in SECRET_PARTS) or any(
            word.endswith(SECRET_ENDINGS) for word in words):
        return True
    # A bare "key" is a label selector's or a map's, KeyError an exception's; ALGA_AUTH_KEY,
    # api_key and client-key-data are secrets.
    return len(words) > 1 and (words[-1] == "key" or words[-2:] == ["key", "data"])


@dataclass(frozen=True)
class KnownValue:
    kind: str  # token, proxy-password, alga-auth-key, k3s-token, kubernetes-secret
    value: str


def known_value_forms(value: str) -> set[str]:
    """The ways `value` can be written into a file: as is, base64 (padded or not),
    JSON-escaped, percent-encoded or -decoded."""
    encoded = base64.b64encode(value.encode()).decode()
    forms = {value, encoded, encoded.rstrip("="), json.dumps(value)[1:-1],
             quote(value, safe=""), unquote(value)}
    return {form for form in forms if MIN_KNOWN_VALUE <= len(form) <= MAX_KNOWN_VALUE}


class Report:
    """How often each rule fired in each member; never what it removed."""

    def __init__(self):
        self.hits: dict[str, dict[str, int]] = {}

    def add(self, rule: str, member: str, count: int = 1) -> None:
        members = self.hits.setdefault(rule, {})
        members[member] = members.get(member, 0) + count

    def as_dict(self) -> dict:
        return {rule: {"total": sum(members.values()), "files": dict(sorted(members.items()))}
                for rule, members in sorted(self.hits.items())}


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern
    replace: Callable[[re.Match], str | None]  # the replacement, or None to keep the match


def _replace_group(match: re.Match, *groups: str) -> str | None:
    """The match with the first of `groups` that took part replaced by the marker; None
    when that value is empty or already redacted."""
    for group in groups:
        if match.group(group) is not None:
            value = match.group(group)
            if not value.strip() or MARKER in value:
                return None
            whole, start = match.group(0), match.start()
            return whole[:match.start(group) - start] + MARKER + whole[match.end(group) - start:]
    return None


def _value_of_secret_key(*groups: str) -> Callable[[re.Match], str | None]:
    def replace(match: re.Match) -> str | None:
        return _replace_group(match, *groups) if is_secret_name(match["key"]) else None
    return replace


def _value_of_secret_env(match: re.Match) -> str | None:
    return _replace_group(match, "value") if is_secret_name(match["name"]) else None


def _pem(match: re.Match) -> str:
    label = match["label"] or match["cut"] or match["tail"]
    return f"<redacted PEM {label.strip()}>"


# A whole block; a block cut off by truncation (BEGIN, no END); the end of one whose start
# was cut off. Newlines may be real or escaped (a PEM inside a JSON log line).
PEM_RULE = Rule("pem-block", re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{1,64})-----.*?-----END (?P=label)-----"
    r"|-----BEGIN (?P<cut>[A-Z0-9 ]{1,64})-----"
    rf"(?:\\[nr]|{_B64}|\s|[A-Za-z-]+:[^\n]*\n)*"
    rf"|(?:^|(?<=\\n))(?:[ \t]*{_B64}{{16,}}[ \t]*(?:\\n|\r?\n))+"
    r"[ \t]*-----END (?P<tail>[A-Z0-9 ]{1,64})-----", re.S | re.M), _pem)

# Rules whose matches never span lines (none may match a newline): applied only to the
# lines that contain a trigger, which in a large log are few.
LINE_RULES: tuple[Rule, ...] = (
    # base64 of "-----BEGIN": kubeconfig client-key-data, certificate-authority-data, …
    Rule("base64-pem", re.compile(rf"LS0tLS1CRUdJTi{_B64}*"), lambda match: MARKER),
    Rule("authorization-header", re.compile(
        r"(?i)(?<![\w-])(?:proxy-)?authorization\\*[\"']?[ \t]*[:=][ \t]*\\*[\"'\[]?"
        r"(?:(?:basic|bearer|token|digest|negotiate)[ \t]+)?(?P<value>[^\s\"',;\]\\]+)"),
        lambda match: _replace_group(match, "value")),
    Rule("bearer-token", re.compile(r"(?i)(?<![\w-])bearer[ \t]+(?P<value>[\w.~+/=-]{8,})"),
         lambda match: _replace_group(match, "value")),
    Rule("url-credentials", re.compile(
        r"(?i)(?<![\w+.-])[a-z][a-z0-9+.-]{0,31}://"
        r"(?P<value>[^\s/?#\"'<>\\@]+(?:@[^\s/?#\"'<>\\@]+)*)@"),
        lambda match: _replace_group(match, "value")),
    Rule("github-token", re.compile(
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_\w{20,255})"),
        lambda match: MARKER),
    Rule("jwt", re.compile(r"(?<![\w-])eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}"),
         lambda match: MARKER),
    # A password hash as crypt(3) writes it (/etc/shadow, chpasswd input, the setup inputs):
    # MD5 $1$, bcrypt $2b$, SHA-256 $5$, SHA-512 $6$, scrypt $7$, yescrypt $y$ and $gy$.
    # Anyone holding one can try passwords against it offline.
    Rule("crypt-hash", re.compile(r"(?<![\w$])\$(?:1|2[aby]|5|6|7|gy|y)\$[./A-Za-z0-9$=,]{8,}"),
         lambda match: MARKER),
    # Server=db;User Id=alga;Password=…;  (a value may hold spaces, up to the next ;)
    Rule("connection-string", re.compile(
        r"(?i)(?:(?<=;)|(?<=;[ \t]))(?:password|pwd)[ \t]*=[ \t]*(?P<value>[^;\"'\r\n]*)"
        r"|(?<![\w.-])(?:password|pwd)[ \t]*=[ \t]*(?P<before>[^;\"'\r\n]*)(?=;)"),
        lambda match: _replace_group(match, "value", "before")),
    # "db_password": "…" (also inside JSON that is itself a JSON string: \"…\")
    Rule("secret-field", re.compile(
        rf"(?P<q>\\*\"){_KEY_NAME}(?P=q)[ \t]*:[ \t]*"
        r"(?:(?P=q)(?P<value>(?:[^\"\\\n]|\\.)*?)(?P=q)|(?P<number>-?\d[\d.eE+-]*))"),
        _value_of_secret_key("value", "number")),
    # DB_PASSWORD=…, --token=…, ?access_token=…&
    Rule("secret-field", re.compile(
        rf"{_KEY}[ \t]*=[ \t]*(?:\"(?P<dq>[^\"\n]*)\"|'(?P<sq>[^'\n]*)'|(?P<value>[^\s\"'&;,]+))"),
        _value_of_secret_key("dq", "sq", "value")),
    # password: …  (YAML, logs, headers; to the end of the line or of the enclosing string)
    Rule("secret-field", re.compile(
        rf"{_KEY}[ \t]*:[ \t]*(?:\"(?P<dq>(?:[^\"\\\n]|\\.)*)\"|'(?P<sq>[^'\n]*)'"
        r"|(?P<value>[^\s\"'{}\[\],][^\n\"'{}\[\],]*?))(?=[ \t]*(?:$|[\n,}\]\"]|\\n))", re.M),
        _value_of_secret_key("dq", "sq", "value")),
)

# A container env var: {"name": "DB_PASSWORD", "value": "…"} (kubectl prints it over several
# lines) and its YAML form.
ENV_RULES: tuple[Rule, ...] = (
    Rule("secret-env", re.compile(
        r"(?P<q>\\*\")name(?P=q)\s*:\s*(?P=q)(?P<name>[\w.-]{1,128})(?P=q)\s*,\s*"
        r"(?P=q)value(?P=q)\s*:\s*(?P=q)(?P<value>(?:[^\"\\]|\\.)*?)(?P=q)"),
        _value_of_secret_env),
    Rule("secret-env", re.compile(
        r"^[ \t]*-?[ \t]*name:[ \t]*[\"']?(?P<name>[\w.-]{1,128})[\"']?[ \t]*\n"
        r"[ \t]*value:[ \t]*(?P<value>\S.*?)[ \t]*$", re.M),
        _value_of_secret_env),
)


# What must not reach a log line as it is: characters that end the line or rewrite the
# terminal showing it (C0, DEL, C1, the Unicode line and paragraph separators, bidi
# overrides), and the backslash that starts an escape, so an escape cannot be forged either.
_UNSAFE_IN_LOG = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]")


def log_line(text: str, known: Iterable[KnownValue] = ()) -> str:
    """`text` fit for one log line: secrets redacted (the `known` values, then the
    patterns), then every unsafe character escaped (a newline as \\x0a), so a request value
    can neither leak a secret nor forge a line."""
    redacted = Redactor(known).text(text, "log line")
    return _UNSAFE_IN_LOG.sub(_escaped, redacted)


def _escaped(match: re.Match) -> str:
    char = match.group(0)
    if char == "\\":
        return "\\\\"
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


class NetworkMap:
    """Consistent stand-ins for IP addresses and the site's host names (`--obfuscate-network`).

    Loopback, unspecified and k3s's own cluster addresses (the same on every appliance) are
    kept. Host names are the site's: the names given, and any name under the domains given.
    """

    IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
    IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:.])")
    KEPT = tuple(ipaddress.ip_network(n) for n in ("10.42.0.0/16", "10.43.0.0/16"))

    def __init__(self, hostnames: Iterable[str] = (), domains: Iterable[str] = ()):
        self.addresses: dict[str, str] = {}
        self.names: dict[str, str] = {}
        names = sorted({n.lower().rstrip(".") for n in hostnames if n}, key=len, reverse=True)
        suffixes = [rf"(?:[a-z0-9-]+\.)+{re.escape(d.lower().strip('.'))}" for d in domains if d]
        choices = [*suffixes, *map(re.escape, names)]
        self._hostnames = re.compile(rf"(?i)(?<![\w.-])(?:{'|'.join(choices)})(?![\w-])"
                                     ) if choices else None

    def replace(self, text: str, member: str, report: Report) -> str:
        text = self._sub(self.IPV6, text, member, report, self._address)
        text = self._sub(self.IPV4, text, member, report, self._address)
        if self._hostnames is not None:
            text = self._sub(self._hostnames, text, member, report, self._hostname)
        return text

    def mapping(self) -> dict:
        return {"addresses": dict(self.addresses), "hostnames": dict(self.names)}

    def _sub(self, pattern, text, member, report, stand_in) -> str:
        hits = 0

        def one(match: re.Match) -> str:
            nonlocal hits
            replacement = stand_in(match.group(0))
            hits += replacement is not None
            return replacement or match.group(0)

        text = pattern.sub(one, text)
        if hits:
            report.add("network-obfuscation", member, hits)
        return text

    def _address(self, text: str) -> str | None:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        if address.is_loopback or address.is_unspecified or any(
                address in network for network in self.KEPT):
            return None
        if str(address) not in self.addresses:
            prefix = f"ip{address.version}"
            used = sum(stand_in.startswith(prefix) for stand_in in self.addresses.values())
            self.addresses[str(address)] = f"{prefix}-{used + 1}"
        return self.addresses[str(address)]

    def _hostname(self, text: str) -> str:
        return self.names.setdefault(text.lower(), f"host-{len(self.names) + 1}")


class Redactor:
    """Scrubs members and reports what it did. With `patterns` off (`--no-redact`) only
    Secret values are still dropped: no one needs them, and the bundle is a file that
    travels."""

    def __init__(self, known: Iterable[KnownValue] = (), *, patterns: bool = True,
                 network: NetworkMap | None = None):
        self.report = Report()
        self.patterns, self.network = patterns, network
        forms: dict[str, str] = {}
        for item in known if patterns else ():
            for form in known_value_forms(item.value):
                forms.setdefault(form, item.kind)
        # Longest first, so a value that contains another is removed whole.
        self._forms = sorted(forms.items(), key=lambda pair: len(pair[0]), reverse=True)

    def member(self, name: str, data: bytes) -> bytes:
        """The redacted bytes of the member `name`: JSON members by structure, then text."""
        text = data.decode("utf-8", "surrogateescape")
        if name.endswith(".json"):
            with contextlib.suppress(ValueError):
                document = self.document(json.loads(text), name)
                text = self._known(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                                   name)
                return text.encode("utf-8", "surrogateescape")
        return self.text(text, name).encode("utf-8", "surrogateescape")

    def text(self, text: str, member: str) -> str:
        if self.patterns:
            text = self._known(text, member)
            if "-----" in text:
                text = self._apply(PEM_RULE, text, member)
            text = self._triggered_lines(text, member)
            if "name" in text and "value" in text:
                for rule in ENV_RULES:
                    text = self._apply(rule, text, member)
        if self.network is not None:
            text = self.network.replace(text, member, self.report)
        return text

    def document(self, node: object, member: str) -> object:
        """A parsed JSON document, redacted in place by structure and each string as text."""
        if isinstance(node, dict):
            if node.get("kind") == "Secret" and isinstance(node.get("metadata"), dict):
                self._drop_secret_data(node, member)
            if self.patterns and _secret_env(node):
                node["value"] = MARKER
                self.report.add("secret-env", member)
            for key in list(node):
                value = node.pop(key)
                if self.patterns and _has_value(value) and is_secret_name(key):
                    value = MARKER
                    self.report.add("secret-field", member)
                name = self.network.replace(key, member, self.report) if self.network else key
                node[name] = self.document(value, member)
            return node
        if isinstance(node, list):
            return [self.document(item, member) for item in node]
        if isinstance(node, str):
            return self.text(node, member)
        return node

    def _known(self, text: str, member: str) -> str:
        for form, kind in self._forms:
            if count := text.count(form):
                text = text.replace(form, MARKER)
                self.report.add(f"known-value:{kind}", member, count)
        return text

    def _triggered_lines(self, text: str, member: str) -> str:
        """LINE_RULES applied to the lines that contain a trigger, all in one block (no line
        rule matches across a newline, so the block splits back into the same lines)."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a few characters lower-case to two (İ → i̇)
            lowered = "".join(c if len(c.lower()) > 1 else c.lower() for c in text)
        spans, end = [], 0
        for trigger in _TRIGGER.finditer(lowered):
            if trigger.start() >= end:  # not a second trigger in a line already taken
                start = text.rfind("\n", 0, trigger.start()) + 1
                end = text.find("\n", trigger.end())
                end = len(text) if end < 0 else end
                spans.append((start, end))
        if not spans:
            return text
        block = "\n".join(text[start:end] for start, end in spans)
        for rule in LINE_RULES:
            block = self._apply(rule, block, member)
        pieces, done = [], 0
        for (start, end), line in zip(spans, block.split("\n"), strict=True):
            pieces += [text[done:start], line]
            done = end
        return "".join(pieces) + text[done:]

    def _apply(self, rule: Rule, text: str, member: str) -> str:
        hits = 0

        def one(match: re.Match) -> str:
            nonlocal hits
            replacement = rule.replace(match)
            if replacement is None:
                return match.group(0)
            hits += 1
            return replacement

        text = rule.pattern.sub(one, text)
        if hits:
            self.report.add(rule.name, member, hits)
        return text

    def _drop_secret_data(self, secret: dict, member: str) -> None:
        """A Secret keeps its key names; its values, and the copy of them kubectl keeps in
        the last-applied annotation, go."""
        for field in ("data", "stringData"):
            values = secret.get(field)
            if isinstance(values, dict) and values:
                secret[field] = dict.fromkeys(values, MARKER)
                self.report.add("secret-data", member, len(values))
        annotations = secret["metadata"].get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            annotations[LAST_APPLIED] = MARKER
            self.report.add("secret-data", member)


def _has_value(value: object) -> bool:
    if isinstance(value, str):
        return value.strip() not in ("", MARKER)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _secret_env(node: dict) -> bool:
    name = node.get("name")
    return isinstance(name, str) and _has_value(node.get("value")) and is_secret_name(name)
