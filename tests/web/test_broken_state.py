"""A broken state file (truncated, schema-invalid, not UTF-8, empty, or a directory in its
place: the tests run as root, which reads a 0000 file) never gives a 500 or a traceback:
the API answers 503 naming the file, the problem and the next step; every command prints
one line saying the same and exits 1; the support bundle is still made, with the file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.answers import ADMIN
from support.base import ROOT, serve_wsgi
from support.openapi_check import assert_documented

from host import cli
from host.core import paths, spool, state, token
from host.support import request as support_request
from host.web import make_app

NODE_IP = "10.0.0.5"
INSTALL = {"status": "failed", "current_phase": "k3s", "updated_at": "2026-11-27T10:00:00Z",
           "phases": {}}
# Each kind of damage: the bytes left in the file, or None for a directory in its place.
DAMAGE = {
    "truncated": json.dumps(INSTALL).encode()[:30],
    "schema-invalid": b'{"status": "exploded"}',
    "not UTF-8": b'{"status": "\xff\xfe failed"}',
    "empty": b"",
    "a directory": None,
}


def damage(target: state.StateFile, root: Path, kind: str) -> Path:
    path = target.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    if DAMAGE[kind] is None:
        (path / "x").mkdir(parents=True)
    else:
        path.write_bytes(DAMAGE[kind])
    return path


def assert_names_file_and_next_step(text: str, path: Path) -> None:
    assert "Traceback" not in text and "internal error" not in text, text
    assert str(path) in text, text
    assert "support-bundle" in text and f"mv {path} {path}.broken" in text, text


@pytest.fixture
def server(root):
    secret = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    with serve_wsgi(make_app(root, node_ip=lambda: NODE_IP, journal=lambda n: ["ok"])) as url:
        yield url, {"Authorization": f"Bearer {secret}"}


# Every endpoint that reads a state file, with the file it cannot do without.
ENDPOINTS = [
    ("GET", "/api/install", None, state.INSTALL_STATE),
    ("GET", "/api/install", None, state.PREFLIGHT_REPORT),
    ("GET", "/api/updates", None, state.INSTALL_STATE),
    ("GET", "/api/updates", None, state.UPDATE_HISTORY),
    ("GET", "/api/updates", None, state.SELECTED_RELEASE),
    ("POST", "/api/updates", {"action": "check", "channel": "stable"}, state.INSTALL_STATE),
    ("GET", "/api/logs?source=phase-k3s", None, state.INSTALL_STATE),
    ("POST", "/api/setup", {**ADMIN, "channel": "stable"}, state.INSTALL_STATE),
    ("POST", "/api/setup", {"channel": "stable"}, state.SETUP_INPUTS),
    ("POST", "/api/setup/resume", None, state.INSTALL_STATE),
    ("POST", "/api/token/rotate", None, state.INSTALL_STATE),
    ("POST", "/api/setup/validate", {"channel": "stable"}, state.SETUP_INPUTS),
    ("GET", "/api/setup", None, state.SETUP_INPUTS),
    ("GET", "/api/status", None, state.STATUS),
    ("GET", "/api/status", None, state.UPDATE_NOTICE),
    ("GET", "/api/updates", None, state.UPDATE_NOTICE),
    ("POST", "/api/updates", {"action": "check"}, state.SELECTED_RELEASE),
    ("GET", "/api/release", None, state.SELECTED_RELEASE),
]


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize(("method", "path", "body", "target"), ENDPOINTS,
                         ids=[f"{m} {p} {t.filename}" for m, p, _, t in ENDPOINTS])
def test_an_endpoint_names_the_broken_file_and_the_next_step(server, root, method, path,
                                                             body, target, kind):
    url, auth = server
    broken = damage(target, root, kind)
    response = requests.request(method, f"{url}{path}", headers=auth, json=body, timeout=10)
    assert response.status_code == 503, response.text
    answer = response.json()
    assert answer["file"] == str(broken)
    assert target.name in answer["error"]
    assert_names_file_and_next_step(answer["next_step"], broken)
    assert_documented(response, method, path.partition("?")[0])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_any_bytes_in_the_install_state_never_give_a_500(server, root, data):
    url, auth = server
    path = state.INSTALL_STATE.path(root)
    path.write_bytes(data)
    for method, address in (("GET", "/api/install"), ("GET", "/api/updates"),
                            ("GET", "/api/logs?source=phase-k3s"), ("POST", "/api/setup")):
        response = requests.request(method, f"{url}{address}", headers=auth, json={},
                                    timeout=10)
        assert response.status_code < 500 or response.status_code == 503, response.text
        assert "Traceback" not in response.text
        if response.status_code == 503:
            assert response.json()["file"] == str(path)
    spool.take(spool.SETUP, root)  # a valid document may have let the setup through


@pytest.mark.parametrize("kind", DAMAGE)
def test_the_support_bundle_button_works_with_a_broken_bundle_status(server, root, kind,
                                                                     monkeypatch):
    url, auth = server
    broken = damage(state.SUPPORT_BUNDLE_STATUS, root, kind)
    listing = requests.get(f"{url}/api/support-bundle", headers=auth, timeout=10)
    assert listing.status_code == 200 and listing.json()["status"] is None
    asked = requests.post(f"{url}/api/support-bundle", headers=auth, timeout=10)
    assert asked.status_code == 202, asked.text

    def create(bundle_root, directory, progress):
        # The real collectors run in tests/bundle: here, that the broken file was kept for them.
        assert state.aside(broken).exists()
        assert state.read(state.SUPPORT_BUNDLE_STATUS, root)["state"] == "running"
        archive = directory / "alga-appliance-support-test.tar.gz"
        archive.write_bytes(b"archive")
        return archive

    from host.support import bundle
    monkeypatch.setattr(bundle, "create", create)
    assert support_request.accept(root, owner=os.environ.get("USER", "root")) \
        == "alga-appliance-support-test.tar.gz"
    status = requests.get(f"{url}/api/support-bundle", headers=auth, timeout=10).json()
    assert status["status"]["state"] == "succeeded"
    assert status["status"]["request_id"] == asked.json()["request_id"]
    if DAMAGE[kind] is not None:
        assert state.aside(broken).read_bytes() == DAMAGE[kind]


# --- the command line -----------------------------------------------------------------

# Every command with each state file it reads before it can act.
COMMANDS = [
    (["recover-setup"], state.INSTALL_STATE),
    (["collect-status", "--kubeconfig", "/nonexistent"], state.INSTALL_STATE),
    (["collect-status", "--kubeconfig", "/nonexistent"], state.SETUP_INPUTS),
    (["collect-status", "--kubeconfig", "/nonexistent"], state.STATUS),
    (["collect-status", "--kubeconfig", "/nonexistent"], state.SELECTED_RELEASE),
    (["collect-status", "--kubeconfig", "/nonexistent"], state.UPDATE_HISTORY),
    (["console-banner"], state.INSTALL_STATE),
    (["console-banner"], state.STATUS),
    (["console", "--plain"], state.INSTALL_STATE),
    (["console", "--plain"], state.SETUP_INPUTS),
    (["phase", "preflight"], state.INSTALL_STATE),
    (["update", "--channel", "stable", "--check"], state.SELECTED_RELEASE),
    (["update", "--channel", "stable", "--check"], state.UPDATE_HISTORY),
    (["maintenance"], state.MAINTENANCE),
    (["check-updates"], state.INSTALL_STATE),
]


def run(root: Path, *argv: str) -> subprocess.CompletedProcess:
    """The real command in a process of its own, as the timers run it."""
    return subprocess.run([sys.executable, "-m", "host", "--root", str(root), *argv],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize(("argv", "target"), COMMANDS,
                         ids=[f"{' '.join(a[:2])} {t.filename}" for a, t in COMMANDS])
def test_a_command_prints_one_line_naming_the_file_and_exits_1(root, argv, target, kind):
    (root / paths.TOKEN_FILE.lstrip("/")).write_text("BANN-ER70-KEN0-0123-4567-89AB-CDEF\n")
    broken = damage(target, root, kind)
    result = run(root, *argv)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert_names_file_and_next_step(result.stderr, broken)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{argv[0]}: {target.name} ({broken}) is invalid at ")


def test_the_console_banner_shows_a_broken_state_file_with_the_setup_address(root):
    (root / paths.TOKEN_FILE.lstrip("/")).write_text("BANN-ER70-KEN0-0123-4567-89AB-CDEF\n")
    broken = damage(state.INSTALL_STATE, root, "truncated")
    result = CliRunner().invoke(cli.main, ["--root", str(root), "console-banner"])
    assert result.exit_code == 1
    banner = (root / paths.ISSUE_FILE.lstrip("/")).read_text()
    assert "Setup token: BANN-ER70-KEN0-0123-4567-89AB-CDEF" in banner
    assert "Setup needs your attention." in banner
    joined = "".join(banner.split())  # long paths are wrapped at any character
    assert "support-bundle" in joined and str(broken) in joined


@pytest.mark.parametrize("argv", [["ensure-token"], ["token", "show"], ["console-banner"],
                                  ["collect-status", "--kubeconfig", "/nonexistent"]])
def test_a_missing_state_directory_is_one_line_with_the_next_step(tmp_path, argv):
    missing = tmp_path / "not-installed"
    result = run(missing, *argv)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    state_dir = missing / paths.STATE_DIR.lstrip("/")
    if argv[0] == "console-banner":  # the first thing it needs is the token, in that directory
        assert line == (f"console-banner: no valid setup token: {state_dir}/token/setup-token "
                        "does not exist; on the host run: sudo alga-appliance ensure-token")
        return
    assert line.startswith(f"{argv[0]}: {state_dir} does not exist")
    assert "next step: " in line
