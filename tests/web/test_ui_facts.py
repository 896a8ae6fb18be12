"""The Status page's network diagnostics and host facts, the support bundle's sizes, and the
status and logs pages on a 390 px phone, in a real browser (Debian's chromium) against the
real service: the diagnostics are asked for through the spool and run by the root
oneshot's code against the real network lab (DNS, HTTPS, a registry on loopback), the host
facts come from a real status collection. Screenshots as test_ui.py keeps them."""

import os
import re
import threading

import pytest
from playwright.sync_api import expect
from support.answers import parse_with_admin
from support.base import FAKES, make_host_root
from support.browser import NODE_IP, PHONE, fact
from support.builders import INSTALLED
from support.netlab import Route
from support.scenarios import alga_server, healthy, temporal_worker_crashloop
from support.scenarios import collect as collect_status

from host import status
from host.core import paths, spool, state
from host.setup import diagnostics
from host.support import request as support_request


def installed_with_status(root, cluster=healthy, pods=()) -> dict:
    """An installed appliance whose collector has just run (on the fake cluster)."""
    make_host_root(root)
    with alga_server({"/": Route(status=302, headers={"Location": "/msp/dashboard"})}) as app:
        state.write(state.SETUP_INPUTS, parse_with_admin({"app_url": app.url}, NODE_IP), root)
        state.write(state.INSTALL_STATE, INSTALLED, root)
        view = cluster()
        if isinstance(view, tuple):
            view, pods = view
        return collect_status(root, view, pods)


def test_network_diagnostics_from_the_status_page_show_the_failing_host_and_its_fix(
        preflight_lab, open_ui):
    lab = preflight_lab
    lab.configure(ghcr_base="https://127.0.0.1:1")  # nothing listens there
    ui = open_ui(lab.root)
    ui.open("/status")
    page = ui.page
    expect(page.locator("#diagnostics-report")).to_have_text("Not run yet.")
    page.click("#diagnostics-run")
    expect(page.locator("#diagnostics-step")).to_have_text(
        "Waiting for the host to start the checks…")
    expect(page.locator("#diagnostics-run")).to_be_disabled()
    assert spool.pending(spool.NETWORK_DIAGNOSTICS, lab.root)
    ui.shot("status-network-diagnostics-waiting")
    # The oneshot's run, held after its third check until the page has shown that.
    spooled = spool.take(spool.NETWORK_DIAGNOSTICS, lab.root)
    finished, shown = [], threading.Event()

    def hold(line: str) -> None:
        finished.append(line)
        if len(finished) == 3:
            shown.wait(60)

    runner = threading.Thread(target=diagnostics.run, args=(
        lab.root, spooled["id"], spooled["requested_at"], hold))
    runner.start()
    try:
        expect(page.locator("#diagnostics-step")).to_have_text(
            re.compile(r"^Running the checks \(3 done; last: pass dns\.\S+: .+\)…$"),
            timeout=15_000)
        ui.shot("status-network-diagnostics-running")
    finally:
        shown.set()
        runner.join(120)
    report = diagnostics.last_report(lab.root)
    box = page.locator("#diagnostics-report")
    expect(box).to_contain_text("a check failed", timeout=15_000)
    expect(box.locator(".causes h3").first).to_have_text(re.compile(r"^Root cause: "))
    expect(box.locator(".causes p").first).to_have_text(report["causes"][0]["summary"])
    expect(box.locator(".causes")).to_contain_text(f"Fix: {report['causes'][0]['remediation']}")
    expect(box.locator(".checklist li")).to_have_count(len(report["checks"]))
    expect(box.locator('.checklist li:has(.title:text-is("ghcr"))')).to_contain_text("✗ fail")
    expect(box.locator('.checklist li:has(.title:text-is("k3s.release"))')).to_contain_text(
        "✓ pass")
    expect(box).to_contain_text("with the setup inputs")
    expect(page.locator("#diagnostics-run")).to_be_enabled()
    expect(page.locator("#diagnostics-progress")).to_be_hidden()
    ui.shot("status-network-diagnostics")


def test_a_second_ask_while_one_waits_is_refused_beside_the_button(tmp_path, open_ui):
    ui = open_ui(tmp_path)
    diagnostics.submit(tmp_path)  # the console asked first
    ui.open("/status")
    ui.page.click("#diagnostics-run")
    expect(ui.page.locator("#diagnostics-error")).to_have_text(
        "network diagnostics were already asked for and start in a moment")
    expect(ui.page.locator("#diagnostics-run")).to_be_enabled()


def test_host_facts_on_the_status_page_with_a_disk_over_the_threshold(
        tmp_path, open_ui, fake_cluster, monkeypatch):
    monkeypatch.setattr(status, "DISK_WARN_PERCENT", 0)  # every disk in use is over it
    snapshot = installed_with_status(tmp_path)
    host = snapshot["host"]
    ui = open_ui(tmp_path)
    ui.open("/status")
    facts = ui.page.locator("#host-facts")
    expect(fact(facts, "Memory")).to_contain_text("available of")
    expect(fact(facts, "Clock")).to_have_text("synchronized by NTP")
    expect(fact(facts, "k3s")).to_contain_text(host["k3s_state"])
    expect(fact(facts, "Disk /var/lib/rancher")).to_contain_text("over 0 %")
    expect(fact(facts, "Disk /var/lib/rancher")).to_contain_text("% used")
    blockers = ui.page.locator("#blockers")
    expect(blockers).to_contain_text("disk /var/lib/rancher")
    expect(blockers).to_contain_text("`sudo alga-appliance support-bundle`")
    ui.shot("status-host-facts")


def test_host_facts_read_unknown_when_the_host_cannot_say(tmp_path, open_ui, fake_cluster,
                                                          monkeypatch):
    monkeypatch.setenv("FAKE_TIMEDATECTL_FAIL", "1")
    monkeypatch.setattr(paths, "MEMINFO", str(tmp_path / "no-meminfo"))
    installed_with_status(tmp_path)
    ui = open_ui(tmp_path)
    ui.open("/status")
    facts = ui.page.locator("#host-facts")
    expect(fact(facts, "Memory")).to_have_text("unknown")
    expect(fact(facts, "Clock")).to_have_text("unknown whether NTP keeps it")


@pytest.mark.parametrize(("size", "shown"), [
    (37_000, "36.1 KiB"), (3 * 2**20 + 2**19, "3.5 MiB"), (900, "900 bytes")])
def test_support_bundle_sizes_read_in_kib_or_mib(tmp_path, open_ui, size, shown):
    make_host_root(tmp_path)
    directory = support_request.bundle_dir(tmp_path)
    directory.mkdir()
    archive = directory / "alga-appliance-support-alga-20261127T100000Z.tar.gz"
    archive.write_bytes(os.urandom(size))
    archive.chmod(0o600)
    ui = open_ui(tmp_path)
    ui.open("/support")
    expect(ui.page.locator("#bundles td[data-label='Size']")).to_have_text(shown)
    if size == 37_000:
        ui.shot("support-size-kib")


def fits(page, selector: str) -> bool:
    """Whether every element `selector` finds is inside the viewport and shows all its
    content without scrolling sideways."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)].every(
        (node) => node.getBoundingClientRect().right <= window.innerWidth + 0.5 &&
                  node.getBoundingClientRect().left >= -0.5 &&
                  node.scrollWidth <= node.clientWidth + 1)""", selector)


def test_blockers_are_readable_at_390_px(tmp_path, open_ui, fake_cluster, monkeypatch):
    snapshot = installed_with_status(tmp_path, temporal_worker_crashloop)
    assert snapshot["blockers"]
    ui = open_ui(tmp_path, viewport=PHONE)
    ui.open("/status")
    page = ui.page
    rows = page.locator("#blockers tbody tr")
    expect(rows).to_have_count(len(snapshot["blockers"]))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits(page, "#blockers .table-wrap"), "the blockers scroll sideways"
    for index, blocker in enumerate(snapshot["blockers"]):
        for column, text in (("Problem", blocker["reason"]),
                             ("Next step", blocker["next_action"])):
            cell = rows.nth(index).locator(f"td[data-label='{column}']")
            expect(cell).to_be_visible()
            expect(cell).to_contain_text(text)
            cell.scroll_into_view_if_needed()
            expect(cell).to_be_in_viewport(ratio=1)  # all of it, none cut off at the side
            assert fits(page, f"#blockers tbody tr:nth-child({index + 1}) "
                              f"td[data-label='{column}']"), column
    ui.shot("status-390")


def test_logs_are_readable_at_390_px(tmp_path, open_ui, monkeypatch):
    make_host_root(tmp_path)
    state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
    log = tmp_path / paths.LOG_DIR.lstrip("/") / "k3s.log"
    long_word = "sha256:" + "ab" * 64  # no place to break: it must wrap anyway
    log.write_text("".join(f"k3s line {i}: pulled {long_word} after a long wait\n"
                           for i in range(40)))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    ui = open_ui(tmp_path, viewport=PHONE)
    ui.open("/logs")
    page = ui.page
    page.select_option("#log-source", "phase-k3s")
    page.click("#logs-form button")
    expect(page.locator("#log-output")).to_contain_text("k3s line 39")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits(page, "#log-output"), "the log scrolls sideways"
    assert fits(page, "#logs-form")
    ui.shot("logs-390")
