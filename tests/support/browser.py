"""The browser tier's fixtures (pytest plugin): Debian's chromium driven by Playwright
(`browser`), and `open_ui`, the real :8080 service (or its HTTPS) on a host root with a page
open on it (class Ui: open, shot, next, spooled); fact() finds a value on a facts list.
Screenshots go to test-artifacts/ui/, or $UI_SCREENSHOT_DIR (ci/screenshots.sh points it at
docs/screenshots/)."""

import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from host.core import paths, spool, token
from host.web import make_app
from support.answers import ADMIN_PASSWORD
from support.base import ROOT, make_host_root, serve_https

CHROMIUM = "/usr/bin/chromium"
# The machines have no network: nothing in the browser may try to reach one.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ.get("UI_SCREENSHOT_DIR", ROOT / "test-artifacts/ui"))
NODE_IP = "10.0.0.5"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT = 10_000  # ms; polling is every 2 s while setup runs


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Ui:
    def __init__(self, browser, url: str, secret: str, root: Path, viewport: dict):
        self.url, self.secret, self.root = url, secret, root
        self.context = browser.new_context(viewport=viewport,
                                           ignore_https_errors=url.startswith("https:"))
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT)
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.api_calls = []
        self.page.on("request", lambda r: "/api/" in r.url and self.api_calls.append(r.url))

    def open(self, path: str = "/", with_token: bool = True):
        address = f"{self.url}{path}" + (f"?token={self.secret}" if with_token else "")
        self.page.goto(address)

    def showing(self, page: str):
        expect(self.page.locator(f"#page-{page}")).to_be_visible()

    def shot(self, name: str) -> None:
        """Save the screen and check it: full width, no sideways scrolling, not blank."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        png = self.page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
        width, height = struct.unpack(">II", png[16:24])
        assert width == self.page.viewport_size["width"] and height >= 300, name
        assert self.page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth"), f"{name} scrolls"
        pixels = zlib.decompress(b"".join(_chunks(png, b"IDAT")))
        assert len(set(pixels[: 1 << 20])) > 20, f"{name} looks blank"

    def next(self):
        self.page.click("#wizard-next")

    def through_admin(self):
        """On the wizard's admin step: the password of support.answers, twice, then Next
        (for tests about everything but the admin's credentials)."""
        self.page.fill("#admin_password", ADMIN_PASSWORD)
        self.page.fill("#admin_password_confirm", ADMIN_PASSWORD)
        self.next()

    def set_up_with_defaults(self) -> dict | None:
        """The wizard through with every default (and the admin password), setup started:
        the answers the page spooled."""
        self.open("/setup")
        for _ in range(4):
            self.next()
        self.through_admin()
        expect(self.page.locator("#wizard-next")).to_have_text("Start setup")
        self.next()
        self.showing("progress")
        return self.spooled()["answers"]

    def spooled(self) -> dict | None:
        request_file = spool.spool_file(spool.SETUP, self.root)
        return json.loads(request_file.read_text()) if request_file.exists() else None


def fact(facts, term: str):
    """The value a facts list (a <dl> of dt/dd pairs) gives for `term`."""
    return facts.locator(f'dt:text-is("{term}") + dd')


def _chunks(png: bytes, kind: bytes):
    offset = 8
    while offset < len(png):
        length, = struct.unpack(">I", png[offset:offset + 4])
        if png[offset + 4:offset + 8] == kind:
            yield png[offset + 8:offset + 8 + length]
        offset += 12 + length


@pytest.fixture
def open_ui(browser, monkeypatch):
    """Start the service on a host root and open a browser on it."""
    opened = []
    servers = []

    def start(root: Path, viewport: dict = LAPTOP, https: bool = False) -> Ui:
        """With `https`, the page is opened over HTTPS (the browser told to accept the
        self-signed certificate, as the admin does after checking its fingerprint)."""
        make_host_root(root, paths.SPOOL_DIR)
        monkeypatch.setenv(paths.ROOT_ENV, str(root))
        # As the console shows it and its links carry it: grouped.
        secret = token.for_people(token.ensure_token(root, owner=os.environ.get("USER", "root")))
        server = serve_https(make_app(root, node_ip=lambda: NODE_IP), root if https else None)
        servers.append(server)
        http_url, https_url = server.__enter__()
        ui = Ui(browser, https_url or http_url, secret, root, viewport)
        opened.append(ui)
        return ui

    yield start
    for ui in opened:
        ui.context.close()
        assert ui.errors == [], ui.errors  # no script error on any page
    for server in servers:
        server.__exit__(None, None, None)
