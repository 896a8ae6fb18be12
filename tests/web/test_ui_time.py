"""A sense of time in the browser (Debian's chromium, the real service): the progress page
counts step n of m with each step's time and an estimate, follows the app stage after the
host phases on the same page, shows moments as "2 min ago" with the exact time on hover,
and says when a request has not been picked up within 30 s (the spool file's time set
back, not 30 real seconds waited).

Screenshots: progress-steps.png, progress-app-stage.png, request-not-picked-up.png (and
support-request-not-picked-up.png)."""

import datetime
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import expect
from support.answers import parse_with_admin
from support.base import FAKES, make_host_root
from support.browser import NODE_IP, PHONE, Ui
from support.netlab import Route
from support.scenarios import alga_server, stage
from support.scenarios import collect as collect_status

from host import cli
from host.core import elapsed, spool, state
from host.setup import chain, engine, timing
from host.support import request as support_request


@pytest.fixture
def lab(preflight_lab):
    return preflight_lab


def accept_setup(root: Path, monkeypatch) -> str:
    """The documented next step for a request left waiting, as written:
    `alga-appliance accept-setup` (systemctl is the stand-in)."""
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(root / "systemctl.log"))
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 0 and "accepted" in result.output, result.output
    return result.output


def ago(seconds: int) -> str:
    return state.timestamp(datetime.datetime.now(datetime.UTC)
                           - datetime.timedelta(seconds=seconds))


def assert_hover_is_the_exact_time(ui: Ui, moment) -> None:
    """A relative time's title is the exact time, in the browser's own local format."""
    stamp = moment.get_attribute("datetime")
    exact = ui.page.evaluate("(t) => new Date(t).toLocaleString()", stamp)
    expect(moment).to_have_attribute("title", exact)
    moment.hover()


def test_progress_counts_steps_times_and_the_estimate_through_the_host_phases(
        lab, open_ui, monkeypatch):
    ui = open_ui(lab.root)
    ui.set_up_with_defaults()
    accept_setup(lab.root, monkeypatch)
    for phase in ("preflight", "dns"):  # real phase runs: their times are this appliance's
        assert engine.run_phase(phase, lab.root) == 0, phase
    install = state.read(state.INSTALL_STATE, lab.root)
    assert set(install["durations"]) == {"preflight", "dns"}
    # k3s as it runs: started 100 s ago (without waiting 100 s).
    install["phases"]["k3s"].update(state="running", started_at=ago(100),
                                    last_action="waiting for the node")
    install.update(status="running", current_phase="k3s")
    state.write(state.INSTALL_STATE, install, lab.root)
    page = ui.page
    headline = page.locator("#progress-time")
    expect(headline).to_contain_text("Step 3 of 9", timeout=15_000)
    expect(headline).to_have_text(re.compile(
        r"^Step 3 of 9 · 1 min \d+ s elapsed · about \d+ min( \d+ s)? left$"))
    took = {name: elapsed.seconds_between(state.moment(install["phases"][name]["started_at"]),
                                          state.moment(install["phases"][name]["finished_at"]))
            for name in ("preflight", "dns")}
    preflight = page.locator("#phases li", has_text="Preflight checks")
    expect(preflight).to_contain_text(f"took {elapsed.words(took['preflight'])}")
    expect(preflight.locator("time")).to_have_text(re.compile(r"^(just now|\d+ s ago)$"))
    k3s = page.locator("#phases li.current")
    expect(k3s).to_contain_text("Install k3s")
    expect(k3s.locator("time")).to_have_text(re.compile(r"^1 min \d+ s ago$"))
    expect(k3s).to_contain_text(re.compile(
        r"running for 1 min \d+ s \(usually 4 min\) · waiting for the node"))
    assert_hover_is_the_exact_time(ui, k3s.locator("time"))
    assert page.locator("#app-steps li .title").all_inner_texts() == [
        step.title for step in timing.APP_STEPS]  # the app stage waits, with its times
    expect(page.locator("#app-steps li").first).to_contain_text("usually 2 min")
    ui.shot("progress-steps")
    phone = open_ui(lab.root, viewport=PHONE)
    phone.open("/progress")
    expect(phone.page.locator("#progress-time")).to_contain_text("Step 3 of 9")
    phone.shot("phone-progress-steps")


def test_the_app_stage_continues_on_the_progress_page_until_login(tmp_path, open_ui,
                                                                    fake_cluster):
    make_host_root(tmp_path)
    with alga_server({"/": Route(status=302, headers={"Location": "/msp/dashboard"})}) as app:
        state.write(state.SETUP_INPUTS, parse_with_admin({"app_url": app.url}, NODE_IP),
                    tmp_path)
        phases = {name: {"state": "succeeded", "started_at": ago(1500), "finished_at": ago(1400),
                         "last_action": None, "failure": None} for name in chain.NAMES}
        phases["release"].update(started_at=ago(700), finished_at=ago(600))
        state.write(state.INSTALL_STATE, {
            "status": "succeeded", "current_phase": None, "updated_at": ago(600),
            "request_id": None, "phases": phases, "completed_at": ago(600)}, tmp_path)
        snapshot = collect_status(tmp_path, stage("core"), [])
        ui = open_ui(tmp_path)
        ui.open("/")  # while the app stage runs, "/" is the progress page, not the status page
        ui.showing("progress")
        page = ui.page
        steps = page.locator("#app-steps li")
        expect(steps).to_have_count(len(timing.APP_STEPS))
        expected = timing.progress(state.read(state.INSTALL_STATE, tmp_path), snapshot,
                                   state.moment(snapshot["collected_at"]))
        shown = {"succeeded": "✓ succeeded", "running": "▶ running", "pending": "… pending"}
        for index, step in enumerate(s for s in expected["steps"] if s["stage"] == "app"):
            expect(steps.nth(index).locator(".badge")).to_have_text(shown[step["state"]])
        # The first collection saw the sources and core ready: since the release phase ended.
        expect(steps.first).to_contain_text("took 10 min")
        expect(page.locator("#app-steps li.current")).to_contain_text(
            re.compile(r"running for \d+ s \(usually 5 min\)"))
        expect(page.locator("#progress-summary")).to_contain_text("the app stage below")
        expect(page.locator("#progress-time")).to_contain_text(
            f"Step {expected['step']} of 9")
        expect(page.locator("#app-stage-behind")).to_be_hidden()
        ui.shot("progress-app-stage")

        # The collector falls behind: the page says so, with the command that collects now.
        state.write(state.STATUS, {**snapshot, "collected_at": ago(900)}, tmp_path)
        behind = page.locator("#app-stage-behind")
        expect(behind).to_contain_text("collected 15 min ago", timeout=15_000)
        expect(behind).to_contain_text("sudo alga-appliance collect-status")

        # Login works: the same page says so, every step done.
        collect_status(tmp_path, stage("login"), [])
        expect(page.locator("#progress-time")).to_contain_text("Step 9 of 9", timeout=15_000)
        expect(page.locator("#progress-time")).to_contain_text("done")
        expect(page.locator("#app-steps li .badge", has_text="✓ succeeded")).to_have_count(
            len(timing.APP_STEPS))
        expect(page.locator("#progress-summary")).to_contain_text("you can log in")
        expect(behind).to_be_hidden()


def test_a_request_not_picked_up_within_30_s_says_so_with_what_to_run(lab, open_ui,
                                                                       monkeypatch):
    ui = open_ui(lab.root)
    ui.set_up_with_defaults()
    page = ui.page
    notice = page.locator("#setup-waiting")
    expect(page.locator("#progress-summary")).to_contain_text("Waiting for the appliance")
    expect(notice).to_be_hidden()  # landed just now: the watcher has seconds yet
    request = spool.spool_file(spool.SETUP, lab.root)
    landed = request.stat().st_mtime - spool.PICKUP_SECONDS - 1
    os.utime(request, (landed, landed))  # as if it had waited 31 s
    expect(notice).to_be_visible(timeout=15_000)
    expect(notice).to_have_text(spool.not_picked_up(spool.SETUP))
    expect(notice).to_contain_text("alga-appliance-setup-request.path")
    expect(notice).to_contain_text("sudo alga-appliance accept-setup")
    ui.shot("request-not-picked-up")
    accept_setup(lab.root, monkeypatch)  # the next step, as the notice words it
    expect(notice).to_be_hidden(timeout=15_000)
    expect(page.locator("#progress-summary")).not_to_contain_text("Waiting for the appliance")


def test_support_bundle_and_update_requests_not_picked_up_say_so_on_their_pages(tmp_path,
                                                                               open_ui):
    make_host_root(tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/support")
    support_request.submit(tmp_path)
    request = spool.spool_file(spool.SUPPORT_BUNDLE, tmp_path)
    landed = request.stat().st_mtime - 3600
    os.utime(request, (landed, landed))
    notice = ui.page.locator("#bundle-waiting")
    expect(notice).to_have_text(spool.not_picked_up(spool.SUPPORT_BUNDLE), timeout=15_000)
    expect(notice).to_contain_text("sudo alga-appliance accept-support-bundle")
    ui.shot("support-request-not-picked-up")
    update = spool.spool_file(spool.UPDATE, tmp_path)
    update.write_text("{}")  # its content is the unit's to check; the page reads its age
    os.utime(update, (landed, landed))
    ui.open("/updates")
    expect(ui.page.locator("#update-waiting")).to_have_text(spool.not_picked_up(spool.UPDATE))


def test_the_status_page_reads_moments_as_time_ago_from_the_appliance_clock(tmp_path, open_ui,
                                                                           fake_cluster):
    """Collected, the tiers' since and the events read "n min ago" counted from the
    appliance's clock (/api/install's timing), the exact time on hover."""
    make_host_root(tmp_path)
    with alga_server({"/": Route(status=302, headers={"Location": "/msp/dashboard"})}) as app:
        state.write(state.SETUP_INPUTS, parse_with_admin({"app_url": app.url}, NODE_IP),
                    tmp_path)
        snapshot = collect_status(tmp_path, stage("login"), [])
    phases = {name: {"state": "succeeded", "started_at": ago(3000), "finished_at": ago(2900),
                     "last_action": None, "failure": None} for name in chain.NAMES}
    state.write(state.INSTALL_STATE, {
        "status": "succeeded", "current_phase": None, "updated_at": ago(2900),
        "request_id": None, "phases": phases, "completed_at": ago(2900)}, tmp_path)
    tiers = {key: {**tier, "since": ago(1500) if tier["since"] else None}
             for key, tier in snapshot["tiers"].items()}
    event = {"time": ago(700), "object": "Pod/msp/alga-core-0", "reason": "BackOff",
             "message": "Back-off restarting failed container"}
    state.write(state.STATUS, {**snapshot, "collected_at": ago(130), "tiers": tiers,
                               "events": [event]}, tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/status")
    page = ui.page
    collected = page.locator("#collected-at time")
    expect(collected).to_have_text(re.compile(r"^2 min \d+ s ago$"))
    assert_hover_is_the_exact_time(ui, collected)
    since = page.locator("#tiers time").first
    expect(since).to_have_text(re.compile(r"^2[45] min ago$"))
    assert_hover_is_the_exact_time(ui, since)
    expect(page.locator("#events td[data-label=Time] time")).to_have_text(
        re.compile(r"^1[12] min ago$"))
