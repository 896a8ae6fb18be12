"""The web service's API on a real waitress server on 127.0.0.1."""

import errno
import json
import os
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support.answers import ADMIN, SPOOLED_ADMIN, parse_with_admin, with_admin
from support.base import FAKES, TESTS, make_host_root, serve_wsgi
from support.openapi_check import assert_documented, document

from host import cli
from host.core import paths, pins, runlock, spool, state, token
from host.net import https
from host.setup import chain
from host.support import request as support_request
from host.update import request as update_request
from host.web import MAX_BODY, STATIC_DIR, make_app

NODE_IP = "10.0.0.5"


@pytest.fixture
def server(root):
    secret = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    with serve_wsgi(make_app(root, node_ip=lambda: NODE_IP)) as url:
        yield url, secret


def post_setup(url, secret, answers, **kwargs):
    """POST the answers, with the admin password every first setup needs (support.answers)."""
    if isinstance(answers, dict):
        answers = with_admin(answers)
    return requests.post(f"{url}/api/setup", json=answers, timeout=5,
                         headers={"Authorization": f"Bearer {secret}"}, **kwargs)


def test_token_file_is_private_and_stable(root):
    first = token.ensure_token(root, owner="root")
    assert len(first) == 28 and set(first) <= set(token.ALPHABET)  # 140 bits
    assert token.token_path(root).stat().st_mode & 0o777 == 0o600
    assert token.ensure_token(root, owner="root") == first


def test_healthz_needs_no_token(server):
    url, _ = server
    response = requests.get(f"{url}/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/setup"), ("POST", "/api/setup"), ("POST", "/api/setup/validate"),
    ("POST", "/api/setup/resume"),
    ("GET", "/api/status"), ("GET", "/api/install"), ("GET", "/api/release"),
    ("GET", "/api/logs"), ("GET", "/api/support-bundle"), ("POST", "/api/support-bundle"),
    ("GET", "/api/support-bundle/download"), ("GET", "/api/updates"), ("POST", "/api/updates"),
    ("POST", "/api/token/rotate"), ("GET", "/api/network-diagnostics"),
    ("POST", "/api/network-diagnostics")])
def test_every_api_endpoint_needs_the_token(server, root, header, method, path):
    url, _ = server
    headers = {} if header is None else {"Authorization": header}
    response = requests.request(method, f"{url}{path}", json={}, headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}  # no detail
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not spool.spool_file(spool.SETUP, root).exists()
    assert not spool.spool_file(spool.SUPPORT_BUNDLE, root).exists()
    assert not spool.spool_file(spool.NETWORK_DIAGNOSTICS, root).exists()


def test_failed_attempts_are_rate_limited_per_client(server):
    url, secret = server
    for _ in range(10):
        assert requests.get(f"{url}/api/status", headers={"Authorization": "Bearer x"},
                            timeout=5).status_code == 401
    limited = requests.get(f"{url}/api/status", headers={"Authorization": "Bearer x"},
                           timeout=5)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 61
    # The right token is never refused (issue 19: the lockout locked out the admin).
    assert requests.get(f"{url}/api/status", headers={"Authorization": f"Bearer {secret}"},
                        timeout=5).status_code == 200
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_security_headers_on_every_response(server):
    url, secret = server
    for response in (requests.get(f"{url}/healthz", timeout=5),
                     requests.get(f"{url}/api/status", timeout=5),
                     requests.get(f"{url}/api/status", timeout=5,
                                  headers={"Authorization": f"Bearer {secret}"})):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"


def test_status_and_install_read_the_state_files(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    assert requests.get(f"{url}/api/status", headers=auth, timeout=5).json() == {
        "status": None, "update_notice": None}
    install = {"status": "pending", "current_phase": None,
               "updated_at": "2026-11-27T10:00:00Z", "phases": {}}
    state.write(state.INSTALL_STATE, install, root)
    response = requests.get(f"{url}/api/install", headers=auth, timeout=5)
    assert_documented(response, "GET", "/api/install")
    body = response.json()
    progress = body.pop("timing")  # host/setup/timing.py's, tested in tests/setup/test_timing.py
    assert (progress["step"], progress["of"], progress["remaining_seconds"]) == (1, 9, 1455)
    assert body == {"install": install, "preflight": None, "refused": None, "credentials": None,
                    "waiting": None}


@pytest.mark.parametrize("path", ["/../host/token.py", "/%2e%2e/host/token.py",
                                  "/..%2fhost%2ftoken.py", "//etc/passwd",
                                  "/js/../../host/web.py", "/js/%2e%2e/%2e%2e/host/web.py",
                                  "/nonexistent.html"])
def test_static_files_never_leave_ui_static(server, path):
    url, _ = server
    response = requests.get(f"{url}{path}", timeout=5)
    assert response.status_code == 404, response.text[:200]
    assert b"def " not in response.content and b"root:" not in response.content


def test_static_files_are_served_with_headers(server):
    url, _ = server
    for path, content_type in (("/app.css", "text/css"), ("/js/main.js", "text/javascript"),
                               ("/index.html", "text/html"), ("/setup", "text/html")):
        response = requests.get(f"{url}{path}", timeout=5)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(
            content_type), path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/README.md", "/js/../README.md", "/%52EADME.md"])
def test_only_the_ui_files_are_served_from_ui_static(server, path):
    url, _ = server
    assert (STATIC_DIR / "README.md").is_file()  # there, but not part of the UI
    response = requests.get(f"{url}{path}", timeout=5)
    assert response.status_code == 404 and b"ui-static" not in response.content


def test_setup_context_offers_defaults_resolvers_and_the_last_answers(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    (root / "etc/resolv.conf").write_text("nameserver 127.0.0.53\noptions edns0\n")
    (root / "run/systemd/resolve").mkdir(parents=True)
    (root / "run/systemd/resolve/resolv.conf").write_text(
        "# upstream\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example\n")
    context = requests.get(f"{url}/api/setup", headers=auth, timeout=5).json()
    assert context["resolvers"] == ["10.0.0.2", "10.0.0.3"]  # the upstreams, not the stub
    assert context["defaults"] == {"channel": "stable", "app_url": f"http://{NODE_IP}:3000",
                                   "dns_mode": "system", "dns_servers": "",
                                   "ssh_authorized_keys": "", "ssh_password_login": False}
    assert context["admin_password_stored"] is False and context["admin_user"] == "alga-admin"
    assert context["answers"] is None and context["node_ip"] == NODE_IP
    answers = {"channel": "nightly", "app_url": "https://psa.example.com",
               "dns_mode": "custom", "dns_servers": "8.8.8.8, 8.8.4.4",
               "proxy_url": "http://proxy.corp:3128", "no_proxy": "corp.example"}
    stored = parse_with_admin(answers, NODE_IP)
    state.write(state.SETUP_INPUTS, stored, root)
    again = requests.get(f"{url}/api/setup", headers=auth, timeout=5).json()["answers"]
    assert parse_with_admin(again, NODE_IP, stored) == stored


HARD_PASSWORDS = ["CANARY p@ss:w/rd #1 %40 ü€", "CANARY%3A%2F", "CANARY 密码 '\"$\\"]


def leaked(text: str, user: str, password: str) -> list[str]:
    """The forms of the password found in `text` (an answer body, a log)."""
    forms = {password, quote(password, safe=""), quote(password), json.dumps(password)[1:-1],
             https.proxy_authorization(user, password).split()[1]}
    return [form for form in forms if form in text]


@pytest.mark.parametrize("password", HARD_PASSWORDS)
def test_the_proxy_password_is_never_sent_back_and_an_empty_one_keeps_it(
        server, root, monkeypatch, password):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    answers = {"proxy_url": "http://proxy.corp:3128", "proxy_user": "svc@corp",
               "proxy_password": password}
    validated = requests.post(f"{url}/api/setup/validate", json=with_admin(answers), headers=auth,
                              timeout=5)
    assert_documented(validated, "POST", "/api/setup/validate")
    assert validated.json()["inputs"]["proxy"]["user"] == "svc@corp"
    submitted = post_setup(url, secret, answers)
    assert submitted.status_code == 202
    assert_documented(submitted, "POST", "/api/setup")
    for response in (validated, submitted):
        assert "password" not in response.json()["inputs"]["proxy"]
        assert not leaked(response.text, "svc@corp", password)
    accept(monkeypatch, root)
    assert state.read(state.SETUP_INPUTS)["proxy"]["password"] == password

    context = requests.get(f"{url}/api/setup", headers=auth, timeout=5)
    assert_documented(context, "GET", "/api/setup")
    assert not leaked(context.text, "svc@corp", password)
    assert context.json()["proxy_password_stored"] is True
    shown = context.json()["answers"]
    assert shown["proxy_user"] == "svc@corp" and "proxy_password" not in shown
    # The wizard sends back what it showed, the password field left empty: kept.
    assert post_setup(url, secret, {**shown, "proxy_password": ""}).status_code == 202
    accept(monkeypatch, root)
    assert state.read(state.SETUP_INPUTS)["proxy"]["password"] == password
    # Another user needs its own password.
    refused = post_setup(url, secret, {**shown, "proxy_user": "other"})
    assert refused.status_code == 422 and refused.json()["fields"] == [
        {"field": "proxy_password", "message": "is needed with a proxy user"}]


def test_no_password_is_stored_without_a_proxy_user(server, root):
    url, secret = server
    state.write(state.SETUP_INPUTS, parse_with_admin({"proxy_url": "http://proxy.corp:3128"},
                                                       NODE_IP), root)
    context = requests.get(f"{url}/api/setup", timeout=5,
                           headers={"Authorization": f"Bearer {secret}"}).json()
    assert context["proxy_password_stored"] is False
    assert context["answers"]["proxy_user"] == ""


def accept(monkeypatch, root) -> None:
    """What the .path unit does with the spooled request (systemctl is the stand-in)."""
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(root / "systemctl.calls"))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 0, result.output
    # The run it queued is owned by this (live) process, so setup counts as starting: as if
    # it had finished, only the inputs it recorded matter here.
    state.INSTALL_STATE.path(root).unlink()


def test_hostile_proxy_answers_never_give_a_5xx_or_echo_the_password(server, root):
    url, secret = server
    session = requests.Session()
    hostile = st.lists(st.sampled_from(["@", ":", "#", "/", "%", "%40", " ", "ü", "\n", "\x00",
                                        "?", "[", "]"]) | st.characters(), max_size=10).map(
        lambda parts: "CANARY" + "".join(parts))

    @settings(max_examples=60, deadline=None)
    @given(password=hostile, where=st.sampled_from(["url", "field", "both"]),
           user=st.sampled_from(["", "svc", "a:b", "ü@x"]), path=st.sampled_from(
               ["/api/setup/validate", "/api/setup"]))
    def fuzz(password, where, user, path):
        answers = {"proxy_url": "http://proxy.corp:3128"}
        if where in ("url", "both"):
            answers["proxy_url"] = f"http://{user}:{password}@proxy.corp:3128"
        if where in ("field", "both"):
            answers |= {"proxy_user": user, "proxy_password": password}
        response = session.post(f"{url}{path}", json=with_admin(answers), timeout=5,
                                headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code in (202, 200, 409, 422), response.text
        assert "CANARY" not in response.text
        spool.spool_file(spool.SETUP, root).unlink(missing_ok=True)

    fuzz()


PAYLOAD_SOURCE = "oci://registry.msp.example/alga/alga-appliance-release"
SITE_SOURCE = "oci://mirror.corp.example:5000/alga/alga-appliance-release@sha256:" + "c" * 64


@pytest.mark.parametrize(("payload", "site", "shown"), [
    (None, None, {"reference": pins.RELEASE_SOURCE, "origin": "the built-in default"}),
    (PAYLOAD_SOURCE, None, {"reference": PAYLOAD_SOURCE, "origin": "the ISO payload"}),
    (PAYLOAD_SOURCE, SITE_SOURCE, {"reference": SITE_SOURCE, "origin": "endpoints.json"}),
], ids=["default", "payload", "endpoints"])
def test_setup_context_names_the_release_source_and_where_it_was_set(server, root, payload,
                                                                     site, shown):
    """The wizard's review shows it, so the admin sees where releases will come from before
    any support override."""
    url, secret = server
    if payload:
        paths.on_host(paths.CURRENT_DIR, root).mkdir(parents=True, exist_ok=True)
        state.write(state.RELEASE_SOURCE, {"release_source": payload}, root)
    if site:
        state.write(state.ENDPOINTS, {"release_source": site}, root)
    response = requests.get(f"{url}/api/setup", timeout=5,
                            headers={"Authorization": f"Bearer {secret}"})
    assert_documented(response, "GET", "/api/setup")
    assert response.json()["release_source"] == shown


def test_validate_checks_answers_without_submitting(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    ok = requests.post(f"{url}/api/setup/validate", json={**ADMIN, "dns_mode": "custom",
                                                          "dns_servers": "1.1.1.1"},
                       headers=auth, timeout=5)
    assert ok.status_code == 200 and ok.json()["inputs"]["dns"]["servers"] == ["1.1.1.1"]
    bad = requests.post(f"{url}/api/setup/validate", json={**ADMIN, "dns_mode": "custom",
                                                           "dns_servers": "1.1.1.999"},
                        headers=auth, timeout=5)
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["fields"]] == ["dns_servers"]
    assert not spool.spool_file(spool.SETUP, root).exists()


def install_with(phases: dict) -> dict:
    return {"status": "failed", "current_phase": None, "updated_at": "2026-11-27T10:00:00Z",
            "phases": {name: {"state": phase_state, "started_at": None, "finished_at": None,
                              "last_action": None, "failure": failure}
                       for name, (phase_state, failure) in phases.items()}}


def test_phase_logs_are_a_bounded_tail_of_known_phases_only(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    state.write(state.INSTALL_STATE, install_with({"preflight": ("succeeded", None),
                                                   "k3s": ("failed", None)}), root)
    log = root / paths.LOG_DIR.lstrip("/") / "k3s.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"line {i} " + "x" * 100 + "\n" for i in range(5000)))  # ~0.5 MB
    body = requests.get(f"{url}/api/logs", params={"source": "phase-k3s", "lines": 3},
                        headers=auth, timeout=5).json()
    assert body == {"source": "phase-k3s", "label": "Setup phase: k3s", "previous": False,
                    "lines": [f"line {i} " + "x" * 100 for i in (4997, 4998, 4999)],
                    "live": False,
                    "note": "the phase is not running (failed): this log no longer grows"}
    most = requests.get(f"{url}/api/logs", params={"source": "phase-k3s", "lines": 2000},
                        headers=auth, timeout=5).json()["lines"]
    assert len(most) == 2000 and most[-1].startswith("line 4999 ")
    empty = requests.get(f"{url}/api/logs", params={"source": "phase-preflight"},
                         headers=auth, timeout=5)
    assert empty.json()["lines"] == [] and empty.json()["note"] == "this phase has not run yet"
    for params in ({"source": "dns"}, {"source": "../k3s"}, {"source": "k3s.log"}, {},
                   {"source": "phase-../k3s"}, {"source": "phase-k3s.log"},
                   {"source": "phase-k3s", "lines": 0}, {"source": "phase-k3s", "lines": 2001},
                   {"source": "phase-k3s", "lines": "1e3"},
                   {"source": "phase-k3s", "lines": "٣"},
                   {"source": "phase-k3s", "previous": "true"},
                   {"source": "db", "previous": "yes"}):
        response = requests.get(f"{url}/api/logs", params=params, headers=auth, timeout=5)
        assert response.status_code == 400, params
        assert_documented(response, "GET", "/api/logs")


@settings(max_examples=40, deadline=None)
@given(noise=st.text(max_size=200), at=st.integers(0, 3))
def test_a_secret_in_a_phase_log_comes_out_redacted(tmp_path_factory, noise, at):
    """Whatever surrounds them, the setup token (both ways it is written) and a password
    in a phase log never reach the page; no log content gives a 500."""
    root = tmp_path_factory.mktemp("root")
    make_host_root(root, paths.SPOOL_DIR, paths.TOKEN_DIR)
    secret = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    lines = [noise, f"token {secret} accepted", f"as people write it: {token.for_people(secret)}",
             "psql postgres://alga:Hunter2-canary@db/server"]
    lines.insert(at, noise)
    log = root / paths.LOG_DIR.lstrip("/") / "dns.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    with serve_wsgi(make_app(root, node_ip=lambda: NODE_IP)) as url:
        response = requests.get(f"{url}/api/logs", params={"source": "phase-dns"},
                                headers={"Authorization": f"Bearer {secret}"}, timeout=5)
    assert response.status_code == 200, response.text
    shown = "\n".join(response.json()["lines"])
    assert secret not in shown and token.for_people(secret) not in shown
    assert "Hunter2-canary" not in shown and shown.count("<redacted>") >= 3


def test_journal_logs_come_from_journalctl_for_the_appliance_units(server, root, tmp_path,
                                                                     monkeypatch):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_JOURNAL_LOG", str(tmp_path / "journal.log"))
    response = requests.get(f"{url}/api/logs", params={"source": "appliance", "lines": 5},
                            headers=auth, timeout=5)
    assert response.status_code == 200 and len(response.json()["lines"]) == 5
    assert_documented(response, "GET", "/api/logs")
    assert (tmp_path / "journal.log").read_text().split() == [
        "--no-pager", "--quiet", "--output", "short-iso", "--lines", "5", "--unit",
        "alga-appliance*"]
    monkeypatch.setenv("FAKE_JOURNAL_FAIL", "1")
    failed = requests.get(f"{url}/api/logs", params={"source": "appliance"}, headers=auth,
                          timeout=5)
    assert failed.status_code == 503 and "journalctl -u" in failed.json()["error"]
    assert_documented(failed, "GET", "/api/logs")


def test_a_failure_recorded_by_an_older_version_reads_and_setup_can_retry(server, root):
    """Before 0.1.1 failure records carried retry_safe (always true) and the install state
    no request_id: such a file still reads, and blocks nothing."""
    url, secret = server
    failure = {"category": "k3s", "last_action": "x", "log_excerpt": "", "suspected_cause":
               "y", "next_step": "z", "retry_safe": False, "support_command": "z"}
    old = install_with({"k3s": ("failed", failure)})
    old.pop("request_id", None)
    state.write(state.INSTALL_STATE, old, root)
    auth = {"Authorization": f"Bearer {secret}"}
    shown = requests.get(f"{url}/api/install", headers=auth, timeout=5)
    assert shown.status_code == 200 and shown.json()["install"]["phases"]["k3s"]["failure"] \
        == failure
    response = post_setup(url, secret, {})
    assert response.status_code == 202, response.text
    assert response.json()["request_id"] in spool.spool_file(spool.SETUP, root).read_text()


def test_release_reads_the_selected_release(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    assert requests.get(f"{url}/api/release", headers=auth, timeout=5).json() == {
        "release": None}
    example = next((TESTS / "schema_examples/selected-release").glob("valid*"))
    state.write(state.SELECTED_RELEASE, json.loads(example.read_text()), root)
    response = requests.get(f"{url}/api/release", headers=auth, timeout=5)
    assert response.json()["release"] == json.loads(example.read_text())
    assert_documented(response, "GET", "/api/release")


def test_support_bundle_request_is_spooled_once_and_refused_while_one_runs(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    first = requests.post(f"{url}/api/support-bundle", headers=auth, timeout=5)
    assert first.status_code == 202 and first.json()["accepted"] is True
    assert spool.take(spool.SUPPORT_BUNDLE, root)["id"] == first.json()["request_id"]
    assert requests.post(f"{url}/api/support-bundle", headers=auth, timeout=5).status_code \
        == 202
    assert_documented(first, "POST", "/api/support-bundle")
    again = requests.post(f"{url}/api/support-bundle", headers=auth, timeout=5)
    assert again.status_code == 409 and "already asked for" in again.json()["error"]
    assert_documented(again, "POST", "/api/support-bundle")
    spool.take(spool.SUPPORT_BUNDLE, root)
    running = json.loads((TESTS / "schema_examples/support-bundle-status/"
                          "valid-running.json").read_text())
    state.write(state.SUPPORT_BUNDLE_STATUS, running, root)
    busy = requests.post(f"{url}/api/support-bundle", headers=auth, timeout=5)
    assert busy.status_code == 409 and "being made" in busy.json()["error"]
    listing = requests.get(f"{url}/api/support-bundle", headers=auth, timeout=5)
    assert listing.json() == {"status": running, "bundles": [], "waiting": None}
    assert_documented(listing, "GET", "/api/support-bundle")


def test_network_diagnostics_are_spooled_once_and_shown_with_their_report(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    empty = requests.get(f"{url}/api/network-diagnostics", headers=auth, timeout=5)
    assert empty.json() == {"status": None, "report": None}
    assert_documented(empty, "GET", "/api/network-diagnostics")
    first = requests.post(f"{url}/api/network-diagnostics", headers=auth, timeout=5)
    assert first.status_code == 202 and first.json()["accepted"] is True
    assert_documented(first, "POST", "/api/network-diagnostics")
    again = requests.post(f"{url}/api/network-diagnostics", headers=auth, timeout=5)
    assert again.status_code == 409 and "already asked for" in again.json()["error"]
    assert_documented(again, "POST", "/api/network-diagnostics")
    assert spool.take(spool.NETWORK_DIAGNOSTICS, root)["id"] == first.json()["request_id"]
    examples = TESTS / "schema_examples"
    running = json.loads((examples / "network-diagnostics/valid-running.json").read_text())
    state.write(state.NETWORK_DIAGNOSTICS, running, root)
    busy = requests.post(f"{url}/api/network-diagnostics", headers=auth, timeout=5)
    assert busy.status_code == 409 and "running" in busy.json()["error"]
    shown = requests.get(f"{url}/api/network-diagnostics", headers=auth, timeout=5).json()
    assert shown == {"status": running, "report": None}  # no report until it succeeds
    report = json.loads(next((examples / "preflight-report").glob("valid*")).read_text())
    state.write(state.NETWORK_DIAGNOSTICS_REPORT, report, root)
    state.write(state.NETWORK_DIAGNOSTICS, {**running, "state": "succeeded",
                                            "finished_at": running["started_at"]}, root)
    done = requests.get(f"{url}/api/network-diagnostics", headers=auth, timeout=5)
    assert done.json()["report"] == report
    assert_documented(done, "GET", "/api/network-diagnostics")
    state.NETWORK_DIAGNOSTICS.path(root).write_text("{broken")  # the next run replaces it
    broken = requests.get(f"{url}/api/network-diagnostics", headers=auth, timeout=5)
    assert broken.status_code == 200 and broken.json() == {"status": None, "report": None}


def test_support_bundle_download_serves_only_our_archives(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    directory = support_request.bundle_dir(root)
    directory.mkdir()
    name = "alga-appliance-support-alga-20261127T100000Z.tar.gz"
    archive = directory / name
    archive.write_bytes(os.urandom(300_000))
    archive.chmod(0o600)
    listed = requests.get(f"{url}/api/support-bundle", headers=auth, timeout=5).json()
    assert [(b["name"], b["size_bytes"]) for b in listed["bundles"]] == [(name, 300_000)]
    response = requests.get(f"{url}/api/support-bundle/download", params={"name": name},
                            headers=auth, timeout=5)
    assert response.status_code == 200 and response.content == archive.read_bytes()
    assert response.headers["Content-Type"] == "application/gzip"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert_documented(response, "GET", "/api/support-bundle/download")
    (root / paths.TOKEN_FILE.lstrip("/")).chmod(0o600)
    for bad in ("../setup-token", f"{name}/../../setup-token", "setup-token",
                "alga-appliance-support-x/../../setup-token.tar.gz", "", name + ".x",
                "alga-appliance-support-nothere.tar.gz"):
        refused = requests.get(f"{url}/api/support-bundle/download", params={"name": bad},
                               headers=auth, timeout=5)
        assert refused.status_code == 404, bad
        assert_documented(refused, "GET", "/api/support-bundle/download")
    no_token = requests.get(f"{url}/api/support-bundle/download", params={"name": name},
                            timeout=5)
    assert no_token.status_code == 401


def open_temporary_files(directory) -> list[str]:
    """This process's open files in `directory` (waitress's overflow buffers are unlinked
    temporary files: only their descriptors show them)."""
    fds = Path("/proc/self/fd")
    targets = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
    return [target for target in targets if target.startswith(str(directory))]


def test_a_slow_download_of_a_large_bundle_is_sent_from_its_file_not_copied_to_disk(
        server, root, tmp_path, monkeypatch):
    """Waitress copies an answer it cannot send yet to a temporary file past 1 MiB: a bundle
    must be read from its own file as the client takes it, however slowly."""
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))  # where waitress's buffers go
    url, secret = server
    directory = support_request.bundle_dir(root)
    directory.mkdir()
    name = "alga-appliance-support-alga-20261127T100000Z.tar.gz"
    content = os.urandom(16 << 20)
    (directory / name).write_bytes(content)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(f"GET /api/support-bundle/download?name={name} HTTP/1.1\r\n"
                       f"Host: {host}\r\nAuthorization: Bearer {secret}\r\n"
                       "Connection: close\r\n\r\n".encode())
        started = client.recv(4096)  # the answer has started; the rest waits in the server
        time.sleep(1.5)
        assert open_temporary_files(spill) == []
        received = started + b"".join(iter(lambda: client.recv(1 << 20), b""))
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and body == content


def succeeded_install(root) -> None:
    state.write(state.INSTALL_STATE, install_with({"release": ("succeeded", None)}) | {
        "status": "succeeded"}, root)


def history_entry(result: str, step: str | None = None) -> dict:
    release = {"source": "git", "channel": "stable", "release_version": "1.0",
               "app_version": "1.0", "repo_branch": "release/1.0.0"}
    return {"id": f"20261127T100000Z-{result}", "action": "apply", "who": "web",
            "channel": "stable", "started_at": "2026-11-27T10:00:00Z",
            "finished_at": None if result == "running" else "2026-11-27T10:05:00Z",
            "result": result, "step": step, "from": release, "to": release,
            "changes": None, "duration_s": None if result == "running" else 300.0,
            "failure": None}


def check_entry(channel: str, digest: str | None = None,
                result: str = "update_available") -> dict:
    """A check the appliance made and recorded, which found `digest` (OCI) on `channel`."""
    found = {"source": "oci" if digest else "git", "channel": channel,
             "release_version": "1.1", "app_version": "1.1",
             **({"manifest_digest": digest} if digest else {"repo_branch": "main"})}
    return {**history_entry(result), "id": f"20261127T110000Z-{channel}", "action": "check",
            "channel": channel, "to": found}


def test_update_requests_are_validated_spooled_once_and_refused_while_busy(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    before = requests.get(f"{url}/api/updates", headers=auth, timeout=5)
    assert before.json() == {"current": None, "history": [],
                             "busy": "updates are possible once setup has completed",
                             "notice": None, "waiting": None}
    assert_documented(before, "GET", "/api/updates")
    assert requests.post(f"{url}/api/updates", json={"action": "check", "channel": "stable"},
                         headers=auth, timeout=5).status_code == 409
    succeeded_install(root)
    for body, fields in (({}, ["action", "channel"]),
                         ({"action": "upgrade", "channel": "stable"}, ["action"]),
                         ({"action": "check", "channel": "beta"}, ["channel"]),
                         ({"action": "apply", "channel": "nightly", "confirmed": "yes"},
                          ["confirmed"]),
                         ({"action": "check", "channel": "stable", "force": True}, ["force"]),
                         ({"action": "apply", "channel": "stable", "confirmed": False,
                           "digest": "sha256:" + "A" * 64}, ["digest"]),
                         ({"action": "apply", "channel": "stable", "confirmed": False,
                           "digest": "stable"}, ["digest"])):
        bad = requests.post(f"{url}/api/updates", json=body, headers=auth, timeout=5)
        assert bad.status_code == 422 and [f["field"] for f in bad.json()["fields"]] == fields
        assert_documented(bad, "POST", "/api/updates")
    confirmed = {"action": "apply", "channel": "nightly", "confirmed": True}
    unchecked = requests.post(f"{url}/api/updates", json=confirmed, headers=auth, timeout=5)
    assert unchecked.status_code == 422 and unchecked.json()["fields"][0]["field"] == "confirmed"
    state.write(state.UPDATE_HISTORY, {"entries": [check_entry("nightly")]}, root)
    accepted = requests.post(f"{url}/api/updates", json=confirmed, headers=auth, timeout=5)
    assert accepted.status_code == 202
    assert_documented(accepted, "POST", "/api/updates")
    spooled = json.loads(spool.spool_file(spool.UPDATE, root).read_text())
    assert {k: spooled[k] for k in ("action", "channel", "confirmed", "who")} == {
        "action": "apply", "channel": "nightly", "confirmed": True, "who": "web"}
    spool.take(spool.UPDATE, root)
    reviewed = "sha256:" + "0f" * 32
    state.write(state.UPDATE_HISTORY, {"entries": [check_entry("stable", reviewed)]}, root)
    with_digest = requests.post(f"{url}/api/updates", headers=auth, timeout=5, json={
        "action": "apply", "channel": "stable", "confirmed": False, "digest": reviewed})
    assert with_digest.status_code == 202
    assert_documented(with_digest, "POST", "/api/updates")
    assert json.loads(spool.spool_file(spool.UPDATE, root).read_text())["digest"] == reviewed
    waiting = requests.post(f"{url}/api/updates", json={"action": "check", "channel": "stable"},
                            headers=auth, timeout=5)
    assert waiting.status_code == 409 and "already waiting" in waiting.json()["error"]
    spool.take(spool.UPDATE, root)
    state.write(state.UPDATE_HISTORY, {"entries": [history_entry("running", "waiting for Flux")]},
                root)
    running = requests.post(f"{url}/api/updates", json={"action": "check", "channel": "stable"},
                            headers=auth, timeout=5)
    assert running.status_code == 409 and "waiting for Flux" in running.json()["error"]
    listed = requests.get(f"{url}/api/updates", headers=auth, timeout=5)
    assert listed.json()["history"][0]["result"] == "running"
    assert_documented(listed, "GET", "/api/updates")


def test_a_check_without_a_channel_checks_the_installed_one(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    succeeded_install(root)
    none_yet = requests.post(f"{url}/api/updates", json={"action": "check"}, headers=auth,
                             timeout=5)
    assert none_yet.status_code == 409
    assert none_yet.json()["error"] == (
        "there is no installed channel to check: no release is installed yet; updates are "
        "possible once setup has completed")
    assert_documented(none_yet, "POST", "/api/updates")
    assert not spool.pending(spool.UPDATE, root)
    selected = json.loads((TESTS / "schema_examples/selected-release/valid-oci.json")
                          .read_text())
    state.write(state.SELECTED_RELEASE, {**selected, "channel": "nightly"}, root)
    # A channel given, even a wrong one, is the admin's: checked as given, never replaced.
    for body, fields in (({"action": "check", "channel": None}, ["channel"]),
                         ({"action": "check", "channel": ""}, ["channel"]),
                         ({"action": "apply"}, ["channel"]),
                         ({"channel": "stable"}, ["action"])):
        bad = requests.post(f"{url}/api/updates", json=body, headers=auth, timeout=5)
        assert bad.status_code == 422 and [f["field"] for f in bad.json()["fields"]] == fields
        assert_documented(bad, "POST", "/api/updates")
    asked = requests.post(f"{url}/api/updates", json={"action": "check"}, headers=auth,
                          timeout=5)
    assert asked.status_code == 202, asked.text
    assert_documented(asked, "POST", "/api/updates")
    spooled = json.loads(spool.spool_file(spool.UPDATE, root).read_text())
    assert (spooled["action"], spooled["channel"]) == ("check", "nightly")


def test_token_rotate_replaces_the_token(root):
    first = token.ensure_token(root, owner="root")
    second = token.rotate_token(root, owner="root")
    assert first != second and token.read_token(root) == second


def test_valid_setup_is_spooled_for_systemd(server, root):
    url, secret = server
    response = post_setup(url, secret, {"channel": "nightly", "app_url": "psa.example.com"})
    assert response.status_code == 202
    assert response.json()["inputs"]["app_url"] == "http://psa.example.com:3000"
    spooled = json.loads(spool.spool_file(spool.SETUP, root).read_text())
    assert spooled["answers"] == {"channel": "nightly", "app_url": "psa.example.com"}
    again = post_setup(url, secret, {})
    assert again.status_code == 409 and "already waiting" in again.json()["error"]


def test_concurrent_setup_submissions_accept_exactly_one(server, root):
    url, secret = server
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: post_setup(url, secret, {"channel": "stable"})
                              .status_code, range(16)))
    assert sorted(codes) == [202] + [409] * 15
    assert [p.name for p in spool.spool_file(spool.SETUP, root).parent
            .iterdir()] == [spool.SETUP.filename]  # no temp files left behind


def test_invalid_answers_name_each_field(server, root):
    url, secret = server
    response = post_setup(url, secret, {"channel": "beta", "dns_mode": "custom"})
    assert response.status_code == 422
    assert {f["field"] for f in response.json()["fields"]} == {"channel", "dns_servers"}
    assert not spool.spool_file(spool.SETUP, root).exists()


def test_setup_while_running_is_refused(server, root):
    url, secret = server
    # A run owned by a live process (this one) is running.
    state.write(state.INSTALL_STATE, {"status": "running", "current_phase": "preflight",
                                      "updated_at": "2026-11-27T10:00:00Z", "phases": {},
                                      "owner": runlock.owner()})
    response = post_setup(url, secret, {})
    assert response.status_code == 409 and "preflight" in response.json()["error"]


def test_unknown_api_paths_and_methods_need_the_token_before_they_are_named(server):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    for method, path, status, allow in (("GET", "/api/nope", 404, None),
                                        ("GET", "/api/", 404, None),
                                        ("DELETE", "/api/setup", 405, "GET, POST"),
                                        ("POST", "/api/status", 405, "GET")):
        without = requests.request(method, f"{url}{path}", timeout=5)
        assert without.status_code == 401, (method, path)
        answered = requests.request(method, f"{url}{path}", headers=auth, timeout=5)
        assert answered.status_code == status, (method, path)
        assert answered.headers.get("Allow") == allow
    for method, path, allow in (("POST", "/healthz", "GET"), ("PUT", "/setup", "GET, HEAD"),
                                ("DELETE", "/js/main.js", "GET, HEAD")):
        refused = requests.request(method, f"{url}{path}", timeout=5)  # no token needed
        assert (refused.status_code, refused.headers["Allow"]) == (405, allow), path


def test_update_requests_may_not_say_who_asked_or_when(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    succeeded_install(root)
    for field, value in (("requested_at", "2020-01-01T00:00:00Z"), ("who", "web"),
                         ("id", "20200101T000000Z-00000000")):
        refused = requests.post(f"{url}/api/updates", headers=auth, timeout=5, json={
            "action": "check", "channel": "stable", field: value})
        assert refused.status_code == 422, field
        assert refused.json()["fields"] == [{"field": field,
                                             "message": "is set by the appliance; leave it out"}]
        assert_documented(refused, "POST", "/api/updates")
    assert not spool.pending(spool.UPDATE, root)
    accepted = requests.post(f"{url}/api/updates", headers=auth, timeout=5,
                             json={"action": "check", "channel": "stable"})
    assert accepted.status_code == 202
    spooled = json.loads(spool.spool_file(spool.UPDATE, root).read_text())
    assert spooled["requested_at"] >= state.timestamp()[:10]  # today, the server's clock


@pytest.mark.parametrize(("entries", "body", "field"), [
    ([], {"confirmed": True}, "confirmed"),
    ([], {"digest": "sha256:" + "ab" * 32}, "digest"),
    # The last check was of another channel, found nothing to apply, or failed.
    ([check_entry("stable")], {"confirmed": True}, "confirmed"),
    ([check_entry("nightly", result="up_to_date")], {"confirmed": True}, "confirmed"),
    ([check_entry("nightly", result="failed")], {"confirmed": True}, "confirmed"),
    # A digest that is not the one the last check found, or a digest for a git plan.
    ([check_entry("nightly", "sha256:" + "cd" * 32)], {"digest": "sha256:" + "ab" * 32},
     "digest"),
    ([check_entry("nightly")], {"confirmed": True, "digest": "sha256:" + "ab" * 32}, "digest"),
    # An older check that matched does not count once a newer one was made.
    ([check_entry("stable", "sha256:" + "cd" * 32), check_entry("nightly", "sha256:" + "ab" * 32)],
     {"digest": "sha256:" + "cd" * 32}, "digest"),
])
def test_a_confirmation_is_honoured_only_against_the_last_check_the_server_made(
        server, root, entries, body, field):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    succeeded_install(root)
    state.write(state.UPDATE_HISTORY, {"entries": entries}, root)
    request = {"action": "apply", "channel": "nightly", **body}
    refused = requests.post(f"{url}/api/updates", json=request, headers=auth, timeout=5)
    assert refused.status_code == 422 and [f["field"] for f in refused.json()["fields"]] == [
        field]
    assert "check" in refused.json()["fields"][0]["message"]
    assert_documented(refused, "POST", "/api/updates")
    assert not spool.pending(spool.UPDATE, root)
    # Spooled anyway (the web process is not trusted), the acceptor refuses it and says why.
    request_id = spool.submit(spool.UPDATE, {"confirmed": False, **request, "who": "web",
                                             "requested_at": "2026-12-01T10:00:00Z"}, root)
    entry = update_request.accept(root)
    assert (entry["request_id"], entry["result"]) == (request_id, "failed")
    assert entry["failure"]["suspected_cause"].startswith(field)
    assert not spool.pending(spool.UPDATE, root)


def test_a_huge_lines_number_is_a_bad_query_not_a_crash(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    state.write(state.INSTALL_STATE, install_with({"k3s": ("failed", None)}), root)
    for lines in ("9" * 4400, "0" * 4400 + "5", "00005"):
        response = requests.get(f"{url}/api/logs", params={"source": "k3s", "lines": lines},
                                headers=auth, timeout=5)
        assert response.status_code == 400 and response.json()["fields"] == [
            {"field": "lines", "message": "a whole number from 1 to 2000"}]
        assert_documented(response, "GET", "/api/logs")


@pytest.mark.parametrize("path", ["/api/setup", "/api/setup/validate", "/api/updates"])
def test_a_deeply_nested_body_is_a_bad_request_not_a_crash(server, root, path):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    succeeded_install(root)  # so that an update request would be taken
    for body in (b"[" * 30000, b'{"channel": ' + b"[" * 30000 + b"]" * 30000 + b"}"):
        response = requests.post(f"{url}{path}", data=body, headers=auth, timeout=5)
        assert response.status_code == 400 and "nested too deeply" in response.json()["error"]
        assert_documented(response, "POST", path)
    assert not any(spool.pending(kind, root) for kind in spool.KINDS)


def test_bad_requests(server):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    assert requests.get(f"{url}/api/nope", headers=auth, timeout=5).status_code == 404
    not_allowed = requests.delete(f"{url}/api/setup", headers=auth, timeout=5)
    assert not_allowed.status_code == 405 and not_allowed.headers["Allow"] == "GET, POST"
    for path in ("/api/setup", "/api/setup/validate"):
        big = requests.post(f"{url}{path}", data=b"x" * (MAX_BODY + 1), headers=auth, timeout=5)
        assert big.status_code == 413
        for body in (b"[1]", b"{not json", b"\xff\xfe"):
            assert requests.post(f"{url}{path}", data=body, headers=auth,
                                 timeout=5).status_code == 400, (path, body)


def test_accept_setup_records_inputs_and_starts_the_target(root, tmp_path, monkeypatch):
    calls = tmp_path / "systemctl.calls"
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(calls))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    request_id = spool.submit(spool.SETUP, {**SPOOLED_ADMIN, "answers": {"channel": "nightly"},
                                            "submitted_at": "2026-12-01T10:00:00Z"}, root)
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 0, result.output
    assert state.read(state.SETUP_INPUTS)["channel"] == "nightly"
    install = state.read(state.INSTALL_STATE)
    assert install["request_id"] == request_id and install["status"] == "pending"
    assert not spool.spool_file(spool.SETUP, root).exists()
    assert calls.read_text() == "start --no-block alga-appliance-setup.target\n"


def test_accepting_a_retry_queues_what_failed_and_keeps_what_succeeded(root, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.calls"))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    failure = {"category": "k3s", "last_action": "x", "log_excerpt": "", "suspected_cause":
               "y", "next_step": "z", "support_command": "z"}
    before = install_with({"preflight": ("succeeded", None), "k3s": ("failed", failure)})
    before["phases"]["preflight"]["inputs_digest"] = "0" * 64
    before["completed_at"] = "2026-11-27T09:00:00Z"
    state.write(state.INSTALL_STATE, before, root)
    request = {**SPOOLED_ADMIN, "answers": {}, "submitted_at": "2026-12-01T10:00:00Z"}
    with runlock.held(root):  # a phase still holds the lock: nothing is taken up
        request_id = spool.submit(spool.SETUP, request, root)
        refused = CliRunner().invoke(cli.main, ["accept-setup"])
    assert refused.exit_code == 1 and "another setup or update is running" in refused.output
    assert state.read(state.INSTALL_STATE) == before and state.read(state.SETUP_INPUTS) is None
    request_id = spool.submit(spool.SETUP, request, root)
    assert CliRunner().invoke(cli.main, ["accept-setup"]).exit_code == 0
    queued = state.read(state.INSTALL_STATE)
    assert (queued["status"], queued["request_id"]) == ("pending", request_id)
    assert queued["phases"]["preflight"] == before["phases"]["preflight"]  # may be skipped
    assert queued["phases"]["k3s"]["state"] == "pending"
    assert queued["phases"]["k3s"]["failure"] is None
    assert set(queued["phases"]) == set(chain.NAMES)
    assert queued["completed_at"] == before["completed_at"]


def test_accept_setup_rejects_a_tampered_request(root):
    spool.submit(spool.SETUP, {**SPOOLED_ADMIN, "answers": {"channel": "beta"},
                               "submitted_at": "2026-12-01T10:00:00Z"}, root)
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 1 and "rejected" in result.output
    assert state.read(state.SETUP_INPUTS) is None and state.read(state.INSTALL_STATE) is None
    tampered = spool.spool_file(spool.SETUP, root)
    tampered.write_text('{"id": "x", "answers": [' * 10 + "\n")
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 1 and "malformed (not JSON)" in result.output
    assert not tampered.exists() and state.read(state.SETUP_INPUTS) is None


@pytest.mark.parametrize("command", ["accept-setup", "accept-update", "accept-support-bundle"])
def test_a_hostile_spool_file_is_rejected_and_cleared(root, command):
    kind = next(k for k in spool.KINDS if k.accept_command == command)
    hostile = spool.spool_file(kind, root)
    hostile.write_text('{"id": "20261201T100000Z-0badf00d", "answers": ' + "[" * 100000 +
                       "]" * 100000 + "}")
    result = CliRunner().invoke(cli.main, [command])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "nested too deeply" in result.output
    assert not hostile.exists()
    # Not jammed: the next request is taken up.
    assert CliRunner().invoke(cli.main, [command]).output.startswith("no ")


def test_responses_match_the_openapi_document(server, root):
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    calls = [
        ("GET", "/healthz", {}, None),
        ("GET", "/api/status", auth, None),
        ("GET", "/api/install", auth, None),
        ("GET", "/api/setup", auth, None),
        ("GET", "/api/release", auth, None),
        ("POST", "/api/setup/validate", auth, {"channel": "beta"}),
        ("POST", "/api/setup/validate", auth, {**ADMIN, "channel": "nightly"}),
        ("POST", "/api/setup/validate", auth, "x"),
        ("POST", "/api/setup", auth, {"channel": "beta"}),
        ("POST", "/api/setup", auth, [1]),
        ("POST", "/api/setup", auth, {**ADMIN, "channel": "nightly"}),
        ("POST", "/api/setup", auth, {**ADMIN, "channel": "nightly"}),  # 409: one is waiting
        ("POST", "/api/setup", auth, {"app_url": "x" * (MAX_BODY + 1)}),
        ("GET", "/api/status", {"Authorization": "Bearer wrong"}, None),
    ]
    seen = set()
    for method, path, headers, body in calls:
        response = requests.request(method, f"{url}{path}", headers=headers, json=body,
                                    timeout=5)
        assert_documented(response, method, path)
        seen.add((path, response.status_code))
    # With state files from a real flow, the documented shapes still hold.
    state.write(state.INSTALL_STATE, {"status": "running", "current_phase": "preflight",
                                      "updated_at": "2026-11-27T10:00:00Z", "phases": {}}, root)
    example = TESTS / "schema_examples/status/valid-background-issue.json"
    state.write(state.STATUS, json.loads(example.read_text()), root)
    state.write(state.ADMIN_CREDENTIALS, json.loads(  # for this run (from the CLI: no id)
        (TESTS / "schema_examples/admin-credentials/valid-failed-from-the-cli.json").read_text()),
        root)
    for path in ("/api/status", "/api/install"):
        assert_documented(requests.get(f"{url}{path}", headers=auth, timeout=5), "GET", path)
    install = requests.get(f"{url}/api/install", headers=auth, timeout=5).json()
    assert install["credentials"]["result"] == "failed"
    assert {code for _, code in seen} == {200, 202, 400, 401, 409, 413, 422}


def test_self_update_shows_the_newer_versions_the_last_check_found_with_their_notes(
        server, root):
    """The Updates page's "Appliance software": what the root check recorded, only the
    versions newer than the one installed now (an older one is support's, from the console),
    the notes as the publisher wrote them; as documented, before and after a check."""
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    version_dir = paths.on_host(paths.VERSIONS_DIR, root) / "0.2.0"
    version_dir.mkdir(parents=True)
    (version_dir / "VERSION").write_text("0.2.0\n")
    paths.on_host(paths.CURRENT_DIR, root).symlink_to("versions/0.2.0")

    def shown() -> dict:
        response = requests.get(f"{url}/api/self-update", headers=auth, timeout=5)
        assert_documented(response, "GET", "/api/self-update")
        return response.json()

    assert (shown()["installed"], shown()["offer"]) == ("0.2.0", None)
    notes = "<script>alert(1)</script>\nFixes the banner."
    state.write(state.SELF_UPDATE_CHECK, {
        "checked_at": "2026-12-07T10:00:00Z", "installed": "0.1.0", "available": [
            {"version": "0.10.0", "notes": notes, "created": "2026-12-05T10:00:00Z"},
            {"version": "0.2.0", "notes": "", "created": ""},
            {"version": "0.1.0", "notes": "", "created": ""}]}, root)
    assert shown()["offer"] == {"checked_at": "2026-12-07T10:00:00Z", "available": [
        {"version": "0.10.0", "notes": notes, "created": "2026-12-05T10:00:00Z"}]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["channel", "app_url", "dns_mode", "dns_servers", "proxy_url",
                         "proxy_user", "proxy_password", "no_proxy", "release_source",
                         "branch", "junk"]) | st.text(max_size=8),
        inner, max_size=6),
    max_leaves=12)


def test_fuzzed_requests_never_5xx_and_never_leave_invalid_state(server, root):
    """Hypothesis stands in for schemathesis here: schemathesis would pull a newer jsonschema
    than the distro's 4.10 the appliance runs on."""
    url, secret = server
    session = requests.Session()

    @settings(max_examples=120, deadline=None)
    @given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
           path=st.sampled_from(["/api/setup", "/api/setup/validate", "/api/status",
                                 "/api/install", "/api/release", "/api/logs", "/healthz",
                                 "/api/support-bundle", "/api/support-bundle/download",
                                 "/api/updates", "/api/self-update",
                                 "/api/other", "/index.html", "/../x"]),
           authorized=st.booleans(), body=json_values)
    def fuzz(method, path, authorized, body):
        headers = {"Authorization": f"Bearer {secret}"} if authorized else {}
        response = session.request(method, f"{url}{path}", headers=headers, json=body,
                                    timeout=5)
        assert response.status_code < 500, response.text
        if method.lower() in document()["paths"].get(path, {}):
            assert_documented(response, method, path)
        for state_file in (state.SETUP_INPUTS, state.INSTALL_STATE, state.STATUS):
            state.read(state_file, root)  # raises if anything left it invalid
        spooled = spool.spool_file(spool.SETUP, root)
        if spooled.exists():
            assert isinstance(json.loads(spooled.read_text())["answers"], dict)

    fuzz()


def gone_owner() -> dict:
    """The owner record of a process that has exited."""
    process = subprocess.Popen(["sleep", "60"])
    owner = runlock.owner(process.pid)
    process.kill()
    process.wait()
    return owner


def running_in_k3s(owner: dict) -> dict:
    install = install_with({"preflight": ("succeeded", None), "dns": ("succeeded", None),
                            "k3s": ("running", None), "flux": ("pending", None),
                            "release": ("pending", None)})
    install["phases"]["k3s"].update(started_at="2026-11-27T09:59:00Z",
                                    last_action="waiting for the node")
    return install | {"status": "running", "current_phase": "k3s", "owner": owner}


def resume_setup(url, secret):
    return requests.post(f"{url}/api/setup/resume", timeout=5,
                         headers={"Authorization": f"Bearer {secret}"})


def test_setup_after_it_succeeded_is_refused_and_points_to_updates(server, root):
    url, secret = server
    succeeded_install(root)
    for response, path in ((post_setup(url, secret, {}), "/api/setup"),
                           (resume_setup(url, secret), "/api/setup/resume")):
        assert response.status_code == 409
        assert "already completed" in response.json()["error"]
        assert "Updates page" in response.json()["error"]
        assert_documented(response, "POST", path)
    assert not spool.spool_file(spool.SETUP, root).exists()
    # A request that reached the oneshot anyway (spooled just before) is refused there too.
    spool.submit(spool.SETUP, {**SPOOLED_ADMIN, "answers": {},
                               "submitted_at": "2026-12-01T10:00:00Z"}, root)
    refused = CliRunner().invoke(cli.main, ["accept-setup"])
    assert refused.exit_code == 1 and "already completed" in refused.output
    assert state.read(state.INSTALL_STATE)["status"] == "succeeded"
    assert state.read(state.SETUP_INPUTS) is None


def test_an_interrupted_setup_shows_so_and_resumes_from_its_phase(server, root, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.calls"))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    inputs = parse_with_admin({"channel": "stable"}, NODE_IP)
    state.write(state.SETUP_INPUTS, inputs, root)
    state.write(state.INSTALL_STATE, running_in_k3s(gone_owner()), root)
    shown = requests.get(f"{url}/api/install", headers=auth, timeout=5)
    assert_documented(shown, "GET", "/api/install")
    install = shown.json()["install"]
    assert install["status"] == "failed" and "owner" not in install
    assert install["phases"]["k3s"]["failure"]["interrupted"] == {
        "phase": "k3s", "at": "2026-11-27T10:00:00Z"}
    assert state.read(state.INSTALL_STATE)["status"] == "running"  # the web writes nothing
    accepted = resume_setup(url, secret)
    assert accepted.status_code == 202, accepted.text
    assert_documented(accepted, "POST", "/api/setup/resume")
    spooled = json.loads(spool.spool_file(spool.SETUP, root).read_text())
    assert spooled["resume"] is True and "answers" not in spooled
    assert resume_setup(url, secret).status_code == 409  # one waits already
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 0, result.output
    queued = state.read(state.INSTALL_STATE)
    assert (queued["status"], queued["request_id"]) == ("pending", accepted.json()["request_id"])
    assert [queued["phases"][n]["state"] for n in chain.NAMES] == [
        "succeeded", "succeeded", "pending", "pending", "pending"]
    assert state.read(state.SETUP_INPUTS) == inputs
    assert (tmp_path / "systemctl.calls").read_text() == (
        "start --no-block alga-appliance-setup.target\n")


def test_resume_is_refused_while_setup_runs_or_when_nothing_stopped(server, root):
    url, secret = server
    nothing = resume_setup(url, secret)
    assert nothing.status_code == 409 and "no setup has stopped" in nothing.json()["error"]
    state.write(state.INSTALL_STATE, running_in_k3s(runlock.owner()), root)  # alive: us
    running = resume_setup(url, secret)
    assert running.status_code == 409 and "already running (k3s)" in running.json()["error"]
    assert_documented(running, "POST", "/api/setup/resume")
    assert not spool.spool_file(spool.SETUP, root).exists()


# --- issue 20: rotating the token from the status UI, after setup only ---------------------


def rotate(url, bearer):
    return requests.post(f"{url}/api/token/rotate", timeout=5,
                         headers={"Authorization": f"Bearer {bearer}"})


def test_rotate_after_setup_shows_the_new_token_once_and_the_old_one_stops(server, root):
    url, secret = server
    succeeded_install(root)
    response = rotate(url, token.for_people(secret).lower())
    assert response.status_code == 200, response.text
    assert_documented(response, "POST", "/api/token/rotate")
    new = response.json()["token"]
    assert new == token.for_people(token.read_token(root)) and token.normalised(new) != secret
    assert (root / paths.TOKEN_FILE.lstrip("/")).read_text() == new + "\n"
    for old in (secret, token.for_people(secret)):
        assert requests.get(f"{url}/api/status", timeout=5, headers={
            "Authorization": f"Bearer {old}"}).status_code == 401
        assert rotate(url, old).status_code == 401
    assert requests.get(f"{url}/api/status", timeout=5, headers={
        "Authorization": f"Bearer {new.replace('-', '')}"}).status_code == 200


@pytest.mark.parametrize("status", [None, "running", "failed"])
def test_before_setup_has_finished_only_the_console_rotates(server, root, status):
    url, secret = server
    if status is not None:
        state.write(state.INSTALL_STATE, install_with({"preflight": (status, None)}) | {
            "status": status}, root)
    response = rotate(url, secret)
    assert response.status_code == 409
    assert_documented(response, "POST", "/api/token/rotate")
    assert response.json() == {"error": "the setup token is rotated here once setup has "
                               "finished; until then, on the appliance's console run: sudo "
                               "alga-appliance token rotate"}
    assert token.read_token(root) == secret


def test_a_rotate_that_cannot_write_keeps_the_old_token_and_names_the_fix(server, root,
                                                                          monkeypatch):
    url, secret = server
    succeeded_install(root)

    def read_only(path, data, mode):  # what a unit without ReadWritePaths on it would meet
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(token.state, "write_atomically", read_only)
    response = rotate(url, secret)
    assert response.status_code == 503
    assert_documented(response, "POST", "/api/token/rotate")
    assert response.json() == {"error": f"the setup token {token.token_path(root)} could not "
                               "be replaced (Read-only file system); the old one still works; "
                               "on the appliance's console run: sudo alga-appliance token "
                               "rotate"}
    assert token.read_token(root) == secret


@pytest.mark.parametrize("kind, path", [(spool.SETUP, "/api/install"),
                                        (spool.UPDATE, "/api/updates"),
                                        (spool.SUPPORT_BUNDLE, "/api/support-bundle")])
def test_a_request_waiting_more_than_30_s_is_reported_with_its_accept_command(server, root,
                                                                              kind, path):
    """The spool file's time says how long a request has waited (set here, not waited for):
    within PICKUP_SECONDS it is only waiting; past it, the API says it was not picked up and
    which command takes it; a time in the future (a clock set back) has waited no time."""
    url, secret = server
    auth = {"Authorization": f"Bearer {secret}"}
    request = spool.spool_file(kind, root)
    request.write_text("{}")

    def waiting_after(seconds: float) -> dict:
        landed = time.time() - seconds
        os.utime(request, (landed, landed))
        response = requests.get(f"{url}{path}", headers=auth, timeout=5)
        assert response.status_code == 200
        assert_documented(response, "GET", path)
        return response.json()["waiting"]

    fresh = waiting_after(5)
    assert fresh["kind"] == kind.name and 5 <= fresh["waited_seconds"] < 30
    assert fresh["not_picked_up"] is False and fresh["message"] is None
    late = waiting_after(spool.PICKUP_SECONDS + 2)
    assert late["not_picked_up"] is True and late["message"] == spool.not_picked_up(kind)
    assert f"sudo alga-appliance {kind.accept_command}" in late["message"]
    assert kind.watcher in late["message"] and "kubectl" not in late["message"]
    assert waiting_after(-3600) == {"kind": kind.name, "waited_seconds": 0,
                                    "not_picked_up": False, "message": None}
    request.unlink()
    assert requests.get(f"{url}{path}", headers=auth, timeout=5).json()["waiting"] is None
