"""The Updates page's "Appliance software" in a real browser, with the real self-update behind
it: a host release built from this working tree with a bumped version is published to the
tests' real registry (support.published_host_release); the page's requests are spooled and
run by `self_update.accept` (what alga-appliance-self-update-request.service runs), which checks the
pinned repository, downloads, verifies, switches and migrates with the real CLI of each
version. The health check is the one stand-in: it stops the web service the page talks to
and starts it again on the same port, as the apply's restart does, so the page has to come
through a restart (then answers healthy, or not, as the test says)."""

import contextlib
import json
import os
import threading
import time

import pytest
from playwright.sync_api import expect
from support.base import TESTS
from support.browser import LAPTOP, NODE_IP, PHONE, Ui, fact
from support.cluster import FakeCluster
from support.host_releases import tree_with_version
from support.published_host_release import installed_root, publish_release
from waitress import wasyncore

from host import web_server
from host.core import paths, spool, state, token
from host.core.version import __version__
from host.update import self_update
from host.web import make_app

BUMPED = "0.99.0"
REPOSITORY = "alga/appliance-host-ui"
NOTES = "Faster status page.\n<b>Not bold</b>: the notes are text."
RESTARTING = ("The appliance service is restarting as part of the software update; this page "
              "reconnects by itself.")
BROKEN = "the web service did not answer http://127.0.0.1:8080/healthz within 60 s"


class Service:
    """The web service on one port, stopped and started again as systemd restarts it."""

    def __init__(self, root):
        self.root, self.port, self.server, self.thread = root, 0, None, None

    def start(self) -> str:
        self.server = web_server.create_server(make_app(self.root, node_ip=lambda: NODE_IP),
                                               "127.0.0.1", self.port)
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.port}"

    def _run(self):
        with contextlib.suppress(OSError, ValueError):  # closed from another thread
            self.server.run()

    def stop(self):
        """As the process systemd stops: the listener and every open connection closed (a
        browser's kept-alive connection too, so its request fails rather than hangs)."""
        wasyncore.close_all(self.server._map)
        self.server.task_dispatcher.shutdown()
        self.thread.join(5)


@pytest.fixture
def appliance(tmp_path, ca, registry, signing_key, monkeypatch):
    """An appliance on this tree's version that pins the key and a repository holding
    BUMPED, its web service running."""
    unique = "".join(c for c in tmp_path.name.lower() if c.isalnum())[-12:]  # a valid name
    repository = f"{registry.host}/{REPOSITORY}-{unique}"
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    publish_release(tree_with_version(tmp_path, BUMPED), ca, signing_key, repository,
                    tmp_path / "out", notes)
    FakeCluster(tmp_path).use(monkeypatch)
    root = installed_root(tmp_path, ca, repository, signing_key)
    # Set up, with Alga installed: the page as the admin sees it after setup.
    state.write(state.INSTALL_STATE, {"status": "succeeded", "current_phase": None,
                                      "updated_at": state.timestamp(), "phases": {}}, root)
    state.write(state.SELECTED_RELEASE, json.loads(
        (TESTS / "schema_examples/selected-release/valid-oci.json").read_text()), root)
    paths.on_host(paths.SPOOL_DIR, root).mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    service = Service(root)
    url = service.start()
    yield root, service, url
    service.stop()


@pytest.fixture
def open_page(browser, appliance):
    """A browser page on the appliance's Updates page; no script error on it, ever."""
    root, _, url = appliance
    secret = token.for_people(token.read_token(root))
    opened = []

    def open_at(viewport: dict = LAPTOP) -> Ui:
        ui = Ui(browser, url, secret, root, viewport)
        opened.append(ui)
        ui.open("/updates")
        return ui

    yield open_at
    for ui in opened:
        ui.context.close()
        assert ui.errors == [], ui.errors


class Restart:
    """The health step as the page has to come through it: once the page has shown the step,
    the service goes down (the restart); once the page has said so, it comes back; then the
    new version is healthy or not (`problem`)."""

    def __init__(self, service: Service, problem: str | None):
        self.service, self.problem = service, problem
        self.step_shown, self.restart_shown = threading.Event(), threading.Event()

    def __call__(self, root) -> str | None:
        self.step_shown.wait(90)
        self.service.stop()
        self.restart_shown.wait(90)
        self.service.start()
        return self.problem


def follow_apply(ui, root, monkeypatch, service, problem: str | None, shot: str | None = None):
    """Run the spooled apply in the background, as its oneshot does, while the page follows
    it through the restart."""
    page = ui.page
    assert spool.spool_file(spool.SELF_UPDATE, root).exists(), "the page did not ask"
    restart = Restart(service, problem)
    monkeypatch.setattr(self_update, "check_health", restart)
    applying = threading.Thread(target=self_update.accept, args=(root,))
    applying.start()
    try:
        step = page.locator("#self-update-step")
        expect(step).to_have_text(
            f"Updating from {__version__} to {BUMPED}: checking that it works…", timeout=60_000)
        expect(page.locator("#self-update-check")).to_be_disabled()
        expect(page.locator("#self-update-offer")).to_contain_text("An update is under way")
        expect(fact(page.locator("#self-update-facts"), "Installed")).to_have_text(
            f"{__version__}, being updated to {BUMPED}")
        restart.step_shown.set()
        expect(step).to_have_text(RESTARTING, timeout=60_000)
        expect(page.locator("#connection")).to_have_text(RESTARTING)  # no error: expected
        if shot:
            ui.shot(shot)
    finally:
        restart.step_shown.set()
        restart.restart_shown.set()
        applying.join(120)


def confirm_apply(page, root, version: str):
    page.click(f"#self-update-offer button[data-version='{version}']")
    expect(page.locator("#self-update-confirm-text")).to_contain_text(
        f"Replace the appliance software {__version__} with {version}?")
    expect(page.locator("#self-update-yes")).to_have_text(f"Update {__version__} → {version}")
    assert not spool.spool_file(spool.SELF_UPDATE, root).exists(), \
        "asked before the admin confirmed"
    page.click("#self-update-yes")
    expect(page.locator("#self-update-step")).to_have_text(
        "Waiting for the appliance to start it…")


def test_check_read_the_notes_apply_through_the_restart_roll_back_and_apply_again(
        appliance, open_page, signing_key, monkeypatch):
    root, service, _ = appliance
    ui = open_page()
    page = ui.page
    facts = page.locator("#self-update-facts")
    expect(fact(facts, "Installed")).to_have_text(__version__)
    expect(fact(facts, "Last check")).to_have_text("never")
    expect(page.locator("#self-update-offer")).to_contain_text("Not checked yet")

    page.click("#self-update-check")
    expect(page.locator("#self-update-step")).to_have_text(
        "Waiting for the appliance to start it…")
    expect(page.locator("#self-update-check")).to_be_disabled()
    # Not picked up within 30 s: said so, with what to run (the spool's words).
    request_file = spool.spool_file(spool.SELF_UPDATE, root)
    os.utime(request_file, (time.time() - 60, time.time() - 60))
    expect(page.locator("#self-update-waiting")).to_have_text(
        spool.not_picked_up(spool.SELF_UPDATE))
    assert self_update.accept(root)["outcome"] == "available"
    offered = page.locator("#self-update-offer article")
    expect(offered).to_have_count(1)
    expect(offered.locator("h4")).to_contain_text(f"Version {BUMPED}")
    expect(offered.locator(".notes")).to_have_text(NOTES)
    assert offered.locator("b").count() == 0  # the notes are text, never HTML
    expect(page.locator("#self-update-waiting")).to_be_hidden()
    expect(page.locator("#self-update-step")).to_be_hidden()
    expect(fact(facts, "Last check")).not_to_have_text("never")
    rows = page.locator("#self-update-history tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("available")
    ui.shot("updates-self-update-available")

    # The new version's health check fails: back to the old one by itself, and why.
    confirm_apply(page, root, BUMPED)
    follow_apply(ui, root, monkeypatch, service, BROKEN, shot="updates-self-update-restarting")
    outcome = page.locator("#self-update-outcome")
    expect(outcome).to_contain_text(
        f"The update to {BUMPED} was rolled back to {__version__}: version {BUMPED} failed "
        f"({BROKEN}); the appliance is back on {__version__}", timeout=60_000)
    expect(page.locator("#connection")).to_be_hidden()
    expect(page.locator("#self-update-progress")).to_be_hidden()
    expect(fact(facts, "Installed")).to_have_text(__version__)
    assert self_update.installed_version(root) == __version__
    expect(rows.nth(0)).to_contain_text("rolled back")
    ui.shot("updates-self-update-rolled-back")

    # Again, and this time it works.
    confirm_apply(page, root, BUMPED)
    follow_apply(ui, root, monkeypatch, service, None)
    expect(outcome).to_contain_text(
        f"The appliance software was updated from {__version__} to {BUMPED}", timeout=60_000)
    expect(fact(facts, "Installed")).to_have_text(BUMPED)
    assert self_update.installed_version(root) == BUMPED
    expect(page.locator("#self-update-offer")).to_contain_text(
        f"Up to date: no version newer than {BUMPED} was offered.")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("applied")
    expect(rows.nth(0)).to_contain_text(signing_key.fingerprint)
    ui.shot("updates-self-update-applied")

    # Readable at 390 px: nothing wider than the screen (Ui.shot checks it).
    phone = open_page(PHONE)
    expect(phone.page.locator("#self-update-history tbody tr")).to_have_count(3)
    phone.shot("phone-updates-self-update")


def test_a_refused_apply_and_a_failed_check_say_why(appliance, open_page, other_key):
    """A release the pinned key did not sign: refused, the reason shown, nothing changed.
    A repository that is not there: the check failed, and why; what the last check found
    stays listed."""
    root, _, _ = appliance
    ui = open_page()
    page = ui.page
    page.click("#self-update-check")
    expect(page.locator("#self-update-step")).to_be_visible()
    self_update.accept(root)
    expect(page.locator("#self-update-offer article")).to_have_count(1)
    # The repository now holds BUMPED signed by a key the appliance does not pin.
    state.write(state.HOST_RELEASE_TRUST, {**state.read(state.HOST_RELEASE_TRUST, root), "keys": [
        {"fingerprint": other_key.fingerprint, "armored": other_key.public.read_text()}]}, root)
    confirm_apply(page, root, BUMPED)
    entry = self_update.accept(root)
    assert entry["outcome"] == "refused"
    outcome = page.locator("#self-update-outcome")
    expect(outcome).to_contain_text(f"The update to {BUMPED} was refused, nothing changed: "
                                    f"{entry['reason']}")
    expect(page.locator("#connection")).to_be_hidden()
    assert self_update.installed_version(root) == __version__

    trust = state.read(state.HOST_RELEASE_TRUST, root)
    state.write(state.HOST_RELEASE_TRUST, {**trust, "repository": trust["repository"] + "-gone"},
                root)
    page.click("#self-update-check")
    expect(page.locator("#self-update-step")).to_be_visible()
    entry = self_update.accept(root)
    assert entry["outcome"] == "failed"
    expect(outcome).to_contain_text(f"The check failed: {entry['reason']}")
    expect(page.locator("#self-update-offer article")).to_have_count(1)
    expect(page.locator("#self-update-history tbody tr").nth(0)).to_contain_text("failed")
