"""The redactor: a secret in each supported shape, embedded in random text, comes out
removed with everything around it intact; text without secrets comes out unchanged; JSON
by structure (Secrets keep only their key names); and network obfuscation."""

import base64
import json
import re

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from host.net import https
from host.support import redact
from host.support.redact import (
    LAST_APPLIED,
    MARKER,
    KnownValue,
    NetworkMap,
    Redactor,
    Rule,
    is_secret_name,
    log_line,
)

# Fragments of logs, YAML and JSON with no secret in them, near misses included: words
# that contain a secret word's letters, references to secrets, URLs without credentials.
HARMLESS = (
    "pod", "msp/db-0", "Running", "ready 1/1", "2026-11-27T10:00:00Z", "10:00:00", "status:",
    "pass", "fail", "level=info", 'msg="reconciling"', '{"kind": "Pod"}', '"name": "db",',
    "name: PGDATA", "value: /data", "monkey: 3", "keyboard=us", "passage", "tokenizer: bpe",
    "author: alga", "authority", "KeyError: 'pods'", "key: app.kubernetes.io/name",
    "secretName: alga-psa-shared", "tokenFile: /run/alga/t", "secretKeyRef:", "passwordFile=/x",
    "https://github.com/Nine-Minds/alga-psa", "git@github.com:o/r", "user@example.com",
    "10.0.0.5", "fe80::1", "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978879",
    "MIIEpAIBAAKCAQEA", "QmFzZTY0IHRleHQ=", "--", "=", ":", ",", "[", "]", "{", "}", "é", "✓",
)
harmless_text = st.lists(st.sampled_from(HARMLESS), max_size=12).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "\n", "  ", "\t"]), min_size=len(words),
                           max_size=len(words)).map(
        lambda gaps: "".join(w + g for w, g in zip(words, gaps, strict=True))))
# Anything that might be a secret, which random text then must not contain.
SECRET_LIKE = re.compile(r"(?i)pass|pwd|token|secret|credential|key|auth|bearer|-----|LS0tLS1"
                         r"|://|eyJ|gh[pousr]_|github_pat")

KEYS = st.builds(
    lambda prefix, word, suffix, upper: (prefix + word + suffix).upper() if upper else
    prefix + word + suffix,
    st.sampled_from(["", "db_", "DB", "client-", "registry.", "x_"]),
    st.sampled_from(["password", "passwd", "token", "secret", "apikey", "credentials",
                     "auth_key", "accessToken"]),
    st.sampled_from(["", "_value", "2", "-prod"]), st.booleans())
PLAIN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+/@!%*^~-",
                min_size=8, max_size=40)
SPACED = st.text("abcdefXYZ0123456789_.+/@!%*^~- ", min_size=8, max_size=40).map(str.strip) \
    .filter(lambda s: len(s) >= 8)
B64_LINE = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                   min_size=16, max_size=64)
PEM_LABELS = st.sampled_from(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY",
                              "OPENSSH PRIVATE KEY", "CERTIFICATE"])


def pem(label: str, lines: list[str], newline: str = "\n") -> str:
    return newline.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


# Each shape: (the snippet with the secret, the snippet as it must come out, the secret).
SHAPES = st.one_of(
    st.builds(lambda key, s: (f"{key}={s}", f"{key}={MARKER}", s), KEYS, PLAIN),
    st.builds(lambda key, s: (f'export {key}="{s}"', f'export {key}="{MARKER}"', s),
              KEYS, SPACED),
    st.builds(lambda key, s: (f"  {key}: {s}", f"  {key}: {MARKER}", s), KEYS, SPACED),
    st.builds(lambda key, s: (f'{{"{key}": {json.dumps(s)}, "n": 1}}',
                              f'{{"{key}": "{MARKER}", "n": 1}}', s),
              KEYS, st.text(min_size=8, max_size=40)),
    st.builds(lambda user, s: (f"fetching https://{user}:{s}@github.com/o/r.git now",
                               f"fetching https://{MARKER}@github.com/o/r.git now", s),
              st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True),
              st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~!$*%",
                      min_size=8, max_size=30)),
    st.builds(lambda s: (f"git clone https://{s}@github.com/o/r",
                         f"git clone https://{MARKER}@github.com/o/r", s),
              st.from_regex(r"gh[pousr]_[A-Za-z0-9]{36}", fullmatch=True)),
    st.builds(lambda s: (f"Authorization: Bearer {s}", f"Authorization: Bearer {MARKER}", s),
              st.from_regex(r"[A-Za-z0-9._~+/-]{8,60}", fullmatch=True)),
    st.builds(lambda s: (f"sending bearer {s} upstream", f"sending bearer {MARKER} upstream", s),
              st.from_regex(r"[A-Za-z0-9._~+/-]{8,60}", fullmatch=True)),
    st.builds(lambda s: (f"Host=db;Username=alga;Password={s};Database=server",
                         f"Host=db;Username=alga;Password={MARKER};Database=server", s), SPACED),
    st.builds(lambda name, s: (f'{{"name": "{name}", "value": "{s}"}}',
                               f'{{"name": "{name}", "value": "{MARKER}"}}', s), KEYS, PLAIN),
    st.builds(lambda name, s: (f"- name: {name}\n  value: {s}", f"- name: {name}\n  value: "
                               f"{MARKER}", s), KEYS, SPACED),
    st.builds(lambda label, lines, newline: (
        pem(label, lines, newline), f"<redacted PEM {label}>", "\n".join(lines)),
        PEM_LABELS, st.lists(B64_LINE, min_size=1, max_size=6), st.sampled_from(["\n", "\\n"])),
    st.builds(lambda lines: (
        f"client-key-data: {base64.b64encode(pem('RSA PRIVATE KEY', lines).encode()).decode()}",
        f"client-key-data: {MARKER}", base64.b64encode(pem("RSA PRIVATE KEY", lines).encode())
        .decode()), st.lists(B64_LINE, min_size=1, max_size=4)),
)


@given(harmless_text)
@example("status: pass\nkey: app\nsecretName: x\nKeyError: 'a'\nhttps://github.com/x")
def test_text_without_secrets_is_unchanged(text):
    redactor = Redactor([KnownValue("token", "Zq9XvT2mKb7Lw")])
    assert redactor.text(text, "m") == text
    assert redactor.report.hits == {}


@given(st.text(max_size=300))
def test_random_text_without_secret_words_is_unchanged(text):
    assume(not SECRET_LIKE.search(text))
    assert Redactor().text(text, "m") == text


@given(harmless_text, SHAPES, harmless_text)
def test_a_secret_in_each_shape_is_removed_and_the_text_around_it_kept(before, shape, after):
    snippet, expected, secret = shape
    assume(secret not in before + after + expected)
    redactor = Redactor()
    out = redactor.text(f"{before}\n{snippet}\n{after}", "m")
    assert out == f"{before}\n{expected}\n{after}"
    assert secret not in out
    assert [rule["total"] for rule in redactor.report.as_dict().values()] == [1]


@given(harmless_text, st.text(min_size=6, max_size=60), harmless_text,
       st.sampled_from(["plain", "base64", "json", "percent"]))
def test_a_known_value_is_removed_in_any_form_anywhere(before, value, after, form):
    written = {"plain": value, "base64": base64.b64encode(value.encode()).decode(),
               "json": json.dumps(value)[1:-1], "percent": re.sub(
                   r"[^A-Za-z0-9_.~-]", lambda m: "".join(f"%{b:02X}" for b in
                                                          m.group().encode()), value)}[form]
    assume(len(written) >= 6 and written not in before + after and written not in MARKER)
    redactor = Redactor([KnownValue("proxy-password", value)])
    out = redactor.text(f"{before}{written}{after}", "m")
    assert written not in out
    assert redactor.report.as_dict()["known-value:proxy-password"]["total"] >= 1


def test_known_values_beat_patterns_and_short_ones_are_left_to_patterns():
    redactor = Redactor([KnownValue("token", "s3cr3t-token-value"), KnownValue("token", "abc")])
    assert redactor.text("TOKEN=s3cr3t-token-value abc", "m") == f"TOKEN={MARKER} abc"
    assert redactor.report.as_dict() == {
        "known-value:token": {"total": 1, "files": {"m": 1}}}


def test_secrets_keep_their_key_names_only():
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "db", "namespace": "msp", "annotations": {
                  LAST_APPLIED: '{"data": {"password": "aHVudGVyMg=="}}', "team": "alga"}},
              "data": {"password": "aHVudGVyMg==", "user": "YWxnYQ=="},
              "stringData": {"url": "postgres://alga:hunter2@db/server"}}
    redactor = Redactor()
    out = json.loads(redactor.member("kubernetes/secrets.json", json.dumps(
        {"kind": "List", "items": [secret]}).encode()))
    stored = out["items"][0]
    assert stored["data"] == {"password": MARKER, "user": MARKER}
    assert stored["stringData"] == {"url": MARKER}
    assert stored["metadata"]["annotations"] == {LAST_APPLIED: MARKER, "team": "alga"}
    assert redactor.report.as_dict() == {
        "secret-data": {"total": 4, "files": {"kubernetes/secrets.json": 4}}}


def test_secrets_lose_their_values_even_without_redaction():
    redactor = Redactor([KnownValue("token", "s3cr3t-token-value")], patterns=False)
    document = [{"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}},
                {"password": "hunter22", "token": "s3cr3t-token-value"}]
    out = json.loads(redactor.member("x.json", json.dumps(document).encode()))
    assert out == [{"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": MARKER}},
                   {"password": "hunter22", "token": "s3cr3t-token-value"}]


def test_json_fields_and_env_vars_by_structure():
    pod = {"spec": {"containers": [{"name": "server", "env": [
        {"name": "DB_PASSWORD", "value": "hunter22"}, {"name": "PGDATA", "value": "/data"},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}}],
        "args": ["--password=hunter23", "--verbose"]}],
        "automountServiceAccountToken": False, "apiKey": 12345, "secretName": "db"}}
    redactor = Redactor()
    out = json.loads(redactor.member("pods.json", json.dumps(pod).encode()))
    container = out["spec"]["containers"][0]
    assert container["env"][0] == {"name": "DB_PASSWORD", "value": MARKER}
    assert container["env"][1:] == pod["spec"]["containers"][0]["env"][1:]
    assert container["args"] == [f"--password={MARKER}", "--verbose"]
    assert out["spec"]["automountServiceAccountToken"] is False
    assert (out["spec"]["apiKey"], out["spec"]["secretName"]) == (MARKER, "db")


def test_a_truncated_json_member_is_still_redacted_as_text():
    data = b'{"items": [{"password": "hunter22", "x": "Bearer abcdefghijk'
    assert Redactor().member("pods.json", data) == (
        f'{{"items": [{{"password": "{MARKER}", "x": "Bearer {MARKER}').encode()


def test_pem_blocks_cut_by_truncation():
    body = ["MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo", "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onL"]
    head_cut = "\n".join([*body, "-----END RSA PRIVATE KEY-----", "after"])
    tail_cut = "\n".join(["before", "-----BEGIN PRIVATE KEY-----", *body])
    redactor = Redactor()
    assert redactor.text(head_cut, "m") == "<redacted PEM RSA PRIVATE KEY>\nafter"
    assert redactor.text(tail_cut, "m") == "before\n<redacted PEM PRIVATE KEY>"


def test_secret_names():
    secret = ["DB_PASSWORD", "dbpassword", "apiKey", "api_key", "ALGA_AUTH_KEY", "oauth",
              "client-key-data", "accessToken", "Authorization", "x-api-key", "client_secret"]
    not_secret = ["key", "KeyError", "secretName", "tokenFile", "tokenizer", "author",
                  "authority", "monkey", "keyboard", "passage", "PGDATA", "secretKeyRef",
                  "certificate-authority-data", "tokens", "TokenExpired", "TOKEN_URL",
                  "AWS_ACCESS_KEY_ID"]
    assert [name for name in secret if not is_secret_name(name)] == []
    assert [name for name in not_secret if is_secret_name(name)] == []


def test_network_obfuscation_is_consistent_and_keeps_what_identifies_nothing():
    network = NetworkMap(["psa-node7", "psa.acme.example"], ["acme.example"])
    redactor = Redactor(network=network)
    first = redactor.text("psa-node7 192.168.40.7/24 fe80::1 db.acme.example", "a")
    second = redactor.text("PSA-NODE7 at 192.168.40.7, psa.acme.example", "b")
    assert first == "host-1 ip4-1/24 ip6-1 host-2"
    assert second == "host-1 at ip4-1, host-3"
    kept = "127.0.0.1 ::1 0.0.0.0 10.42.0.7 10.43.0.10 github.com 10:00:00 v1.2.3 aa:bb:cc:dd"
    assert redactor.text(kept, "c") == kept
    assert network.mapping() == {
        "addresses": {"192.168.40.7": "ip4-1", "fe80::1": "ip6-1"},
        "hostnames": {"psa-node7": "host-1", "db.acme.example": "host-2",
                      "psa.acme.example": "host-3"}}
    assert redactor.report.as_dict()["network-obfuscation"]["total"] == 7


proxy_users = st.text(st.sampled_from("@#/% ü") | st.characters(
    whitelist_categories=("L", "N")), min_size=1, max_size=10)
proxy_passwords = st.lists(st.sampled_from(["@", ":", "#", "/", "%", "%40", " ", "ü", "密"])
                           | st.characters(blacklist_categories=("Cc", "Cs")),
                           min_size=1, max_size=16).map("".join)


@given(proxy_users, proxy_passwords)
def test_proxy_credentials_in_the_forms_setup_sends_and_writes_are_removed(user, password):
    """Without knowing the password: the Proxy-Authorization header requests sends, and the
    percent-encoded URL of the k3s env file and the Flux Secret, in logs and JSON."""
    token = https.proxy_authorization(user, password).split()[1]
    url = https.proxy_url_with_credentials({"url": "http://proxy.corp:3128", "user": user,
                                            "password": password})
    userinfo = url.removeprefix("http://").rpartition("@")[0]
    for text, secret in (
            (f"CONNECT proxy.corp:3128\nProxy-Authorization: Basic {token}\n", token),
            (json.dumps({"headers": {"Proxy-Authorization": f"Basic {token}"}}), token),
            (f"HTTPS_PROXY={url}\nNO_PROXY=.svc\n", userinfo),
            (f'proxyconnect tcp: dial "{url}": refused', userinfo),
            (json.dumps({"name": "HTTPS_PROXY", "value": url}), userinfo)):
        redactor = Redactor()
        out = redactor.text(text, "m")
        assert out == text.replace(secret, MARKER)  # only the credentials go


@given(proxy_users, proxy_passwords.filter(lambda p: len(p) >= 6))
def test_the_known_proxy_credentials_go_in_any_form_even_without_a_header_name(user, password):
    token = https.proxy_authorization(user, password).split()[1]
    redactor = Redactor([KnownValue("proxy-password", password),
                         KnownValue("proxy-password", f"{user}:{password}")])
    out = redactor.text(f"sent {token} and {password} to the proxy", "m")
    assert token not in out and password not in out


# Issue 24: an adversarial table with literal inputs and outputs. Each case names the rule
# that must have fired, and test_every_rule_is_needed removes each rule in turn: a rule no
# case needs could be deleted without a test noticing.
GHP = "ghp_" + "aB3" * 12
GITHUB_PAT = "github_pat_11ABCDEFG0" + "x1Y_" * 15
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlc2lnbg"
# base64 of a PEM block, alone on a line, as in a kubeconfig dumped without its key name
PEM_BASE64 = ("LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2UQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0t"
              "Cg==")
SHA512_CRYPT = ("$6$answerssalt0001$HqUWey1V5YfWYsQH926iR0XiRulqbr6Qr8NIE/54ky1qyrIEPtQSDgotTu8"
                "raMEv83T5B.E2VS8Ra91/BwxNI0")
SHA512_ROUNDS = "$6$rounds=10000$salt$" + "a/B1" * 21 + "xy"
YESCRYPT = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"
BCRYPT = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
ADVERSARIAL = [
    # (rule, text, the text as it must come out)
    ("secret-field", "password=hunter22 kept", f"password={MARKER} kept"),  # offset 0
    ("secret-field", "token: hunter22", f"token: {MARKER}"),
    ("github-token", f"{GHP} in a log", f"{MARKER} in a log"),
    ("github-token", f"cloned with {GITHUB_PAT}", f"cloned with {MARKER}"),
    ("jwt", JWT, MARKER),
    ("jwt", f"id_token {JWT}.", f"id_token {MARKER}."),
    ("authorization-header", "Authorization: Basic dXNlcjpodW50ZXIyMg==",
     f"Authorization: Basic {MARKER}"),
    ("authorization-header", '{"Proxy-Authorization": "Basic dXNlcjpodW50ZXIyMg=="}',
     f'{{"Proxy-Authorization": "Basic {MARKER}"}}'),
    ("bearer-token", "sent Bearer hunter22hunter22 to", f"sent Bearer {MARKER} to"),
    ("base64-pem", PEM_BASE64, MARKER),
    ("url-credentials", "https://alga:hunter22@github.com/o/r", f"https://{MARKER}@github.com/o/r"),
    ("connection-string", "Server=db;User Id=alga;Password=my secret pw;Timeout=3",
     f"Server=db;User Id=alga;Password={MARKER};Timeout=3"),
    ("connection-string", "Password=my secret pw;Server=db", f"Password={MARKER};Server=db"),
    ("secret-field", '{"db_password": "hunter22", "n": 1}',
     f'{{"db_password": "{MARKER}", "n": 1}}'),
    ("secret-field", '{"apiKey": 123456}', f'{{"apiKey": {MARKER}}}'),
    ("secret-field", '{\\"db_password\\": \\"hunter22\\"}',
     f'{{\\"db_password\\": \\"{MARKER}\\"}}'),
    ("secret-field", 'DB_PASSWORD="hunter 22" next', f'DB_PASSWORD="{MARKER}" next'),
    ("secret-field", "DB_PASSWORD='hunter 22' next", f"DB_PASSWORD='{MARKER}' next"),
    ("secret-field", "GET /x?access_token=hunter22&page=2", f"GET /x?access_token={MARKER}&page=2"),
    ("secret-field", "  password: hunter 22\n  user: alga", f"  password: {MARKER}\n  user: alga"),
    ("secret-field", '  password: "hunter 22"', f'  password: "{MARKER}"'),
    ("secret-env", '{"name": "DB_PASSWORD",\n "value": "hunter22"}',
     f'{{"name": "DB_PASSWORD",\n "value": "{MARKER}"}}'),
    ("secret-env", "- name: DB_PASSWORD\n  value: hunter22\n- name: PGDATA\n  value: /data",
     f"- name: DB_PASSWORD\n  value: {MARKER}\n- name: PGDATA\n  value: /data"),
    ("pem-block", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBBBBBBBBBBBBBBBBB\n"
                  "-----END EC PRIVATE KEY-----\nafter", "<redacted PEM EC PRIVATE KEY>\nafter"),
    ("pem-block", "before\n-----BEGIN PRIVATE KEY-----\nMHcCAQEEIBBBBBBBBBBBBBBBBB",
     "before\n<redacted PEM PRIVATE KEY>"),
    ("pem-block", "MHcCAQEEIBBBBBBBBBBBBBBBBB\n-----END CERTIFICATE-----\nafter",
     "<redacted PEM CERTIFICATE>\nafter"),
    ("crypt-hash", f"alga-admin:{SHA512_CRYPT}:20000:0:99999:7:::",
     f"alga-admin:{MARKER}:20000:0:99999:7:::"),  # an /etc/shadow line
    ("crypt-hash", f'{{"hash": "{YESCRYPT}"}}', f'{{"hash": "{MARKER}"}}'),
    ("crypt-hash", f"chpasswd got alga-admin:{BCRYPT} from setup",
     f"chpasswd got alga-admin:{MARKER} from setup"),
    ("crypt-hash", f"rounds: {SHA512_ROUNDS} (from setup)", f"rounds: {MARKER} (from setup)"),
    # İ lower-cases to two characters: the trigger's position must still find its line.
    ("secret-field", "İİİİİİİİİİİİİİİİİİİİ\nkept line\npassword=hunter22\nİ",
     f"İİİİİİİİİİİİİİİİİİİİ\nkept line\npassword={MARKER}\nİ"),
    # ... and an upper-case trigger after it is still found.
    ("secret-field", "İ\nDB_PASSWORD=hunter22", f"İ\nDB_PASSWORD={MARKER}"),
]


@pytest.mark.parametrize(("rule", "text", "expected"), ADVERSARIAL)
def test_adversarial_secrets_come_out_exactly(rule, text, expected):
    redactor = Redactor()
    assert redactor.text(text, "m") == expected
    assert redactor.report.as_dict() == {rule: {"total": 1, "files": {"m": 1}}}


def test_every_rule_is_needed(monkeypatch):
    rules = [("LINE_RULES", i) for i in range(len(redact.LINE_RULES))] + [
        ("ENV_RULES", i) for i in range(len(redact.ENV_RULES))]
    for table, index in rules:
        kept = getattr(redact, table)
        monkeypatch.setattr(redact, table, kept[:index] + kept[index + 1:])
        missed = [text for _, text, expected in ADVERSARIAL
                  if Redactor().text(text, "m") != expected]
        assert missed, f"{table}[{index}] ({kept[index].name}) is needed by no case"
        monkeypatch.setattr(redact, table, kept)
    monkeypatch.setattr(redact, "PEM_RULE", Rule("pem-block", re.compile("(?!)"), redact._pem))
    assert [text for _, text, expected in ADVERSARIAL if Redactor().text(text, "m") != expected]


def test_known_values_that_are_prefixes_of_each_other_go_whole():
    redactor = Redactor([KnownValue("token", "abcdef123"),
                         KnownValue("kubernetes-secret", "abcdef123-XYZ123")])
    assert redactor.text("a abcdef123-XYZ123 b abcdef123", "m") == f"a {MARKER} b {MARKER}"
    assert redactor.report.as_dict() == {
        "known-value:kubernetes-secret": {"total": 1, "files": {"m": 1}},
        "known-value:token": {"total": 1, "files": {"m": 1}}}
    # Given the other way round, too.
    redactor = Redactor([KnownValue("token", "abcdef123-XYZ123"),
                         KnownValue("token", "abcdef123")])
    assert redactor.text("abcdef123-XYZ123", "m") == MARKER


@pytest.mark.parametrize(("value", "written"), [
    ("hunter2222", "aHVudGVyMjIyMg"),  # base64 without its padding
    ("hunter2222", "aHVudGVyMjIyMg=="),
    ('pa"ss\\wörd', 'pa\\"ss\\\\w\\u00f6rd'),  # JSON-escaped
    ("p@ss w/rd!", "p%40ss%20w%2Frd%21"),  # percent-encoded
    ("p%40ss%20w", "p@ss w"),  # percent-decoded
])
def test_a_known_value_goes_in_each_written_form(value, written):
    redactor = Redactor([KnownValue("proxy-password", value)])
    assert redactor.text(f"blob {written} end", "m") == f"blob {MARKER} end"


def test_non_utf8_bytes_survive_around_a_redacted_secret():
    data = b"\xff\xfe start\npassword=hunter22 \x80\x81\nknown-s3cret-value \xc3\n"
    redactor = Redactor([KnownValue("token", "known-s3cret-value")])
    assert redactor.member("logs/x.log", data) == (
        b"\xff\xfe start\npassword=<redacted> \x80\x81\n<redacted> \xc3\n")


def test_network_obfuscation_reaches_json_keys_and_dotted_names_under_a_domain():
    redactor = Redactor(network=NetworkMap(["psa-node7"], ["acme.example"]))
    document = {"192.168.1.5": {"a.b.db.acme.example": "psa-node7"}, "acme.example": "x",
                "notacme.example": "y"}
    out = json.loads(redactor.member("x.json", json.dumps(document).encode()))
    assert out == {"ip4-1": {"host-1": "host-2"}, "acme.example": "x", "notacme.example": "y"}


def test_a_log_line_is_redacted_then_escaped_exactly():
    text = "password=hunter22\nx\\y\x85\u2028\u202e\x00 é known-s3cret"
    assert log_line(text, [KnownValue("token", "known-s3cret")]) == (
        "password=<redacted>\\x0ax\\\\y\\x85\\u2028\\u202e\\x00 é <redacted>")


def test_longer_site_names_go_whole_and_names_match_in_any_case():
    redactor = Redactor(network=NetworkMap(["node7", "node7.lan", "PSA-Node8."],
                                           ["ACME.Example."]))
    assert redactor.text("node7.lan node7 psa-node8 db.acme.example", "m") == (
        "host-1 host-2 host-3 host-4")
    assert redactor.report.as_dict() == {"network-obfuscation": {"total": 4,
                                                                 "files": {"m": 4}}}
    assert redactor.network.mapping()["hostnames"] == {
        "node7.lan": "host-1", "node7": "host-2", "psa-node8": "host-3",
        "db.acme.example": "host-4"}


def test_a_network_map_without_names_changes_only_addresses():
    redactor = Redactor(network=NetworkMap())
    assert redactor.text("abc 10.1.2.3 127.0.0.1", "m") == "abc ip4-1 127.0.0.1"
    assert redactor.report.as_dict() == {"network-obfuscation": {"total": 1,
                                                                 "files": {"m": 1}}}


def test_json_structure_rules_report_by_member_and_leave_other_kinds_data():
    document = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"},
                "env": [{"name": "DB_PASSWORD", "value": "hunter22"}], "apiKey": "x1",
                "s": "password=hunter22"}
    redactor = Redactor()
    assert json.loads(redactor.member("c.json", json.dumps(document).encode())) == {
        "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"},
        "env": [{"name": "DB_PASSWORD", "value": MARKER}], "apiKey": MARKER,
        "s": f"password={MARKER}"}
    assert redactor.report.as_dict() == {
        "secret-env": {"total": 1, "files": {"c.json": 1}},
        "secret-field": {"total": 2, "files": {"c.json": 2}}}


def test_a_json_member_comes_out_as_indented_utf8_json_with_its_bytes_kept():
    document = b'{"a": "\xc3\xa9 known-s3cret", "b": [1, {"password": ""}], "kind": "Secret", ' \
        b'"metadata": {"name": "s"}, "data": {}, "x": "\xff"}'
    redactor = Redactor([KnownValue("token", "known-s3cret")])
    assert redactor.member("s.json", document) == (
        b'{\n  "a": "\xc3\xa9 <redacted>",\n  "b": [\n    1,\n    {\n      "password": ""\n'
        b'    }\n  ],\n  "kind": "Secret",\n  "metadata": {\n    "name": "s"\n  },\n'
        b'  "data": {},\n  "x": "\xff"\n}\n')
    # An empty password and a Secret without data have nothing to report.
    assert redactor.report.as_dict() == {"known-value:token": {"total": 1,
                                                               "files": {"s.json": 1}}}


def test_each_hit_of_a_rule_is_counted():
    redactor = Redactor()
    assert redactor.text("password=a1b2c3d4 token=zz99yy88", "m") == (
        f"password={MARKER} token={MARKER}")
    assert redactor.report.as_dict() == {"secret-field": {"total": 2, "files": {"m": 2}}}


def test_known_values_up_to_the_limit_are_redacted():
    longest = "k" * redact.MAX_KNOWN_VALUE
    assert Redactor([KnownValue("kubernetes-secret", longest)]).text(
        f"[{longest}]", "m") == f"[{MARKER}]"
    too_long = longest + "k"
    assert Redactor([KnownValue("kubernetes-secret", too_long)]).text(
        too_long, "m") == too_long


def test_a_known_value_inside_another_not_at_its_start_goes_whole():
    # Sorted by anything but length, "abcdef123" would go first and leave "0<redacted>".
    redactor = Redactor([KnownValue("token", "abcdef123"), KnownValue("token", "0abcdef123")])
    assert redactor.text("x 0abcdef123 y abcdef123", "m") == f"x {MARKER} y {MARKER}"
    assert redactor.report.as_dict() == {"known-value:token": {"total": 2, "files": {"m": 2}}}


def test_site_names_ending_in_x_and_punctuation_around_them():
    redactor = Redactor(network=NetworkMap(["mailbox"], ["acme.box"]))
    assert redactor.text("[mailbox] (db.acme.box)  end", "m") == "[host-1] (host-2)  end"
    assert redactor.report.as_dict() == {"network-obfuscation": {"total": 2,
                                                                 "files": {"m": 2}}}
    # Without names, no empty match stands in for one.
    assert Redactor(network=NetworkMap()).text("[a]  (b)", "m") == "[a]  (b)"


@pytest.mark.parametrize(("member", "data", "out", "report"), [
    ("k.json", b'{"known-s3cret": 1}', b'{\n  "<redacted>": 1\n}\n',
     {"known-value:token": {"total": 1, "files": {"k.json": 1}}}),
    ("s.json", b'{"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}, '
               b'"x": "\xff"}',
     b'{\n  "kind": "Secret",\n  "metadata": {\n    "name": "s"\n  },\n  "data": {\n'
     b'    "k": "<redacted>"\n  },\n  "x": "\xff"\n}\n',
     {"secret-data": {"total": 1, "files": {"s.json": 1}}}),
    ("logs/x.log", b"\xff known-s3cret password=hunter22\n",
     b"\xff <redacted> password=<redacted>\n",
     {"known-value:token": {"total": 1, "files": {"logs/x.log": 1}},
      "secret-field": {"total": 1, "files": {"logs/x.log": 1}}}),
])
def test_members_come_out_exactly_and_report_under_their_names(member, data, out, report):
    redactor = Redactor([KnownValue("token", "known-s3cret")])
    assert redactor.member(member, data) == out
    assert redactor.report.as_dict() == report


def test_an_obfuscated_json_key_is_reported_under_its_member():
    redactor = Redactor(network=NetworkMap(["psa-node7"]))
    assert redactor.member("n.json", b'{"psa-node7": 1}') == b'{\n  "host-1": 1\n}\n'
    assert redactor.report.as_dict() == {"network-obfuscation": {"total": 1,
                                                                 "files": {"n.json": 1}}}


def test_each_occurrence_of_a_known_value_is_counted():
    redactor = Redactor([KnownValue("k3s-token", "K10abcdef::server:s3cret")])
    assert redactor.text("K10abcdef::server:s3cret and K10abcdef::server:s3cret", "m") == (
        f"{MARKER} and {MARKER}")
    assert redactor.report.as_dict() == {"known-value:k3s-token": {"total": 2,
                                                                   "files": {"m": 2}}}


@pytest.mark.parametrize("part", ["password", "passwd", "passphrase", "secret", "credential",
                                  "apikey", "authkey", "privatekey", "accesskey", "signingkey",
                                  "encryptionkey"])
def test_a_name_containing_a_secret_part_is_a_secret(part):
    assert is_secret_name(f"x_{part}") and is_secret_name(f"{part.upper()}_VALUE")


@pytest.mark.parametrize("ending", ["token", "auth", "pwd", "authorization"])
def test_a_name_ending_in_a_secret_ending_is_a_secret(ending):
    assert is_secret_name(f"db{ending}")


@pytest.mark.parametrize("word", [
    "name", "ref", "file", "path", "dir", "namespace", "kind", "type", "mode", "id", "url",
    "uri", "endpoint", "seconds", "ttl", "expiry", "expires", "expired", "error", "failed",
    "invalid", "missing", "required", "length", "size", "count"])
def test_a_last_word_about_a_secret_makes_the_name_a_reference(word):
    assert not is_secret_name(f"token_{word}") and is_secret_name(f"{word}_token")


def test_a_number_at_the_end_of_a_name_changes_nothing():
    # API_KEY_2 was once read as words api, key, 2: no key last, so its value stayed.
    assert is_secret_name("API_KEY_2") and is_secret_name("db2_password")
    assert Redactor().text("API_KEY_2=abcdef12", "m") == f"API_KEY_2={MARKER}"


def test_kubectls_last_applied_annotation_is_the_one_dropped():
    secret = {"kind": "Secret", "metadata": {"name": "s", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data": {"k": "dg=="}}'}}}
    out = json.loads(Redactor().member("s.json", json.dumps(secret).encode()))
    assert out["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": MARKER}


def test_the_known_value_limit_is_16_kib():
    longest = "k" * 16384
    assert Redactor([KnownValue("kubernetes-secret", longest)]).text(longest, "m") == MARKER
    assert Redactor([KnownValue("kubernetes-secret", longest + "k")]).text(
        longest + "k", "m") == longest + "k"
