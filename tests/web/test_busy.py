"""One busy rule for every request kind (issue 19, item 6): a setup, resume or update request
is refused while setup or an update runs, or a request of either waits, when it is submitted
(the web API on a real waitress server) and again when a root oneshot accepts it (the real
`accept-setup` / `accept-update` commands, the setup lock held by a real other process).
A request refused there leaves the spool free and its reason where the UI shows it."""

import os
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner
from support.answers import SPOOLED_ADMIN, parse_with_admin
from support.base import FAKES, serve_wsgi
from support.busy import STARTED, install, update_running
from support.openapi_check import assert_documented

from host import cli
from host.core import runlock, spool, state, token
from host.setup import chain
from host.web import make_app

NODE_IP = "10.0.0.5"
# A process that holds the setup lock, as a setup phase or an update does, until its stdin
# closes.
HOLD_THE_LOCK = """
import sys
from pathlib import Path
from host.core import runlock
with runlock.held(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""
# What each refusal names, by what runs or waits.
NAMED = {"setup running": "setup is already running (k3s) since 2026-12-01T09:59:00Z",
         "update running": f"an update to stable is running (waiting for Flux) since {STARTED}",
         "update check running": f"an update check of nightly is running (starting) since "
                                 f"{STARTED}",
         "setup waiting": "a setup request is already waiting to start",
         "update waiting": "an update request is already waiting to start"}


@pytest.fixture
def root(root, monkeypatch):
    """The web tests' host root, with setup's answers and the systemctl stand-in."""
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(root / "systemctl.calls"))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    state.write(state.SETUP_INPUTS, parse_with_admin({"channel": "stable"}, NODE_IP), root)
    return root


@pytest.fixture
def web(root):
    secret = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    with serve_wsgi(make_app(root, node_ip=lambda: NODE_IP)) as url:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {secret}"
        yield url, session


@pytest.fixture
def holder(root):
    """A real other process holding the setup lock."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(root)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    yield process
    process.stdin.close()
    process.wait(timeout=10)


@pytest.fixture
def other_process():
    """A live process to own a setup run without the lock (between two phases)."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def setup_running(root, owner_pid: int) -> None:
    running = install("running")
    for name in chain.NAMES[:chain.NAMES.index("k3s")]:
        running["phases"][name]["state"] = "succeeded"
    running["phases"]["k3s"].update(state="running", started_at="2026-12-01T09:59:00Z",
                                    last_action="waiting for the node")
    running.update(current_phase="k3s", owner=runlock.owner(owner_pid))
    state.write(state.INSTALL_STATE, running, root)


def arrange(busy_with: str, root, owner_pid: int) -> None:
    if busy_with == "setup running":
        setup_running(root, owner_pid)
    elif busy_with == "update running":
        update_running(root)
    elif busy_with == "update check running":
        update_running(root, "check", "nightly", None)
    else:
        state.write(state.INSTALL_STATE, install("succeeded"), root)
        spool.submit(*{"setup waiting": (spool.SETUP, {**SPOOLED_ADMIN, "answers": {},
                                                          "submitted_at": STARTED}),
                       "update waiting": (spool.UPDATE, update_request("check"))}[busy_with],
                     root)


def update_request(action: str) -> dict:
    return {"action": action, "channel": "stable", "confirmed": False, "who": "web",
            "requested_at": STARTED}


SUBMISSIONS = {"setup": ("/api/setup", {}), "resume": ("/api/setup/resume", None),
               "update check": ("/api/updates", {"action": "check", "channel": "stable"}),
               "update apply": ("/api/updates", {"action": "apply", "channel": "stable"})}


@pytest.mark.parametrize("submitted", SUBMISSIONS)
@pytest.mark.parametrize("busy_with", NAMED)
def test_every_request_kind_is_refused_at_submission_naming_what_runs_or_waits(
        web, root, other_process, busy_with, submitted):
    url, session = web
    arrange(busy_with, root, other_process.pid)
    spooled = {kind: spool.spool_file(kind, root).read_bytes() if spool.pending(kind, root)
               else None for kind in spool.KINDS}
    path, body = SUBMISSIONS[submitted]
    response = session.post(f"{url}{path}", json=body, timeout=5)
    assert response.status_code == 409, response.text
    assert NAMED[busy_with] in response.json()["error"]
    assert_documented(response, "POST", path)
    assert spooled == {kind: spool.spool_file(kind, root).read_bytes()
                       if spool.pending(kind, root) else None for kind in spool.KINDS}


def test_setup_submitted_while_an_update_runs_is_refused_naming_the_update(web, root):
    url, session = web
    update_running(root)
    state.write(state.INSTALL_STATE, install("failed"), root)  # a stopped setup, not completed
    for path in ("/api/setup", "/api/setup/resume"):
        response = session.post(f"{url}{path}", json={}, timeout=5)
        assert response.status_code == 409, response.text
        assert NAMED["update running"] in response.json()["error"]
    assert not spool.pending(spool.SETUP, root)
    updates = session.get(f"{url}/api/updates", timeout=5).json()
    assert updates["busy"] == NAMED["update running"]


def test_an_update_submitted_while_setup_runs_is_refused_naming_setup(web, root, other_process):
    url, session = web
    setup_running(root, other_process.pid)
    response = session.post(f"{url}/api/updates", json={"action": "apply", "channel": "stable"},
                            timeout=5)
    assert response.status_code == 409 and response.json()["error"] == NAMED["setup running"]
    assert session.get(f"{url}/api/updates", timeout=5).json()["busy"] == NAMED["setup running"]
    assert not spool.pending(spool.UPDATE, root)


HOLDERS = ("setup running", "update running")
ACCEPTED = {"setup": (spool.SETUP, {**SPOOLED_ADMIN, "answers": {"channel": "nightly"},
                                    "submitted_at": STARTED}),
            "resume": (spool.SETUP, {"resume": True, "submitted_at": STARTED}),
            "update check": (spool.UPDATE, update_request("check")),
            "update apply": (spool.UPDATE, update_request("apply"))}


def files(root) -> dict:
    return {target.filename: target.path(root).read_bytes() if target.path(root).exists()
            else None for target in (state.SETUP_INPUTS, state.INSTALL_STATE)}


@pytest.mark.parametrize("request_kind", ACCEPTED)
@pytest.mark.parametrize("held_by", HOLDERS)
def test_a_request_accepted_while_another_process_holds_the_lock_is_refused_and_reported(
        web, root, holder, held_by, request_kind):
    url, session = web
    arrange(held_by, root, holder.pid)
    before = files(root)
    kind, request = ACCEPTED[request_kind]
    request_id = spool.submit(kind, request, root)  # spooled just before the other began
    result = CliRunner().invoke(cli.main, [kind.accept_command])
    assert result.exit_code == 1, result.output
    named = f"{NAMED[held_by]}, holding the setup lock (pid {holder.pid})"
    assert files(root) == before  # setup-inputs.json and the install state, byte for byte
    assert not (root / "systemctl.calls").exists()  # nothing was started
    # The spool is free: the request is gone, and the next one of its kind is spooled.
    assert not spool.pending(kind, root)
    next_id = spool.submit(kind, request, root)
    assert spool.take(kind, root)["id"] == next_id
    # Refused where the UI looks for its own request by its id.
    if kind is spool.SETUP:
        assert named in result.output
        shown = session.get(f"{url}/api/install", timeout=5)
        assert_documented(shown, "GET", "/api/install")
        refused = shown.json()["refused"]
        assert refused["request_id"] == request_id and named in refused["reason"]
    else:
        entry = session.get(f"{url}/api/updates", timeout=5).json()["history"][0]
        assert (entry["request_id"], entry["result"]) == (request_id, "failed")
        assert named in entry["failure"]["suspected_cause"]
        assert entry["action"] == request["action"]
