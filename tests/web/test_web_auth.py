"""The web service's door (issue 19, items 3 to 5): the setup token fails closed, the
lockout never locks out the admin, and no request value reaches the journal unredacted or
unescaped. Over HTTP against a real waitress server on loopback addresses."""

import http.client
import io
import json
import logging
import os
import pwd
import re
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.answers import parse_with_admin
from support.base import FAKES, serve_wsgi
from support.openapi_check import assert_documented

from host import cli, web
from host.core import paths, state, token
from host.support import redact

NODE_IP = "10.0.0.5"
# What the token file holds: 28 Crockford base32 characters grouped by 4.
TOKEN_SHAPE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){6}")
USER = os.environ.get("USER", "root")
PATHS = [("GET", "/api/status"), ("GET", "/api/install"), ("POST", "/api/setup"),
         ("POST", "/api/support-bundle"), ("GET", "/api/logs")]
# Each example of these starts a server or rewrites the file the fixture's server reads.
fixture_per_test = settings(max_examples=25, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])


def serve(root, limiter=None, journal=None):
    return serve_wsgi(web.make_app(root, node_ip=lambda: NODE_IP, limiter=limiter,
                                   journal=journal))


def get(url, path="/api/status", bearer=None, source="127.0.0.1"):
    """GET `path` from the loopback address `source` (all of 127/8 is this host); the
    status, headers and parsed body."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5,
                                            source_address=(source, 0))
    try:
        connection.request("GET", path, headers={} if bearer is None else {
            "Authorization": f"Bearer {bearer}"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


# --- item 3: no valid token on disk, no way in ---------------------------------------------

# What a token file may hold that is no token: each kind named, so every run covers all.
not_a_token = st.one_of(
    st.just(b""),
    st.text(" \t\r\n\v\f", min_size=1, max_size=8).map(str.encode),  # whitespace
    st.text(token.ALPHABET, min_size=1, max_size=27).map(str.encode),  # too short
    st.text(token.ALPHABET, min_size=29, max_size=60).map(str.encode),  # too long
    st.text(token.ALPHABET, min_size=257, max_size=300).map(str.encode),  # larger than a file
    # the right length, with a character no token has (U, +, /, =, _, non-ASCII)
    st.tuples(st.text(token.ALPHABET, min_size=28, max_size=28),
              st.sampled_from(["U", "+", "/", "=", "_", "é", "\x00", "%", "\uff10"]),
              st.integers(1, 27)).map(lambda t: (t[0][:t[2]] + t[1] + t[0][t[2]:]).encode()),
    # the base64url token of older appliances (unless it happens to spell a token)
    st.from_regex(r"[A-Za-z0-9_-]{32}", fullmatch=True).filter(
        lambda t: token.normalised(t) is None).map(str.encode),
    # not UTF-8 at all
    st.binary(min_size=1, max_size=64).filter(lambda b: not _utf8(b)),
)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _presented(contents: bytes) -> str:
    """What a guesser would present for a file holding `contents`: the file's own text, as
    far as a header can carry it."""
    return "".join(c for c in contents.decode("latin-1") if c.isprintable()).strip()


@fixture_per_test
@given(contents=not_a_token)
def test_a_token_file_without_a_valid_token_refuses_everyone_with_503(root, contents):
    token.token_path(root).write_bytes(contents)
    with serve(root) as url:
        for bearer in (None, "", _presented(contents), "x" * 32):
            headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
            for method, path in PATHS[:2] if bearer else PATHS:
                response = requests.request(method, f"{url}{path}", json={}, headers=headers,
                                            timeout=5)
                assert response.status_code == 503, (bearer, path, response.text)
                assert_documented(response, method, path)
                message = response.json()["error"]
                assert str(token.token_path(root)) in message
                assert "sudo alga-appliance ensure-token" in message
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_a_missing_or_unreadable_token_file_answers_503_naming_it(root):
    with serve(root) as url:
        status, _, body = get(url, bearer="x" * 32)
        assert status == 503 and body["error"] == (
            f"no valid setup token: {token.token_path(root)} does not exist; "
            "on the host run: sudo alga-appliance ensure-token")
        token.token_path(root).mkdir()  # a directory: read fails with EISDIR
        status, _, body = get(url, bearer="x" * 32)
        assert status == 503 and str(token.token_path(root)) in body["error"]
        assert "Is a directory" in body["error"] and "ensure-token" in body["error"]


@fixture_per_test
@given(contents=not_a_token)
def test_ensure_token_replaces_a_file_that_holds_no_valid_token(root, contents):
    path = token.token_path(root)
    path.write_bytes(contents)
    path.chmod(0o644)
    secret = token.ensure_token(root, owner=USER)
    assert TOKEN_SHAPE.fullmatch(token.for_people(secret))
    assert path.read_text() == token.for_people(secret) + "\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert token.ensure_token(root, owner=USER) == secret  # now kept


@fixture_per_test
@given(secret=st.text(token.ALPHABET, min_size=28, max_size=28),
       around=st.sampled_from(["", "\n", " \n", "\r\n", "\t", "\n\n"]))
def test_a_valid_token_file_is_kept_and_works_in_any_form(root, secret, around):
    written = (around + token.for_people(secret) + around).encode()
    token.token_path(root).write_bytes(written)
    assert token.ensure_token(root, owner=USER) == secret
    assert token.token_path(root).read_bytes() == written  # kept as it is
    grouped = token.for_people(secret)
    with serve(root) as url:
        for presented in (grouped, secret, grouped.lower(), secret.lower(),
                          grouped.replace("-", " "), f" {grouped} "):
            assert get(url, bearer=presented)[0] == 200, presented
        assert get(url, bearer=grouped[:-1])[0] == 401
        assert get(url, bearer=secret + secret[0])[0] == 401


def test_ensure_token_command_repairs_and_says_why_without_the_token(root, monkeypatch):
    # The service user does not exist here: the current user stands in for it.
    monkeypatch.setattr(token.pwd, "getpwnam", lambda name: pwd.getpwuid(os.getuid()))
    path = token.token_path(root)
    path.write_text("  \n")
    result = CliRunner().invoke(cli.main, ["ensure-token"])
    secret = token.read_token(root)
    assert result.exit_code == 0, result.output
    assert result.output == (f"ensure-token: {path} is empty; wrote a new setup token "
                             "(sudo alga-appliance token show prints it)\n")
    result = CliRunner().invoke(cli.main, ["ensure-token"])
    assert (result.exit_code, result.output) == (0, "")  # a valid token is left alone
    assert token.read_token(root) == secret
    path.write_text("short")
    result = CliRunner().invoke(cli.main, ["token", "show"])
    shown = result.output.splitlines()[0].removeprefix("Setup token: ")
    assert result.exit_code == 0 and TOKEN_SHAPE.fullmatch(shown)
    assert token.read_token(root) not in (secret, "short")
    assert shown == token.for_people(token.read_token(root))


def test_token_rotate_stops_the_old_token_at_once_and_redraws_the_banner(root, monkeypatch):
    monkeypatch.setattr(token.pwd, "getpwnam", lambda name: pwd.getpwuid(os.getuid()))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AGETTY_LOG", str(root / "agetty.log"))
    old = token.ensure_token(root, owner=USER)
    issue = root / paths.ISSUE_FILE.lstrip("/")
    with serve(root) as url:
        assert get(url, bearer=token.for_people(old))[0] == 200
        result = CliRunner().invoke(cli.main, ["token", "rotate"])
        assert result.exit_code == 0, result.output
        new = token.read_token(root)
        assert new != old and result.output.startswith(
            f"Setup token: {token.for_people(new)}\n")
        assert "The old token no longer works." in result.output
        for presented in (token.for_people(old), old, old.lower()):
            assert get(url, bearer=presented)[0] == 401
        assert get(url, bearer=token.for_people(new).lower())[0] == 200
    # The banner at once, not at the timer's next run.
    assert f"Setup token: {token.for_people(new)}" in issue.read_text()
    assert token.for_people(old) not in issue.read_text()
    assert (root / "agetty.log").read_text() == "--reload\n"


def test_token_rotate_is_for_root_only(root, monkeypatch):
    secret = token.ensure_token(root, owner=USER)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    result = CliRunner(mix_stderr=False).invoke(cli.main, ["token", "rotate"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("token rotate: only root rotates the token (it re-renders the "
                             "console banner); run: sudo alga-appliance token rotate\n")
    assert token.read_token(root) == secret


@pytest.mark.parametrize("contents", [None, b"", b" \n", b"short", b"\xff" * 40])
def test_serve_refuses_to_start_without_a_valid_token(root, contents):
    if contents is not None:
        token.token_path(root).write_bytes(contents)
    result = subprocess.run([sys.executable, "-m", "host", "serve", "--host", "127.0.0.1",
                             "--port", "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"serve: no valid setup token: "
                                    f"{token.token_path(root)} ")
    assert result.stderr.rstrip().endswith("on the host run: sudo alga-appliance ensure-token")
    assert "Traceback" not in result.stderr


# --- item 4: the lockout never locks out the admin ----------------------------------------


def test_the_right_token_always_works_from_a_locked_address(root):
    secret = token.ensure_token(root, owner=USER)
    with serve(root) as url:
        for _ in range(10):
            assert get(url, bearer="x" * 32)[0] == 401
        for _ in range(5):
            status, headers, body = get(url, bearer="y" * 32)
            assert status == 429 and 1 <= int(headers["Retry-After"]) <= 61
            assert body == {"error": "too many wrong tokens from this address; the right "
                                     "token still works"}
            assert get(url, bearer=secret)[0] == 200  # never 429
        assert get(url, bearer="x" * 32, source="127.0.0.2")[0] == 401  # per address
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz",
                                    "token abc", ""])
def test_requests_without_a_token_are_refused_but_never_counted(root, header):
    """An <img> or a link on any web page sends no Authorization header: a hundred of them
    must not lock the admin's address."""
    token.ensure_token(root, owner=USER)
    with serve(root) as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(30):
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("GET", "/api/status",
                               headers={} if header is None else {"Authorization": header})
            assert connection.getresponse().status == 401
            connection.close()
        for _ in range(10):  # the address still has its ten tries
            assert get(url, bearer="x" * 32)[0] == 401
        assert get(url, bearer="x" * 32)[0] == 429


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(root, scheme):
    secret = token.ensure_token(root, owner=USER)
    with serve(root) as url:
        answer = requests.get(f"{url}/api/status", timeout=5,
                              headers={"Authorization": f"{scheme} {secret}"})
        assert answer.status_code == 200, answer.text


def test_flooding_the_limiter_from_many_addresses_frees_no_locked_one(root):
    secret = token.ensure_token(root, owner=USER)
    limiter = web.FailedAuthLimiter(limit=3, tracked=8)
    with serve(root, limiter=limiter) as url:
        for _ in range(3):
            assert get(url, bearer="x" * 32)[0] == 401
        assert get(url, bearer="x" * 32)[0] == 429
        # Forty other addresses each fail twice (unlocked, so evictable): the table stays
        # bounded and 127.0.0.1 stays locked.
        for last in range(2, 42):
            for _ in range(2):
                assert get(url, bearer="x" * 32, source=f"127.0.0.{last}")[0] == 401
            assert len(limiter.failures) <= 8
        assert get(url, bearer="x" * 32)[0] == 429
        assert get(url, bearer=secret)[0] == 200


def test_a_full_table_of_locked_addresses_refuses_new_ones_and_lets_the_right_token_in(root):
    secret = token.ensure_token(root, owner=USER)
    limiter = web.FailedAuthLimiter(limit=2, tracked=3)
    with serve(root, limiter=limiter) as url:
        for last in (1, 2, 3):
            for _ in range(2):
                assert get(url, bearer="x" * 32, source=f"127.0.0.{last}")[0] == 401
        status, headers, _ = get(url, bearer="x" * 32, source="127.0.0.9")
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 61
        assert get(url, bearer=secret, source="127.0.0.9")[0] == 200
        assert set(limiter.failures) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# One step: a wrong token from one of a few clients (or many, to fill the table), or time
# passing.
steps = st.lists(st.one_of(st.tuples(st.just("fail"), st.integers(0, 30)),
                           st.tuples(st.just("wait"), st.floats(0.0, 40.0))), max_size=200)


@settings(max_examples=300, deadline=None)
@given(steps=steps, limit=st.integers(1, 5), tracked=st.integers(1, 6))
def test_the_limiter_keeps_every_lock_and_stays_bounded(steps, limit, tracked):
    clock = Clock()
    limiter = web.FailedAuthLimiter(limit=limit, window=60.0, tracked=tracked, clock=clock)
    locked_until: dict[str, float] = {}  # client: the time its last 429 said to wait until
    for kind, value in steps:
        if kind == "wait":
            clock.now += value
            continue
        client = f"10.0.0.{value}"
        wait = limiter.wrong_token(client)
        if client in locked_until and clock.now < locked_until[client]:
            assert wait is not None, "a locked client got in before its lock ended"
        if wait is not None:
            assert 1 <= wait <= 61
            locked_until[client] = max(locked_until.get(client, 0.0), clock.now + wait - 1)
        assert len(limiter.failures) <= tracked
        assert all(len(recent) <= limit for recent in limiter.failures.values())


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 10), attempts=st.integers(0, 40))
def test_the_limiter_counts_exactly_limit_failures_per_window(limit, attempts):
    clock = Clock()
    limiter = web.FailedAuthLimiter(limit=limit, window=60.0, clock=clock)
    answers = [limiter.wrong_token("10.0.0.1") for _ in range(attempts)]
    assert answers.count(None) == min(limit, attempts)
    assert all(wait == 61 for wait in answers[limit:])
    clock.now += 60.0  # the window has passed: a fresh allowance
    assert limiter.wrong_token("10.0.0.1") is None


# --- item 5: nothing secret or forged in the journal --------------------------------------


@pytest.fixture
def journal_lines(root):
    """The service's logging as `serve` configures it, its stderr kept here; a function
    giving the lines logged since the last call."""
    handler = web.configure_logging(root)
    written = io.StringIO()
    handler.setStream(written)

    def lines() -> list[str]:
        text = written.getvalue()
        written.seek(0)
        written.truncate()
        return text.splitlines()

    yield lines
    logging.getLogger().removeHandler(handler)


PROXY_PASSWORD = "Pr0xy pass#wörd"
PROXY_URL_PASSWORD = "urlSecret-4242"


def test_a_500_logs_no_secret_only_the_redacted_failure(root, journal_lines):
    secret = token.ensure_token(root, owner=USER)
    inputs = parse_with_admin({"proxy_url": "http://proxy.corp:3128", "proxy_user": "alga",
                               "proxy_password": PROXY_PASSWORD}, NODE_IP)
    state.write(state.SETUP_INPUTS, inputs, root)

    def journal(count):
        raise RuntimeError(f"proxy http://alga:{PROXY_URL_PASSWORD}@proxy.corp:3128 refused "
                           f"(password {PROXY_PASSWORD}, token {token.for_people(secret)} "
                           f"typed {secret})\n"
                           "alga-appliance.web: forged line")

    with serve(root, journal=journal) as url:
        status, _, body = get(url, "/api/logs?source=appliance", bearer=secret)
    assert status == 500 and body == {
        "error": "internal error; see journalctl -u alga-appliance"}
    lines = journal_lines()
    text = "\n".join(lines)
    for value in (PROXY_URL_PASSWORD, PROXY_PASSWORD, secret, token.for_people(secret)):
        assert value not in text
    assert not any(line.startswith("alga-appliance.web: forged") for line in lines)
    # This request's record: other tests' server threads, still closing, may log beside it.
    start = lines.index("alga-appliance.web: GET /api/logs failed")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("  "))
    assert lines[end] == ("RuntimeError: proxy http://<redacted>@proxy.corp:3128 refused "
                          "(password <redacted>, token <redacted> typed <redacted>)\\x0a"
                          "alga-appliance.web: forged line")
    assert end > start + 1  # the traceback's frames, each on an indented line


def failing_app(environ, start_response):
    """An app that fails after its answer started: waitress logs the request path and the
    exception itself."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError(f"cannot reach http://alga:{PROXY_URL_PASSWORD}@proxy.corp:3128 for "
                       f"{environ['PATH_INFO']}")


# Path pieces that end or rewrite a line once decoded: %0a, %0d, ESC, NUL, NEL, U+2028.
forging = st.lists(st.sampled_from(["%0a", "%0d", "%0d%0a", "%1b[2J", "%00", "%c2%85",
                                    "%e2%80%a8", "%5c", "a", "/", "FORGED:%20"]), max_size=12)


@fixture_per_test
@given(pieces=forging)
def test_waitress_logs_request_paths_escaped_and_exceptions_redacted(root, journal_lines,
                                                                     pieces):
    path = "/x" + "".join(pieces) + "FORGED:%20root%20login"
    with serve_wsgi(failing_app) as url:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", path)
        assert connection.getresponse().status == 500  # waitress's own answer, after its log
        connection.close()
        lines = journal_lines()
    # Waitress may log more (its queue depth, a socket closed by the test's shutdown), but
    # every line is a record of its own, an exception's, or a traceback frame's.
    record = re.compile(r"(waitress(\.\w+)?|alga-appliance\.web|[A-Z]\w*(Error|Exception)): ")
    assert all(record.match(line) or line.startswith("  ") for line in lines), lines
    assert not any(re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", line) for line in lines)
    assert PROXY_URL_PASSWORD not in "\n".join(lines)
    served = [i for i, line in enumerate(lines)
              if line.startswith("waitress: Exception while serving /x")]
    assert len(served) == 1 and lines[served[0]].endswith("FORGED: root login")
    failure = next(line for line in lines[served[0] + 1:] if not line.startswith("  "))
    assert failure.startswith("RuntimeError: cannot reach http://<redacted>@proxy.corp:3128 "
                              "for /x") and failure.endswith("FORGED: root login")


@settings(max_examples=500)
@given(text=st.text(), secret=st.text(min_size=8, max_size=40).filter(str.strip))
def test_a_log_line_is_one_line_and_holds_no_known_secret(text, secret):
    line = redact.log_line(f"{text} {secret} {text}", [redact.KnownValue("token", secret)])
    assert len(line.splitlines()) == 1 and "\n" not in line
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    # Gone, unless the rest of the line spells it by itself.
    assert secret not in line or secret in redact.log_line(text)
