"""The :8080 UI in a real browser: Debian's chromium driven by Playwright against the real
waitress service, with state files from real flows (the wizard's own submissions, real
preflight and k3s phase runs against loopback servers, and real status collections).

Every screen is saved as a screenshot (test-artifacts/ui/, or $UI_SCREENSHOT_DIR:
ci/screenshots.sh points it at docs/screenshots/) and checked: the page width, no
horizontal scrolling, not blank.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from playwright.sync_api import expect
from support.answers import (
    ADMIN,
    ADMIN_PASSWORD,
    hash_checks,
    made_public_keys,
    parse_with_admin,
)
from support.base import FAKES, TESTS, make_host_root
from support.browser import NODE_IP, PHONE, fact
from support.builders import INSTALLED, event, pod, workload
from support.cluster import phase_process
from support.netlab import (
    Route,
    free_loopback_address,
)
from support.releases import K3S_BINARY, K3S_BINARY_PATH, K3S_SUMS_PATH, READY_NODE, k3s_sums
from support.scenarios import alga_server, stage, temporal_worker_crashloop
from support.scenarios import collect as collect_status

from host import cli
from host.core import paths, pins, runlock, spool, state, token
from host.core.validation import validate
from host.setup import engine
from host.setup.inputs import PASSWORD_RULE, InputErrors, parse_setup_inputs
from host.support import request as support_request


@pytest.fixture
def lab(preflight_lab):
    """The release-repository lab of support.preflight_lab."""
    return preflight_lab


def accept_setup(root: Path, monkeypatch) -> dict:
    """What the .path unit does with a spooled request: record the inputs (systemctl is
    the stand-in; the phases are then run by the test)."""
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(root / "systemctl.log"))
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 0 and "started" in result.output, result.output
    return state.read(state.SETUP_INPUTS, root)


# --- signing in --------------------------------------------------------------------------


def test_console_link_token_is_kept_for_the_tab_and_removed_from_the_address(tmp_path,
                                                                           open_ui):
    ui = open_ui(tmp_path)
    ui.open("/setup")
    ui.showing("setup")
    assert "token" not in ui.page.url and ui.page.url.endswith("/setup")
    assert ui.page.evaluate("sessionStorage.getItem('alga-appliance-token')") == ui.secret
    ui.page.reload()  # the token stays for this tab
    ui.showing("setup")
    ui.shot("setup-1-channel")
    ui.page.go_back()  # the address with the token was replaced, not kept in history
    assert ui.page.url == "about:blank"


def test_over_http_the_page_says_it_is_not_encrypted_and_links_to_https(tmp_path, open_ui):
    ui = open_ui(tmp_path)
    ui.open("/setup")
    ui.showing("setup")
    notice = ui.page.locator("#not-https")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("not encrypted")
    expect(notice).to_contain_text("SHA-256 fingerprint")
    link = ui.page.locator("#https-link")
    expect(link).to_have_attribute("href", f"https://127.0.0.1:{paths.WEB_TLS_PORT}/")
    expect(link).to_have_text(f"https://127.0.0.1:{paths.WEB_TLS_PORT}/")
    ui.shot("http-not-encrypted")


def test_over_https_the_ui_works_without_the_notice(tmp_path, open_ui):
    ui = open_ui(tmp_path, https=True)
    assert ui.url.startswith("https://")
    ui.open("/setup")
    ui.showing("setup")  # signed in with the token, the API answering over HTTPS
    expect(ui.page.locator("#not-https")).to_be_hidden()
    ui.shot("https-setup")


def test_token_entry_refuses_a_wrong_token_then_accepts_the_right_one(tmp_path, open_ui):
    ui = open_ui(tmp_path)
    ui.open("/", with_token=False)
    ui.showing("login")
    expect(ui.page.locator("#nav")).to_be_hidden()
    ui.shot("login")
    ui.page.fill("#token", "not-the-token")
    ui.page.click("#login-form button")
    expect(ui.page.locator("#token-error")).to_be_visible()
    expect(ui.page.locator("#token-error")).to_have_text(
        "The token was not accepted. Enter it again.")
    ui.shot("login-refused")
    ui.page.fill("#token", ui.secret)
    ui.page.click("#login-form button")
    ui.showing("setup")
    expect(ui.page.locator("#node-ip")).to_have_text(NODE_IP)


def test_the_token_field_is_plain_text_with_the_grouping_hint_and_takes_any_form(tmp_path,
                                                                                 open_ui):
    """Issue 20: typed by eye from a console, so shown as typed, never masked; lowercase
    and without the dashes works; what no token is written with is refused before it is
    sent (a fullwidth digit could not even go into the header)."""
    ui = open_ui(tmp_path)
    ui.open("/", with_token=False)
    ui.showing("login")
    field = ui.page.locator("#token")
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_attribute("autocomplete", "off")
    expect(ui.page.locator("#token-hint")).to_have_text(
        "XXXX-XXXX-… (7 groups of 4), letters and digits; case and the dashes do not matter.")
    expect(field).to_have_attribute("aria-describedby", "token-hint token-error")
    ui.page.fill("#token", ui.secret.replace("-", "")[:-1] + "\uff10")
    ui.page.click("#login-form button")
    expect(ui.page.locator("#token-error")).to_have_text(
        "The token has only letters, digits and dashes (XXXX-XXXX-…). Enter it again.")
    ui.page.fill("#token", ui.secret.replace("-", " ").lower())
    ui.shot("login-typed")
    ui.page.click("#login-form button")
    ui.showing("setup")


def test_a_locked_address_keeps_an_open_tab_and_its_stored_token(tmp_path, open_ui):
    """Wrong tokens from the admin's own address (issue 19) lock out wrong tokens only: the
    signed-in tab keeps polling, a 429 on the sign-in form says so without clearing
    anything, and the right token still signs in."""
    ui = open_ui(tmp_path)
    ui.open("/setup")
    ui.showing("setup")
    url = ui.page.url.split("/setup")[0]
    for _ in range(11):
        requests.get(f"{url}/api/status", headers={"Authorization": "Bearer wrong"}, timeout=5)
    locked = requests.get(f"{url}/api/status", headers={"Authorization": "Bearer wrong"},
                          timeout=5)
    assert locked.status_code == 429
    # The tab polls every 10 s before setup (main.js SLOW): wait for up to two polls.
    with ui.page.expect_response(lambda response: "/api/status" in response.url,
                                 timeout=25_000) as polled:
        pass
    assert polled.value.status == 200  # the tab's next poll, with the right token
    ui.showing("setup")
    assert ui.page.evaluate("sessionStorage.getItem('alga-appliance-token')") == ui.secret
    ui.page.click("#sign-out")
    ui.page.fill("#token", "still-not-the-token")
    ui.page.click("#login-form button")
    expect(ui.page.locator("#token-error")).to_contain_text("Too many wrong tokens")
    expect(ui.page.locator("#token-error")).to_contain_text("The right token still works")
    assert ui.page.evaluate(
        "sessionStorage.getItem('alga-appliance-token')") == "still-not-the-token"
    ui.page.fill("#token", ui.secret)
    ui.page.click("#login-form button")
    ui.showing("setup")


# --- the wizard --------------------------------------------------------------------------


def test_wizard_with_defaults_and_choices_spools_exactly_the_answers(tmp_path, open_ui):
    ui = open_ui(tmp_path)
    (tmp_path / "etc/resolv.conf").write_text("nameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    ui.open("/setup")
    page = ui.page
    expect(page.locator("#channel-stable")).to_be_checked()
    page.check("#channel-nightly")
    expect(page.locator("#nightly-warning")).to_be_visible()
    ui.shot("setup-1-channel-nightly")
    page.check("#channel-stable")
    ui.next()
    expect(page.locator("#app_url")).to_have_value(f"http://{NODE_IP}:3000")
    ui.shot("setup-2-app")
    page.fill("#app_url", "psa.example.com")
    ui.next()
    expect(page.locator("#dns-system")).to_be_checked()
    expect(page.locator("#detected-resolvers")).to_have_text("Detected: 10.0.0.2, 10.0.0.3")
    expect(page.locator("#dns-warning")).to_be_hidden()
    ui.shot("setup-3-dns")
    page.check("#dns-custom")
    expect(page.locator("#dns-warning")).to_contain_text("split-horizon")
    page.fill("#dns_servers", "8.8.8.8,8.8.4.4")
    ui.shot("setup-3-dns-custom")
    ui.next()
    page.check("#use-proxy")
    page.fill("#proxy_url", "http://proxy.corp:3128")
    page.fill("#proxy_user", "ops")
    expect(page.locator("#proxy_password")).to_have_attribute("type", "password")
    expect(page.locator("#proxy_password-hint")).to_be_hidden()  # nothing stored yet
    page.fill("#proxy_password", PASSWORD)
    ui.shot("setup-4-proxy")
    ui.next()
    ui.through_admin()
    review = page.locator("#review")
    expect(review).to_contain_text("http://psa.example.com:3000")
    expect(review).to_contain_text("Custom servers: 8.8.8.8, 8.8.4.4")
    expect(fact(review, "Proxy")).to_contain_text("http://proxy.corp:3128 as ops "
                                                  "(password hidden)")
    expect(review).not_to_contain_text("s3cret")  # the password never shows
    expect(page.locator("#advanced")).not_to_have_attribute("open", "")
    expect(fact(review, "Release source")).to_have_text(
        f"{pins.RELEASE_SOURCE} (the built-in default)")
    ui.shot("setup-6-review")
    assert ui.spooled() is None  # nothing is submitted before "Start setup"
    page.click("#wizard-next")
    ui.showing("progress")
    for field in ("#proxy_password", "#admin_password", "#admin_password_confirm"):
        expect(page.locator(field)).to_have_value("")  # the page keeps no copy once sent
    expect(page.locator("#progress-summary")).to_contain_text("Waiting for the appliance")
    ui.shot("progress-waiting")
    assert ui.spooled()["answers"] == {
        "channel": "stable", "app_url": "psa.example.com", "dns_mode": "custom",
        "dns_servers": "8.8.8.8,8.8.4.4", "proxy_url": "http://proxy.corp:3128",
        "proxy_user": "ops", "proxy_password": PASSWORD,  # as typed, spaces and all
        "ssh_password_login": False}


PASSWORD = " s3cret @:#/%40 ü "


def test_a_stored_proxy_password_never_reaches_the_page_and_an_empty_field_keeps_it(
        tmp_path, open_ui):
    ui = open_ui(tmp_path)
    state.write(state.SETUP_INPUTS, parse_with_admin(
        {"proxy_url": "http://proxy.corp:3128", "proxy_user": "ops", "proxy_password": PASSWORD},
        NODE_IP), tmp_path)
    ui.open("/setup")
    page = ui.page
    for _ in range(3):
        ui.next()
    expect(page.locator("#proxy_user")).to_have_value("ops")
    expect(page.locator("#proxy_password")).to_have_value("")
    expect(page.locator("#proxy_password-hint")).to_be_visible()
    ui.next()
    expect(page.locator("#admin_password-hint")).to_be_visible()  # the stored one is kept
    ui.next()
    expect(fact(page.locator("#review"), "Proxy")).to_contain_text("as ops (password hidden)")
    assert "s3cret" not in page.content()
    ui.next()
    ui.showing("progress")
    spooled = ui.spooled()["answers"]
    assert "proxy_password" not in spooled and spooled["proxy_user"] == "ops"
    stored = state.read(state.SETUP_INPUTS, tmp_path)
    assert parse_setup_inputs(spooled, NODE_IP, stored)["proxy"]["password"] == PASSWORD


def test_admin_step_shows_the_rule_and_each_server_error_at_its_field_then_reviews_keys(
        tmp_path, open_ui):
    keys = made_public_keys(tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/setup")
    page = ui.page
    for _ in range(4):
        ui.next()
    password, confirm = page.locator("#admin_password"), page.locator("#admin_password_confirm")
    for field in (password, confirm):
        expect(field).to_have_attribute("type", "password")
        expect(field).to_have_attribute("autocomplete", "new-password")
    expect(page.locator("#admin_password-rule")).to_have_text(f"The rule: {PASSWORD_RULE}.")
    expect(page.locator("#admin_password-hint")).to_be_hidden()  # nothing stored yet
    expect(page.locator("#admin-user")).to_have_text("alga-admin")
    login = page.locator("#ssh_password_login")
    expect(login).not_to_be_checked()
    expect(page.locator("#ssh_password_login-warning")).to_be_hidden()
    ui.shot("setup-5-admin")

    def refused(field: str, typed: dict) -> None:
        for selector, value in {"#admin_password": "", "#admin_password_confirm": "",
                                "#ssh_authorized_keys": "", **typed}.items():
            page.fill(selector, value)
        ui.next()
        expect(page.locator(f'#wizard [data-error-for="{field}"]')).to_have_text(
            api_message({**{k.strip("#"): v for k, v in typed.items()}}, field))
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#review")).to_be_hidden()

    refused("admin_password", {})  # required
    refused("admin_password", {"#admin_password": "short pw 1",
                               "#admin_password_confirm": "short pw 1"})
    ui.shot("setup-error-admin_password-invalid")
    refused("admin_password_confirm", {"#admin_password": ADMIN_PASSWORD,
                                       "#admin_password_confirm": ADMIN_PASSWORD + "x"})
    refused("ssh_authorized_keys", {"#admin_password": ADMIN_PASSWORD,
                                    "#admin_password_confirm": ADMIN_PASSWORD,
                                    "#ssh_authorized_keys": f"{keys[0][0]}\nssh-rsa AAAA"})
    ui.shot("setup-error-ssh_authorized_keys-invalid")
    page.fill("#ssh_authorized_keys", f"{keys[0][0]}\n\n{keys[1][0]}\n")
    login.check()
    expect(page.locator("#ssh_password_login-warning")).to_contain_text("prefer SSH keys")
    login.uncheck()
    ui.next()
    review = page.locator("#review")
    expect(fact(review, "Admin account")).to_have_text("alga-admin, admin password: set")
    expect(fact(review, "SSH keys")).to_have_text(f"{keys[0][1]}\n{keys[1][1]}")
    expect(fact(review, "SSH password login")).to_have_text("Off (keys only)")
    ui.shot("setup-6-review-admin")
    ui.next()
    ui.showing("progress")
    request = ui.spooled()
    assert request["answers"]["ssh_authorized_keys"] == f"{keys[0][0]}\n\n{keys[1][0]}"
    assert request["answers"]["ssh_password_login"] is False
    assert "admin_password" not in request["answers"]
    assert hash_checks(request["admin_password_hash"], ADMIN_PASSWORD)
    assert ADMIN_PASSWORD not in json.dumps(request, ensure_ascii=False)


def api_message(answers: dict, field: str) -> str:
    try:
        parse_setup_inputs(answers, NODE_IP)
    except InputErrors as exc:
        return next(e.message for e in exc.errors if e.field == field)
    raise AssertionError(f"{answers} is valid")


PAYLOAD_SOURCE = "oci://registry.msp.example:5000/alga/alga-appliance-release"
PINNED_SOURCE = f"{PAYLOAD_SOURCE}@sha256:{'ab' * 32}"


def test_the_review_names_the_release_source_and_where_it_was_set(tmp_path, open_ui):
    make_host_root(tmp_path, paths.CURRENT_DIR)  # where the ISO payload's file lives
    state.write(state.RELEASE_SOURCE, {"release_source": PAYLOAD_SOURCE}, tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/setup")
    for _ in range(4):
        ui.next()
    ui.through_admin()
    page = ui.page
    expect(fact(page.locator("#review"), "Release source")).to_have_text(
        f"{PAYLOAD_SOURCE} (the ISO payload)")
    page.click("#advanced summary")
    override = page.locator("#release_source")
    expect(override).to_have_attribute("placeholder", pins.RELEASE_SOURCE)
    expect(page.locator("#release_source-hint")).to_be_visible()
    expect(page.locator("#release_source-hint")).to_contain_text("@sha256:")
    assert "release_source-hint" in override.get_attribute("aria-describedby").split()
    ui.shot("setup-6-review-overrides")
    override.fill(PINNED_SOURCE)
    ui.next()
    ui.showing("progress")
    assert ui.spooled()["answers"] == {"channel": "stable", "app_url": f"http://{NODE_IP}:3000",
                                       "dns_mode": "system", "ssh_password_login": False,
                                       "release_source": PINNED_SOURCE}


def test_a_recorded_support_override_is_the_release_source_the_review_shows(tmp_path,
                                                                           open_ui):
    ui = open_ui(tmp_path)
    state.write(state.SETUP_INPUTS, parse_with_admin(
        {"release_source": PINNED_SOURCE}, NODE_IP), tmp_path)
    ui.open("/setup")
    page = ui.page
    for _ in range(5):  # the stored admin password is kept
        ui.next()
    expect(page.locator("#advanced")).to_have_attribute("open", "")
    expect(page.locator("#release_source")).to_have_value(PINNED_SOURCE)
    review = page.locator("#review")
    expect(fact(review, "Release source")).to_have_text(PINNED_SOURCE)
    expect(fact(review, "Support overrides")).to_have_text(f"release_source: {PINNED_SOURCE}")


FIELD_CASES = [  # field, what the admin types (by selector), the answers that makes
    ("app_url", {"#app_url": "ftp://psa.example.com"}, {"app_url": "ftp://psa.example.com"}),
    ("app_url", {"#app_url": "http://psa.example.com/login"},
     {"app_url": "http://psa.example.com/login"}),
    ("dns_servers", {"#dns-custom": True, "#dns_servers": "8.8.8.999"},
     {"dns_mode": "custom", "dns_servers": "8.8.8.999"}),
    ("dns_servers", {"#dns-custom": True, "#dns_servers": ""},
     {"dns_mode": "custom", "dns_servers": ""}),
    ("proxy_url", {"#use-proxy": True, "#proxy_url": "socks5://proxy.corp:1080"},
     {"proxy_url": "socks5://proxy.corp:1080"}),
    ("proxy_url", {"#use-proxy": True, "#proxy_url": "http://ops:s3cret@proxy.corp:3128"},
     {"proxy_url": "http://ops:s3cret@proxy.corp:3128"}),
    ("proxy_password", {"#use-proxy": True, "#proxy_url": "http://proxy.corp:3128",
                        "#proxy_user": "ops"},
     {"proxy_url": "http://proxy.corp:3128", "proxy_user": "ops"}),
    ("no_proxy", {"#use-proxy": True, "#proxy_url": "http://proxy.corp:3128",
                  "#no_proxy": "bad name!"},
     {"proxy_url": "http://proxy.corp:3128", "no_proxy": "bad name!"}),
    ("release_source", {"#advanced summary": True, "#release_source": "oci://ghcr.io/Upper"},
     {"release_source": "oci://ghcr.io/Upper"}),
    ("branch", {"#advanced summary": True, "#branch": "release/..bad"},
     {"branch": "release/..bad"}),
]
STEP_OF_FIELD = {"app_url": 1, "dns_servers": 2, "proxy_url": 3, "proxy_password": 3,
                 "no_proxy": 3,
                 "release_source": 5, "branch": 5}


@pytest.mark.parametrize(("field", "typed", "answers"), FIELD_CASES)
def test_each_field_error_is_the_apis_message_beside_the_field(tmp_path, open_ui, field,
                                                              typed, answers):
    ui = open_ui(tmp_path)
    ui.open("/setup")
    page = ui.page
    for step in range(STEP_OF_FIELD[field]):
        if step == 4:
            ui.through_admin()
        else:
            ui.next()
        expect(page.locator(f"#step-list li >> nth={step + 1}")).to_have_attribute(
            "aria-current", "step")
    for selector, value in typed.items():
        if value is True:
            page.click(selector)
        else:
            page.fill(selector, value)
    ui.next()
    message = page.locator(f'#wizard [data-error-for="{field}"]')
    expected = api_message({"app_url": f"http://{NODE_IP}:3000", **ADMIN, **answers}, field)
    expect(message).to_have_text(expected)
    expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{field}")).to_be_focused()
    suffix = "empty" if typed.get(f"#{field}") == "" else "invalid"
    ui.shot(f"setup-error-{field}-{suffix}")
    assert ui.spooled() is None


def test_inputs_are_labelled_and_the_layout_fits_a_phone(tmp_path, open_ui):
    ui = open_ui(tmp_path, viewport=PHONE)
    ui.open("/setup")
    ui.showing("setup")
    unlabelled = ui.page.evaluate("""() => [...document.querySelectorAll('input, select')]
        .filter((e) => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label'))
        .map((e) => e.id || e.name)""")
    assert unlabelled == []
    ui.shot("phone-setup-1-channel")
    ui.page.keyboard.press("Tab")  # focus starts at the skip link, then the navigation
    assert ui.page.evaluate("document.activeElement.className") == "skip"


# --- preflight, progress and failure, from real phase runs -------------------------------


def test_preflight_failure_shows_the_checklist_and_a_retry_changes_nothing_else(
        lab, open_ui, monkeypatch):
    lab.configure(resolver=free_loopback_address())  # no resolver answers there
    ui = open_ui(lab.root)
    answers = ui.set_up_with_defaults()
    accept_setup(lab.root, monkeypatch)
    assert engine.run_phase("preflight", lab.root) == engine.EXIT_FAILED
    page = ui.page
    failure = page.locator("#failure")
    expect(failure).to_contain_text("Preflight checks failed")
    expect(failure).to_contain_text("Nothing else on this machine has been changed")
    expect(failure).to_contain_text("Safe: retrying")
    report = state.read(state.PREFLIGHT_REPORT, lab.root)
    failed_checks = [c for c in report["checks"] if c["status"] == "fail"]
    assert failed_checks
    def item_of(check):  # by its title: a message may name another check
        return page.locator("#preflight li").filter(
            has=page.get_by_text(check["id"], exact=True))

    for check in failed_checks:
        item = item_of(check)
        expect(item).to_contain_text("✗ fail")
        expect(item).to_contain_text(check["message"])
        expect(item).not_to_contain_text("Fix:")  # said once, with the root cause
    # The root cause comes first in the failure view, with its one fix.
    [root_cause] = report["causes"]
    causes = failure.locator(".causes li")
    expect(causes).to_have_count(1)
    expect(causes.first.locator("h3")).to_have_text("Root cause: DNS")
    expect(causes.first).to_contain_text(root_cause["summary"])
    expect(causes.first).to_contain_text(f"Fix: {root_cause['remediation']}")
    expect(failure.locator(".fix")).to_have_count(1)
    not_run = [c for c in report["checks"] if c["status"] == "not-run"]
    assert not_run  # the DNS checks after the first, which found no resolver answering
    for check in not_run:
        item = item_of(check)
        expect(item.locator(".badge")).to_have_text(re.compile(r"not run$"))
        expect(item).not_to_contain_text("Fix:")
    assert state.read(state.HOST_CHANGES, lab.root) is None
    ui.shot("preflight-failed")

    lab.configure()  # the admin fixes DNS, then retries with the same answers
    page.click("#retry")
    expect(page.locator("#progress-summary")).to_contain_text("Waiting for the appliance")
    assert ui.spooled()["answers"] == parse_answers_back(answers, lab.root)
    accept_setup(lab.root, monkeypatch)
    assert engine.run_phase("preflight", lab.root) == 0
    expect(failure).to_be_hidden()
    expect(page.locator("#preflight li").first).to_contain_text("✓ pass")
    ui.shot("preflight-passed")


def test_a_credentials_failure_shows_on_the_progress_page_and_setup_goes_on(
        lab, open_ui, monkeypatch):
    """The credentials unit runs first and fails here for real (this root has no account
    database): the progress page says why and what to do, and preflight still runs."""
    ui = open_ui(lab.root)
    ui.set_up_with_defaults()
    accept_setup(lab.root, monkeypatch)
    applied = CliRunner().invoke(cli.main, ["apply-credentials"])
    assert applied.exit_code == engine.EXIT_FAILED, applied.output
    outcome = state.read(state.ADMIN_CREDENTIALS, lab.root)
    assert outcome["result"] == "failed" and "/etc/passwd" in outcome["message"]
    notice = ui.page.locator("#credentials")
    expect(notice).to_have_text(f"The admin password could not be set: {outcome['message']}. "
                                "Setup goes on: the app does not need it.")
    expect(notice).to_have_attribute("role", "alert")
    assert engine.run_phase("preflight", lab.root) == 0
    expect(ui.page.locator("#preflight li").first).to_contain_text("✓ pass")
    expect(notice).to_be_visible()
    ui.shot("progress-credentials-failed")


def parse_answers_back(answers: dict, root: Path) -> dict:
    """The answers the retry sends: the recorded inputs as the wizard would show them."""
    from host.setup.inputs import as_answers
    stored = state.read(state.SETUP_INPUTS, root)
    recorded = as_answers(stored)
    assert parse_setup_inputs(recorded, NODE_IP, stored) == parse_setup_inputs(answers, NODE_IP,
                                                                               stored)
    return recorded


def test_edit_answers_after_a_failed_preflight_reopens_the_filled_wizard(
        lab, open_ui, monkeypatch):
    lab.configure(resolver=free_loopback_address())
    ui = open_ui(lab.root)
    ui.open("/setup")
    ui.next()
    ui.page.fill("#app_url", "https://psa.example.com")
    for _ in range(3):
        ui.next()
    ui.through_admin()
    expect(ui.page.locator("#wizard-next")).to_have_text("Start setup")
    ui.next()
    ui.showing("progress")
    accept_setup(lab.root, monkeypatch)
    engine.run_phase("preflight", lab.root)
    ui.page.get_by_role("button", name="Edit answers").click()
    ui.showing("setup")
    ui.next()
    expect(ui.page.locator("#app_url")).to_have_value("https://psa.example.com")


def test_progress_follows_the_phases_with_a_live_log_then_a_failure_view(
        lab, open_ui, monkeypatch):
    (lab.root / "usr/local/bin").mkdir(parents=True)
    (lab.root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    (lab.root / "store.json").write_text("{}")  # k3s's node is not Ready yet
    lab.github.routes.update({K3S_BINARY_PATH: Route(body=K3S_BINARY),
                              K3S_SUMS_PATH: Route(body=k3s_sums(K3S_BINARY))})
    ui = open_ui(lab.root)
    ui.set_up_with_defaults()
    accept_setup(lab.root, monkeypatch)
    for phase in ("preflight", "dns"):
        assert engine.run_phase(phase, lab.root) == 0, phase
    page = ui.page
    k3s = phase_process(lab.root, "k3s")
    try:
        expect(page.locator("#progress-summary")).to_contain_text("Running: Install k3s",
                                                                  timeout=30_000)
        expect(page.locator("#phases li.current")).to_contain_text("Install k3s")
        expect(page.locator("#tail-source")).to_have_text("Install k3s")
        expect(page.locator("#tail")).to_contain_text("→", timeout=30_000)
        expect(page.locator("#phases li", has_text="Preflight checks")).to_contain_text(
            "✓ succeeded")
        expect(page.locator("#open-app-row")).to_be_hidden()
        assert page.locator("#phases li .title").all_inner_texts() == [  # chain order
            "Preflight checks", "DNS for k3s", "Install k3s", "Install Flux",
            "Point Flux at the Alga release"]
        ui.shot("progress-running")
        (lab.root / "store.json").write_text(json.dumps({"Node//alga-appliance": READY_NODE}))
        assert k3s.wait(60) == 0
    finally:
        k3s.kill()
    expect(page.locator("#phases li", has_text="Install k3s")).to_contain_text("✓ succeeded")

    # A real failure: the published checksum no longer matches the binary.
    (lab.root / "usr/local/bin/k3s").unlink()
    lab.github.routes[K3S_SUMS_PATH] = Route(body=k3s_sums(b"another binary"))
    state.write(state.SETUP_INPUTS, {**state.read(state.SETUP_INPUTS, lab.root),
                                     "app_url": "http://10.0.0.5:3001"}, lab.root)
    assert phase_process(lab.root, "k3s").wait(120) != 0
    failure = page.locator("#failure")
    recorded = state.read(state.INSTALL_STATE, lab.root)["phases"]["k3s"]["failure"]
    expect(failure).to_contain_text("Install k3s failed")
    expect(failure).to_contain_text(recorded["suspected_cause"])
    expect(failure).to_contain_text(recorded["next_step"])
    expect(failure.locator("#retry")).to_be_visible()
    expect(failure).not_to_contain_text("Nothing else on this machine has been changed")
    expect(page.locator("#tail-source")).to_have_text("Install k3s")
    ui.shot("progress-failed-k3s")


def test_a_failure_recorded_by_an_older_version_shows_with_a_retry(tmp_path, open_ui):
    """Before 0.1.1 failure records carried retry_safe; every phase is safe to retry, so
    even a record that said otherwise offers the retry."""
    make_host_root(tmp_path)
    failed = json.loads(json.dumps(INSTALLED))
    failed["status"] = "failed"
    failed["phases"]["flux"].update(state="failed", failure={
        "category": "flux", "last_action": "applying the Flux install manifest",
        "log_excerpt": "error: conflict", "suspected_cause": "another Flux owns the cluster",
        "next_step": "remove the other Flux installation, then run setup again",
        "retry_safe": False, "support_command": "sudo alga-appliance support-bundle"})
    state.write(state.INSTALL_STATE, failed, tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/")
    ui.showing("progress")
    expect(ui.page.locator("#failure")).to_be_visible()
    expect(ui.page.locator("#failure")).to_contain_text("Safe: retrying repeats only")
    expect(ui.page.locator("#retry")).to_be_visible()
    expect(ui.page.locator("#failure pre")).to_have_text("error: conflict")
    ui.page.get_by_role("button", name="Get a support bundle").click()
    ui.showing("support")


def test_an_interrupted_setup_offers_resume_and_resumes_from_its_phase(tmp_path, open_ui,
                                                                        monkeypatch):
    """The k3s phase's process died (killed for real, here): the page says so at once, and
    Resume hands the run back to systemd, which continues from k3s."""
    make_host_root(tmp_path)
    state.write(state.SETUP_INPUTS, parse_with_admin({}, NODE_IP), tmp_path)
    stopped = json.loads(json.dumps(INSTALLED))
    process = subprocess.Popen(["sleep", "60"])
    stopped.update(status="running", current_phase="k3s", owner=runlock.owner(process.pid))
    for name in ("k3s", "flux", "release"):
        stopped["phases"][name]["state"] = "pending"
    stopped["phases"]["k3s"].update(state="running", last_action="waiting for the node")
    state.write(state.INSTALL_STATE, stopped, tmp_path)
    process.kill()
    process.wait()
    ui = open_ui(tmp_path)
    ui.open("/")
    ui.showing("progress")
    failure = ui.page.locator("#failure")
    expect(failure).to_contain_text("Install k3s failed")
    expect(failure).to_contain_text("Install k3s stopped without recording a result")
    expect(failure).to_contain_text("Interrupted")
    ui.shot("progress-interrupted")
    ui.page.locator("#resume").click()
    ui.showing("progress")
    spooled = spool.spool_file(spool.SETUP, tmp_path)
    for _ in range(100):
        if spooled.exists():
            break
        time.sleep(0.05)
    assert json.loads(spooled.read_text())["resume"] is True
    accept_setup(tmp_path, monkeypatch)
    queued = state.read(state.INSTALL_STATE, tmp_path)
    assert queued["status"] == "pending" and queued["phases"]["k3s"]["state"] == "pending"
    assert queued["phases"]["dns"]["state"] == "succeeded"
    expect(ui.page.locator("#failure")).to_be_hidden(timeout=15_000)


# --- the dashboard, from real status collections -----------------------------------------


ROLLUPS = {  # state: (label, cluster, login ready)
    "setup_required": ("Setup required", None, False),
    "installing": ("Installing", lambda: (stage("core"), []), False),
    "failed_action_required": ("Action required", "down", False),
    "ready_to_log_in": ("Ready to log in", lambda: (stage("login"), []), True),
    "ready_with_background_issues": ("Ready to log in, with background issues",
                                     temporal_worker_crashloop, True),
    "fully_healthy": ("Fully healthy", lambda: (stage("full"), []), True),
}


def test_dashboard_shows_an_app_stage_failure_with_its_last_action_and_log(tmp_path, open_ui,
                                                                           fake_cluster):
    """The app stage past its limit (here an unbound volume claim for 11 min): the category,
    the last action and the events that say why, above the fold."""
    make_host_root(tmp_path)
    with alga_server({"/": Route(status=503)}) as app:
        state.write(state.SETUP_INPUTS, parse_with_admin({"app_url": app.url}, NODE_IP),
                    tmp_path)
        finished = state.timestamp(datetime.datetime.now(datetime.UTC)
                                   - datetime.timedelta(minutes=11))
        phases = {**INSTALLED["phases"], "release": {**INSTALLED["phases"]["release"],
                                                     "finished_at": finished}}
        state.write(state.INSTALL_STATE, {**INSTALLED, "phases": phases}, tmp_path)
        view = stage("full")
        view.statefulsets = [workload("StatefulSet", "db", 0), view.statefulsets[1]]
        pods = [pod("db-0", "StatefulSet", "db", phase="Pending", unschedulable=(
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."))]
        events = [event("db-0", "FailedScheduling", "unbound immediate PersistentVolumeClaims",
                        "2026-11-27T10:00:00Z")]
        snapshot = collect_status(tmp_path, view, pods, events)
    assert snapshot["app_failure"]["category"] == "storage"
    ui = open_ui(tmp_path)
    ui.open("/status")
    rollup = ui.page.locator("#rollup")
    expect(rollup.locator(".state")).to_have_text("Action required")
    expect(rollup).to_contain_text("Setup's app stage failed [storage]")
    expect(rollup).to_contain_text("Last action: waiting for the database to get its storage")
    expect(ui.page.locator("#app-failure-log")).to_contain_text(
        "Pod/db-0 FailedScheduling: unbound immediate PersistentVolumeClaims")
    ui.shot("status-app-stage-storage")


@pytest.mark.parametrize("rollup", list(ROLLUPS))
def test_dashboard_in_each_rollup_state(tmp_path, open_ui, fake_cluster, monkeypatch, rollup):
    label, cluster, login = ROLLUPS[rollup]
    make_host_root(tmp_path)
    with alga_server({"/": Route(status=302, headers={"Location": "/msp/dashboard"})}) as app:
        if rollup != "setup_required":
            state.write(state.SETUP_INPUTS, parse_with_admin({"app_url": app.url}, NODE_IP),
                        tmp_path)
            state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
        if cluster == "down":
            monkeypatch.setenv("FAKE_KUBE_DOWN", "1")
            monkeypatch.setenv("FAKE_SYSTEMCTL_IS_ACTIVE", "failed")  # not just starting
            snapshot = collect_status(tmp_path)
        else:
            view, pods = cluster() if cluster else (None, [])
            snapshot = collect_status(tmp_path, view, pods)
    assert snapshot["rollup"]["state"] == rollup
    state.write(state.STATUS, snapshot, tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/status")
    page = ui.page
    expect(page.locator("#rollup .state")).to_have_text(label)
    expect(page.locator("#rollup")).to_contain_text(snapshot["rollup"]["next_action"])
    badges = {"ready": "✓ ready", "waiting": "… waiting", "failing": "✗ failing",
              "degraded": "! degraded", "unknown": "? unknown"}
    for shown, badge in badges.items():  # a tier not reached yet is never a red ✗
        count = sum(tier["state"] == shown for tier in snapshot["tiers"].values())
        expect(page.locator("#tiers li .badge", has_text=badge)).to_have_count(count)
    expect(page.locator("#open-app-row")).to_be_visible() if login else \
        expect(page.locator("#open-app-row")).to_be_hidden()
    if login:
        expect(page.locator("#open-app")).to_have_attribute("href", app.url)
    expect(page.locator("#not-ready-note")).to_be_hidden() if login else \
        expect(page.locator("#not-ready-note")).to_be_visible()
    for blocker in snapshot["blockers"][:3]:
        expect(page.locator("#blockers")).to_contain_text(blocker["next_action"])
    expect(page.locator("#pods tbody tr")).to_have_count(len(snapshot["components"]["pods"]))
    expect(page.locator("#flux tbody tr")).to_have_count(len(snapshot["flux"]))
    expect(page.locator("#host-facts")).to_contain_text(snapshot["host"]["node_ip"])
    ui.shot(f"status-{rollup}")
    if rollup == "ready_with_background_issues":
        phone = open_ui(tmp_path, viewport=PHONE)
        phone.open("/status")
        expect(phone.page.locator("#rollup .state")).to_have_text(label)
        phone.shot("phone-status-ready_with_background_issues")


# --- logs, updates, polling --------------------------------------------------------------


def test_logs_page_fetches_phase_logs_and_the_journal_on_demand(tmp_path, open_ui,
                                                                monkeypatch):
    make_host_root(tmp_path)
    state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
    log = tmp_path / paths.LOG_DIR.lstrip("/") / "k3s.log"
    log.write_text("".join(f"k3s line {i}\n" for i in range(300)))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_JOURNAL_LOG", str(tmp_path / "journal.log"))
    ui = open_ui(tmp_path)
    ui.open("/logs")
    page = ui.page
    expect(page.locator("#log-output")).to_have_text("")  # nothing until asked
    page.select_option("#log-source", "phase-k3s")
    page.select_option("#log-lines", "100")
    page.click("#logs-form button")
    expect(page.locator("#log-output")).to_contain_text("k3s line 299")
    assert page.locator("#log-output").inner_text().splitlines()[0] == "k3s line 200"
    ui.shot("logs-phase")
    page.select_option("#log-source", "appliance")
    page.click("#logs-form button")
    expect(page.locator("#log-output")).to_contain_text("alga-appliance.service: line 100")
    assert "--lines 100" in (tmp_path / "journal.log").read_text()
    ui.shot("logs-journal")
    # The API's refusal shows beside the form; the next answer clears it.
    monkeypatch.setenv("FAKE_JOURNAL_FAIL", "1")
    page.click("#logs-form button")
    expect(page.locator("#logs-error")).to_be_visible()
    expect(page.locator("#logs-error")).to_contain_text("the journal cannot be read")
    monkeypatch.delenv("FAKE_JOURNAL_FAIL")
    page.click("#logs-form button")
    expect(page.locator("#logs-error")).to_be_hidden()


@pytest.mark.parametrize(("example", "shown"), [
    ("valid-git.json", {"Source": "https://github.com/Nine-Minds/alga-psa",
                        "Branch": "release/1.0.0", "Release": "1.0"}),
    ("valid-oci.json", {"Source": "oci://ghcr.io/nine-minds/alga-appliance-release",
                        "Digest": f"sha256:{'a' * 64}", "Release": "1.0.3"}),
])
def test_updates_page_shows_the_selected_release(tmp_path, open_ui, example, shown):
    make_host_root(tmp_path)
    state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
    selected = TESTS / "schema_examples/selected-release" / example
    state.write(state.SELECTED_RELEASE, json.loads(selected.read_text()), tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/updates")
    release = ui.page.locator("#release")
    for term, value in shown.items():
        expect(fact(release, term)).to_have_text(value)
    expect(fact(release, "Branch" if "Digest" in shown else "Digest")).to_have_count(0)
    ui.shot(f"updates-{example.removeprefix('valid-').removesuffix('.json')}")


def test_polling_stops_while_the_tab_is_hidden_and_backs_off_on_errors(tmp_path, open_ui):
    make_host_root(tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/progress")  # a submitted setup polls every 2 s
    ui.page.evaluate("sessionStorage.setItem('alga-appliance-submitted', 'null')")
    ui.page.reload()
    ui.showing("progress")
    page = ui.page
    page.wait_for_timeout(4500)
    assert sum("/api/install" in c for c in ui.api_calls) >= 2
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: true, configurable: true});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    ui.api_calls.clear()
    page.wait_for_timeout(5000)
    assert ui.api_calls == []  # hidden: no polling at all
    page.route("**/api/install", lambda route: route.abort())
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: false, configurable: true});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    expect(page.locator("#connection")).to_be_visible()
    expect(page.locator("#connection")).to_contain_text("Lost contact")
    ui.api_calls.clear()
    page.wait_for_timeout(9000)
    # Back-off 4 s, then 8 s: at most 2 tries in 9 s, where 2 s polling would make 4.
    assert 1 <= sum("/api/install" in c for c in ui.api_calls) <= 2
    ui.shot("connection-lost")


# --- the support bundle ------------------------------------------------------------------


def test_support_bundle_button_makes_one_shows_progress_and_downloads_it(
        lab, open_ui, fake_cluster, monkeypatch, tmp_path):
    """The button end to end: the request goes through the spool, the root oneshot's code
    (run here, as systemd would) makes a real bundle against the loopback network lab with
    the cluster down, and the browser downloads a valid archive."""
    monkeypatch.setenv("FAKE_KUBE_DOWN", "1")
    monkeypatch.setenv("FAKE_JOURNAL_SLEEP", "6")  # slow enough to watch the progress
    state.write(state.INSTALL_STATE, INSTALLED, lab.root)
    ui = open_ui(lab.root)
    ui.open("/support")
    page = ui.page
    expect(page.locator("#bundles")).to_contain_text("None yet.")
    page.click("#bundle-create")
    expect(page.locator("#bundle-step")).to_have_text("Waiting for the host to start the bundle…")
    expect(page.locator("#bundle-create")).to_be_disabled()
    assert spool.spool_file(spool.SUPPORT_BUNDLE, lab.root).exists()
    maker = threading.Thread(target=support_request.accept,
                             args=(lab.root, os.environ.get("USER", "root")))
    maker.start()
    try:
        expect(page.locator("#bundle-step")).to_contain_text("Making the bundle:", timeout=20_000)
        ui.shot("support-progress")
    finally:
        maker.join(120)
    row = page.locator("#bundles tbody tr")
    expect(row).to_have_count(1, timeout=20_000)
    expect(page.locator("#bundle-create")).to_be_enabled()
    ui.shot("support-ready")
    with page.expect_download() as started:
        row.get_by_role("button", name="Download").click()
    download = started.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert support_request.ARCHIVE_NAME.match(saved.name)
    with tarfile.open(saved) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile(names[0]))
    assert names[0].endswith("/bundle.json") and any(n.endswith("/SUMMARY.md") for n in names)
    validate(manifest, "support-bundle.schema.json", name="bundle.json", source=saved.name)
    assert saved.read_bytes() == (support_request.bundle_dir(lab.root) / saved.name).read_bytes()


HOLD_THE_LOCK = """
import sys
from pathlib import Path
from host.core import runlock
with runlock.held(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_setup_request_refused_when_taken_up_shows_why_instead_of_waiting(tmp_path, open_ui,
                                                                            monkeypatch):
    ui = open_ui(tmp_path)
    submitted = requests.post(f"{ui.url}/api/setup", json=ADMIN, timeout=5,
                              headers={"Authorization": f"Bearer {ui.secret}"})
    assert submitted.status_code == 202, submitted.text
    ui.open("/progress")
    ui.page.evaluate(f"sessionStorage.setItem('alga-appliance-submitted', "
                     f"'{submitted.json()['request_id']}')")
    ui.page.reload()
    expect(ui.page.locator("#progress-summary")).to_contain_text("Waiting for the appliance")
    # Before the oneshot takes the request up, an update starts (a real process holds the
    # setup lock) over a setup that had completed.
    state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
        refused = CliRunner().invoke(cli.main, ["accept-setup"])
        assert refused.exit_code == 1, refused.output
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    summary = ui.page.locator("#progress-summary")
    expect(summary).to_contain_text("The appliance did not start setup: the setup request was "
                                    f"not taken up: another setup or update is running (pid "
                                    f"{holder.pid})")
    expect(summary).to_have_class(re.compile(r"\bfail\b"))
    ui.shot("progress-refused")


# --- rotating the token (issue 20) ---------------------------------------------------------


def test_the_status_page_rotates_the_token_after_a_confirmation_and_goes_on_with_it(
        tmp_path, open_ui):
    ui = open_ui(tmp_path)
    state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
    ui.open("/status")
    ui.showing("status")
    ui.page.click("#token-rotate")
    expect(ui.page.locator("#token-rotate-confirm")).to_be_visible()
    ui.shot("status-token-rotate-confirm")
    ui.page.click("#token-rotate-no")  # cancelled: nothing changes
    expect(ui.page.locator("#token-rotate-confirm")).to_be_hidden()
    assert token.for_people(token.read_token(tmp_path)) == ui.secret
    ui.page.click("#token-rotate")
    ui.page.click("#token-rotate-yes")
    expect(ui.page.locator("#token-rotated")).to_be_visible()
    new = token.for_people(token.read_token(tmp_path))
    assert new != ui.secret
    expect(ui.page.locator("#token-new")).to_have_text(new)
    ui.shot("status-token-rotated")
    assert ui.page.evaluate("sessionStorage.getItem('alga-appliance-token')") == new
    url = ui.page.url.split("/status")[0]
    old = requests.get(f"{url}/api/status", timeout=5,
                       headers={"Authorization": f"Bearer {ui.secret}"})
    assert old.status_code == 401
    # The tab polls every 10 s before setup (main.js SLOW): wait for up to two polls.
    with ui.page.expect_response(lambda response: "/api/status" in response.url,
                                 timeout=25_000) as polled:
        pass
    assert polled.value.status == 200  # the tab's next poll, with the new token
    ui.showing("status")


def test_before_setup_has_finished_the_rotate_is_refused_with_the_console_step(tmp_path,
                                                                              open_ui):
    ui = open_ui(tmp_path)
    ui.open("/status")
    ui.showing("status")
    ui.page.click("#token-rotate")
    ui.page.click("#token-rotate-yes")
    expect(ui.page.locator("#token-rotate-error")).to_have_text(
        "the setup token is rotated here once setup has finished; until then, on the "
        "appliance's console run: sudo alga-appliance token rotate")
    assert token.for_people(token.read_token(tmp_path)) == ui.secret
