"""Hostile inputs for the web API and the CLI (hypothesis strategies): the strings that broke
or nearly broke an input before (issue 19), any text and JSON, and setup and update request
bodies made of them. Used by tests/web/test_web_fuzz.py and the nspawn security tier."""

import json
import string

from hypothesis import strategies as st

from host.setup.inputs import FIELDS
from support.answers import ADMIN_PASSWORD

# A proxy password no message, log line or answer may contain.
CANARY = "Canary-0f7c9e"

# Strings that broke or nearly broke an input before, and the usual suspects.
hostile_strings = st.sampled_from([
    "", " ", "\x00", "\n", "\r\nX-Injected: 1", "\u200b", "\u2028", "\ud800", "\x85", "%0a",
    "fe80::1%eth0", "http://[fe80::1%eth0]:3128", "::ffff:127.0.0.1", "224.0.0.1",
    "255.255.255.255", "http://proxy:0", "http://u:p@proxy:3128", "https://u:p@github.com/o/r",
    "\uff41\uff4c\uff47\uff41.example.com", "al\u200bga.example.com", "-upload-pack=touch",
    "--help",
    "../../etc/passwd", "9" * 4400, "1e3", "-1", "NaN", "<script>alert(1)</script>",
    "'\"", "x" * 5000, "stable", "nightly", "custom", "check", "apply", "journal",
    "sha256:" + "0" * 64, "oci://ghcr.io/a/b", "git@github.com:o/r.git",
])
texts = st.one_of(hostile_strings, st.text(max_size=30),
                  st.text(st.sampled_from(string.printable), max_size=30))
scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=12)
# A field's value: mostly hostile text, sometimes any JSON value (lists of text are valid).
values = st.one_of(texts, texts, json_values)
UPDATE_FIELDS = ("action", "channel", "confirmed", "digest", "who", "requested_at", "id")


def objects_with(fields: tuple[str, ...], **fixed) -> st.SearchStrategy:
    return st.fixed_dictionaries(fixed, optional={field: values for field in fields
                                                  if field not in fixed})


setup_bodies = st.one_of(
    objects_with(FIELDS),
    # With the admin password every first setup needs, so that a body can also be accepted.
    objects_with(FIELDS, admin_password=st.just(ADMIN_PASSWORD),
                 admin_password_confirm=st.just(ADMIN_PASSWORD)),
    # A proxy with the canary as its password, so every refusal has a secret to leak.
    objects_with(FIELDS, proxy_url=st.sampled_from(["http://proxy.corp:3128", "x"]),
                 proxy_user=st.sampled_from(["svc", "", "a:b"]),
                 proxy_password=texts.map(lambda t: f"{CANARY}{t}")),
    json_values)
update_bodies = st.one_of(objects_with(UPDATE_FIELDS), json_values)
# Any bytes, JSON of any shape, and nesting deeper than Python's parser goes.
raw_bodies = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                       st.integers(1, 30000).map(lambda n: b"[" * n + b"]" * n))
# The API's GET endpoints, and queries of the parameters they read (and one they do not).
GET_PATHS = ["/api/logs", "/api/support-bundle/download", "/api/setup", "/api/status",
             "/api/install", "/api/release", "/api/updates", "/api/support-bundle"]
# A URL carries UTF-8: no lone surrogates there.
queries = st.dictionaries(st.sampled_from(["source", "lines", "name", "x"]), texts.filter(
    lambda t: not any("\ud800" <= c <= "\udfff" for c in t)), max_size=3)
