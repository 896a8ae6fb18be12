"""Plain words on the status page, in a real browser (chromium) on the real service, from
real status collections: components as admins know them, the Kubernetes detail one click
away, a background crash loop as a warning, the API down as unknown; and the console's
status view shows the same words from the same snapshot."""

import datetime

import pytest
from playwright.sync_api import expect
from support.answers import parse_with_admin
from support.base import make_host_root
from support.browser import NODE_IP, PHONE
from support.builders import INSTALLED, event, pod, workload
from support.netlab import Route
from support.scenarios import alga_server, primary_texts, stage, temporal_worker_crashloop
from support.scenarios import collect as collect_status

from host.console import status_view
from host.core import state

LOGIN_WORKS = Route(status=302, headers={"Location": "/msp/dashboard"})


def collected(root, monkeypatch, scenario: str) -> dict:
    """A real collection on `root` (the fake cluster on PATH): the snapshot it wrote."""
    make_host_root(root)
    with alga_server({"/": LOGIN_WORKS}) as app:
        state.write(state.SETUP_INPUTS, parse_with_admin({"app_url": app.url}, NODE_IP), root)
        state.write(state.INSTALL_STATE, INSTALLED, root)
        if scenario == "api-down":
            monkeypatch.setenv("FAKE_KUBE_DOWN", "1")
            monkeypatch.setenv("FAKE_SYSTEMCTL_IS_ACTIVE", "failed")  # not just starting
            return collect_status(root)
        if scenario == "background-crash":
            return collect_status(root, *temporal_worker_crashloop())
        if scenario == "installing":
            return collect_status(root, stage("core"))
        return collect_status(root, *_storage_stuck(root))


def _storage_stuck(root) -> tuple:
    """The app stage past its storage limit: the database's claim unbound for 11 min."""
    finished = state.timestamp(datetime.datetime.now(datetime.UTC)
                               - datetime.timedelta(minutes=11))
    phases = {**INSTALLED["phases"], "release": {**INSTALLED["phases"]["release"],
                                                 "finished_at": finished}}
    state.write(state.INSTALL_STATE, {**INSTALLED, "phases": phases}, root)
    view = stage("full")
    view.statefulsets = [workload("StatefulSet", "db", 0), view.statefulsets[1]]
    pods = [pod("db-0", "StatefulSet", "db", phase="Pending", unschedulable=(
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."))]
    return view, pods, [event("db-0", "FailedScheduling", "unbound PersistentVolumeClaims",
                              "2026-11-27T10:00:00Z")]


def test_a_background_crash_loop_in_plain_words_as_a_warning_with_the_detail_one_click_away(
        tmp_path, open_ui, fake_cluster, monkeypatch):
    snapshot = collected(tmp_path, monkeypatch, "background-crash")
    ui = open_ui(tmp_path)
    ui.open("/status")
    page = ui.page
    expect(page.locator("#rollup .state")).to_have_text("Ready to log in, with background issues")
    expect(page.locator("#rollup")).to_contain_text(
        "You can log in, but background job service keeps stopping and restarting "
        "(a crash loop)")
    row = page.locator("#blockers tbody tr")
    expect(row).to_have_count(1)
    cells = row.locator("td")
    # A warning, as the amber rollup says: nothing on the page is a red "critical".
    expect(cells.nth(0)).to_have_text("! warning")
    expect(cells.nth(0).locator(".badge")).to_have_class("badge warn")
    expect(page.locator("#blockers")).not_to_contain_text("critical")
    expect(cells.nth(1)).to_have_text("background job service")
    expect(cells.nth(2)).to_contain_text(
        "background job service keeps stopping and restarting (a crash loop)")
    expect(cells.nth(3)).to_have_text(
        "the log of its last run says why it stopped: open the Logs page > "
        "workers, or run `sudo alga-appliance logs workers`; then send the support bundle "
        "(sudo alga-appliance support-bundle)")
    expect(page.locator("#page-status")).not_to_contain_text("kubectl")
    # The Kubernetes detail is folded away: the pod's name is not among the plain words.
    detail = cells.nth(2).locator("details.kube-detail")
    facts = detail.locator("dl")
    expect(facts).to_be_hidden()
    ui.shot("status-plain-words")
    detail.locator("summary").click()
    expect(facts).to_be_visible()
    expect(facts.locator("dd").nth(0)).to_have_text("Pod temporal-worker-5d9c-x1")
    expect(facts.locator("dd").nth(1)).to_have_text("CrashLoopBackOff")
    ui.shot("status-detail")
    # The tiers: the background failing, login ready, each titled as the snapshot says.
    tiers = page.locator("#tiers li")
    expect(tiers).to_have_count(6)
    expect(tiers.nth(4)).to_contain_text("✗ failing")
    expect(tiers.nth(4)).to_contain_text("Background")
    expect(tiers.nth(4)).to_contain_text("background job service: 0/1 ready")
    expect(tiers.nth(3)).to_contain_text("✓ ready")
    assert snapshot["blockers"][0]["severity"] == "warning"


def test_with_the_api_down_every_tier_is_unknown_not_missing(tmp_path, open_ui, fake_cluster,
                                                              monkeypatch):
    collected(tmp_path, monkeypatch, "api-down")
    ui = open_ui(tmp_path)
    ui.open("/status")
    page = ui.page
    expect(page.locator("#rollup .state")).to_have_text("Action required")
    expect(page.locator("#rollup")).to_contain_text(
        "Alga is not available: the cluster API is not answering")
    tiers = page.locator("#tiers li")
    expect(tiers).to_have_count(6)
    expect(page.locator("#tiers li .badge", has_text="? unknown")).to_have_count(6)
    for index in range(6):
        expect(tiers.nth(index)).to_contain_text("unknown: the cluster API is not answering")
    expect(page.locator("#tiers")).not_to_contain_text("does not exist yet")
    expect(page.locator("#blockers tbody tr td").nth(1)).to_have_text("the cluster API")
    expect(page.locator("#blockers")).to_contain_text("`sudo alga-appliance logs k3s`")
    ui.shot("status-api-down")


@pytest.mark.parametrize("scenario", ["background-crash", "api-down", "installing",
                                      "storage-stuck"])
def test_the_console_and_the_web_show_the_same_words(tmp_path, open_ui, fake_cluster,
                                                     monkeypatch, scenario):
    """One source for the words: every text of the snapshot an admin reads first, and each
    blocker's Kubernetes detail, in both; neither has words of its own for them."""
    snapshot = collected(tmp_path, monkeypatch, scenario)
    console = "\n".join(status_view.lines(tmp_path))
    ui = open_ui(tmp_path, viewport=PHONE)
    ui.open("/status")
    expect(ui.page.locator("#rollup .state")).to_have_text(snapshot["rollup"]["label"])
    web = ui.page.locator("#page-status").text_content()
    # The console leaves out why a ready tier is ready (80x24); the page shows it too.
    ready_reasons = {tier["reason"] for tier in snapshot["tiers"].values() if tier["ready"]}
    texts = [text for text in primary_texts(snapshot) if text and text not in ready_reasons]
    assert [t for t in texts if t not in web] == []
    assert [t for t in texts if t not in console] == []
    for blocker in snapshot["blockers"]:
        detail = blocker["detail"]
        if detail:
            shown = [f"{detail['kind']} {detail['name']}", detail["reason"], detail["message"]]
            assert [t for t in shown if t and (t not in web or t not in console)] == []
    # The tiers in the same order, with the same states.
    ladder = [(tier["state"], tier["title"]) for tier in snapshot["tiers"].values()]
    assert [(line.split("]")[0].strip(" ["), line.split("] ")[1].split(" (")[0])
            for line in console.splitlines() if line.startswith("  [")] == ladder
    assert [(badge.split(" ", 1)[1], title) for badge, title in zip(
        ui.page.locator("#tiers li .badge").all_text_contents(),
        ui.page.locator("#tiers li .title").all_text_contents(), strict=True)] == ladder
    ui.shot(f"phone-status-words-{scenario}")
