"""The Logs page in a real browser (Debian's chromium, Playwright) against the real
waitress service: pod, controller and bootstrap logs come from the real Kubernetes tier
(support/log_tier.py: a real API server, the stand-in kubelet serving the containers' logs)
through the log oneshot, as its .path unit runs it. Every screen is saved as a screenshot
(logs-*.png) and checked by Ui.shot.
"""

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.base import make_host_root
from support.browser import PHONE
from support.builders import INSTALLED
from support.log_tier import BOOTSTRAP_JOB, DB_PASSWORD, finish_job, path_unit, planted

from host.core import paths, state
from host.support import logs

USER = os.environ.get("USER", "root")
FOLLOWED = 15_000  # ms: follow mode asks every 3 s; a loaded machine answers late


@pytest.fixture
def cluster(real_api, ca, tmp_path):
    with planted(real_api, ca, tmp_path / "kubelet-logs") as planted_cluster:
        yield planted_cluster


def logs_page(open_ui, root, cluster, viewport=None):
    """The Logs page on a host whose log requests the log oneshot answers."""
    make_host_root(root, paths.SPOOL_DIR)
    ui = open_ui(root, **({"viewport": viewport} if viewport else {}))
    ui.open("/logs")
    ui.showing("logs")
    expect(ui.page.locator("#log-source option[value='alga-core']")).to_have_count(1)
    return ui


def test_a_component_is_chosen_by_name_with_more_lines_a_filter_and_a_download(
        tmp_path, open_ui, cluster):
    kube, _ = cluster
    root = tmp_path / "root"
    with path_unit(root, kube, USER):
        ui = logs_page(open_ui, root, cluster)
        page = ui.page
        expect(page.locator("#log-previous")).to_be_disabled()  # the appliance journal first
        page.select_option("#log-source", "alga-core")
        expect(page.locator("#log-previous")).to_be_enabled()
        page.click("#logs-form button")
        output = page.locator("#log-output")
        expect(output).to_contain_text("alga-core request 2999")
        assert len(output.inner_text().splitlines()) == 200
        expect(page.locator("#log-shown")).to_have_text(
            "The Alga web app (alga-core): the last 200 lines.")
        ui.shot("logs-pod")
        page.click("#log-more")
        expect(page.locator("#log-shown")).to_have_text(
            "The Alga web app (alga-core): the last 500 lines.")
        assert output.inner_text().splitlines()[0].endswith("alga-core request 2500")
        page.fill("#log-filter", "REQUEST 299")
        expect(page.locator("#log-shown")).to_contain_text("10 match the filter")
        ui.shot("logs-filter")
        with page.expect_download() as download:
            page.click("#log-download")
        saved = download.value
        assert saved.suggested_filename == "alga-core.log"
        lines = Path(saved.path()).read_text().splitlines()
        assert len(lines) == 10 and lines[-1].endswith("alga-core request 2999")


def test_the_previous_container_says_why_the_database_restarted(tmp_path, open_ui, cluster):
    kube, _ = cluster
    root = tmp_path / "root"
    with path_unit(root, kube, USER):
        ui = logs_page(open_ui, root, cluster)
        page = ui.page
        page.select_option("#log-source", "db")
        page.click("#logs-form button")
        expect(page.locator("#log-output")).to_contain_text("database system is ready")
        expect(page.locator("#log-output")).not_to_contain_text(DB_PASSWORD)
        page.check("#log-previous")
        page.click("#logs-form button")
        expect(page.locator("#log-output")).to_contain_text("No space left on device")
        expect(page.locator("#log-note")).to_contain_text("previous container")
        expect(page.locator("#log-follow")).to_be_disabled()  # a previous run never grows
        ui.shot("logs-pod-previous")
        page.select_option("#log-source", "temporal")  # not deployed: said, not an error
        expect(page.locator("#log-previous")).to_be_enabled()
        page.uncheck("#log-previous")
        page.click("#logs-form button")
        expect(page.locator("#log-note")).to_contain_text("no pod yet")
        expect(page.locator("#log-output")).to_have_text("(nothing logged yet)")


def test_the_bootstrap_log_is_read_after_the_job_deleted_itself(tmp_path, open_ui, cluster,
                                                               real_api):
    kube, _ = cluster
    root = tmp_path / "root"
    make_host_root(root)
    finish_job(real_api, BOOTSTRAP_JOB, "failed")
    assert logs.keep_bootstrap_log(root, kube) == BOOTSTRAP_JOB
    real_api.kubectl("delete", "job", BOOTSTRAP_JOB, "--namespace", "msp", "--wait=false")
    deadline = time.monotonic() + 30
    while logs.newest_bootstrap_job(kube) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with path_unit(root, kube, USER):
        ui = logs_page(open_ui, root, cluster)
        page = ui.page
        page.select_option("#log-source", "bootstrap")
        page.click("#logs-form button")
        expect(page.locator("#log-output")).to_contain_text("migration 42 failed")
        expect(page.locator("#log-output")).not_to_contain_text(DB_PASSWORD)
        expect(page.locator("#log-note")).to_contain_text(f"when job {BOOTSTRAP_JOB} failed")
        ui.shot("logs-bootstrap-kept")


def test_follow_shows_new_lines_and_says_when_the_log_stopped_being_live(tmp_path, open_ui):
    root = tmp_path / "root"
    make_host_root(root)
    install = {**INSTALLED, "status": "running", "current_phase": "k3s",
               "phases": {**INSTALLED["phases"],
                          "k3s": {**INSTALLED["phases"]["k3s"], "state": "running",
                                  "finished_at": None}}}
    state.write(state.INSTALL_STATE, install, root)
    log = root / paths.LOG_DIR.lstrip("/") / "k3s.log"
    log.write_text("waiting for the node\n")
    ui = open_ui(root)
    ui.open("/logs")
    page = ui.page
    page.select_option("#log-source", "phase-k3s")
    page.click("#logs-form button")
    expect(page.locator("#log-output")).to_have_text("waiting for the node")
    page.check("#log-follow")
    with log.open("a") as fp:
        fp.write("node is Ready\n")
    expect(page.locator("#log-output")).to_contain_text("node is Ready", timeout=FOLLOWED)
    ui.shot("logs-follow")
    finished = {**install, "status": "succeeded", "current_phase": None,
                "phases": INSTALLED["phases"]}
    state.write(state.INSTALL_STATE, finished, root)
    expect(page.locator("#log-note")).to_contain_text(
        "Stopped following: the phase is not running (succeeded): this log no longer grows.",
        timeout=FOLLOWED)
    expect(page.locator("#log-follow")).not_to_be_checked()
    expect(page.locator("#log-follow")).to_be_disabled()
    ui.shot("logs-follow-stopped")


def test_a_refused_query_and_a_host_that_never_answers_are_said_beside_the_form(
        tmp_path, open_ui, monkeypatch):
    from host.support import log_request
    monkeypatch.setattr(log_request, "PICKUP_SECONDS", 1.0)
    root = tmp_path / "root"
    ui = open_ui(root)
    ui.open("/logs")
    page = ui.page
    page.select_option("#log-source", "k3s")  # needs root: nobody takes the request here
    page.click("#logs-form button")
    expect(page.locator("#logs-error")).to_contain_text(
        "did not pick the log request up within 1 s")
    expect(page.locator("#logs-error")).to_contain_text(
        "systemctl status alga-appliance-logs-request.path")
    ui.shot("logs-not-picked-up")


def test_the_logs_page_on_a_phone(tmp_path, open_ui, cluster):
    kube, _ = cluster
    root = tmp_path / "root"
    with path_unit(root, kube, USER):
        ui = logs_page(open_ui, root, cluster, viewport=PHONE)
        page = ui.page
        page.select_option("#log-source", "workers")
        page.click("#logs-form button")
        expect(page.locator("#log-output")).to_contain_text("[workflow-worker]")
        ui.shot("logs-phone")
