"""The Updates page in a real browser, with the real updater behind it: the web request is
spooled and run by `update.run_request` (what alga-appliance-update-request.service runs)
against the release-source servers and Flux stand-in of tests/update/test_update.py; the page
follows the history file it writes."""

import json
import threading

import pytest
from playwright.sync_api import expect
from support.browser import PHONE, fact
from support.releases import RELEASE_REPOSITORY
from support.updates import alga_core, publish

from host.core import spool, state
from host.update import apply
from host.update import request as update_request


@pytest.fixture
def lab(update_lab):
    """An installed appliance on the fake cluster (support.updates)."""
    return update_lab


def run_request_when_spooled(lab) -> dict:
    request_file = spool.spool_file(spool.UPDATE, lab.root)
    assert request_file.exists(), "the page did not ask"
    return update_request.accept(lab.root, lab.kubeconfig)


def test_check_see_the_diff_confirm_watch_and_see_history(lab, open_ui, monkeypatch):
    monkeypatch.setattr(apply, "LOGIN_TIMEOUT", 60.0)  # the test decides when login is back
    publish(lab, "nightly", "1.1-nightly.20261201", "main", algaCore="babe1234")
    ui = open_ui(lab.root)
    ui.open("/updates")
    page = ui.page
    release = page.locator("#release")
    expect(release).to_contain_text("stable")
    expect(release).to_contain_text("release/1.0.0")
    expect(page.locator("#update-stable")).to_be_checked()

    page.check("#update-nightly")
    page.click("#update-check")
    expect(page.locator("#update-busy")).to_be_visible()
    expect(page.locator("#update-busy")).to_contain_text("Waiting for the appliance")
    checked = run_request_when_spooled(lab)
    assert checked["result"] == "update_available"
    summary = page.locator("#update-summary")
    expect(summary).to_contain_text("1.0 (app 1.0) → 1.1-nightly.20261201")
    expect(summary).to_contain_text("the branch changes from release/1.0.0 to main")
    core = page.locator("#update-images tr", has_text="algaCore")
    expect(core).to_contain_text("eaec6253")
    expect(core).to_contain_text("babe1234")
    expect(page.locator("#update-warning")).to_be_visible()
    expect(page.locator("#update-warning")).to_have_text(
        checked["changes"]["confirmation_reason"])
    ui.shot("updates-plan-nightly")

    page.click("#update-apply")  # not confirmed yet: nothing is asked of the host
    expect(page.locator("#update-error")).to_be_visible()
    expect(page.locator("#update-error")).to_contain_text("Confirm first")
    assert not spool.spool_file(spool.UPDATE, lab.root).exists()
    page.check("#update-confirm")
    page.click("#update-apply")
    expect(page.locator("#update-busy")).to_be_visible()
    expect(page.locator("#update-busy")).to_contain_text("Waiting for the appliance")
    spooled = spool.spool_file(spool.UPDATE, lab.root).read_text()
    assert '"confirmed": true' in spooled and '"action": "apply"' in spooled

    applying = threading.Thread(target=run_request_when_spooled, args=(lab,))
    applying.start()
    try:
        step = page.locator("#update-step")
        expect(step).to_contain_text("waiting for login", timeout=30_000)
        expect(step).to_contain_text("Updating to 1.1-nightly.20261201 on nightly")
        expect(page.locator("#update-check")).to_be_disabled()
        ui.shot("updates-applying")
        lab.put(alga_core("babe1234"))  # the app comes back on the new release
    finally:
        applying.join(90)
    expect(page.locator("#update-progress")).to_be_hidden(timeout=15_000)
    rows = page.locator("#update-history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("apply")
    expect(rows.nth(0)).to_contain_text("succeeded")
    expect(rows.nth(0)).to_contain_text("1.0 (stable)")
    expect(rows.nth(0)).to_contain_text("1.1-nightly.20261201 (nightly)")
    expect(rows.nth(1)).to_contain_text("update available")
    expect(page.locator("#release")).to_contain_text("nightly")
    assert state.read(state.SELECTED_RELEASE, lab.root)["release_version"] == \
        "1.1-nightly.20261201"
    ui.shot("updates-history")


def test_an_oci_plan_names_its_source_and_the_apply_sends_the_reviewed_digest(
        oci_update_lab, open_ui, monkeypatch):
    lab = oci_update_lab
    # temporal fails to upgrade: the update still succeeds, and the page says so plainly.
    monkeypatch.setenv("FAKE_FLUX_RECONCILE", "fail:HelmRelease/temporal")
    origin = f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}"
    digest, manifest = lab.publish("1.0.4", algaCore="c0ffee11")
    ui = open_ui(lab.root)
    ui.open("/updates")
    page = ui.page
    release = page.locator("#release")
    expect(fact(release, "Source")).to_have_text(origin)
    expect(fact(release, "Digest")).to_have_text(lab.installed)

    page.click("#update-check")
    expect(page.locator("#update-busy")).to_contain_text("Waiting for the appliance")
    checked = run_request_when_spooled(lab)
    assert checked["result"] == "update_available"
    summary = page.locator("#update-summary")
    expect(summary).to_contain_text(
        f"1.0.3 (app 1.0.3) → 1.0.4 (app 1.0.4) on stable from {origin}@{digest}")
    expect(summary).to_contain_text(
        f"the config bundle changes to {manifest['config']['digest']}")
    expect(page.locator("#update-images tr", has_text="algaCore")).to_contain_text("c0ffee11")
    expect(page.locator("#update-warning")).to_be_hidden()
    ui.shot("updates-plan-oci")

    lab.put(alga_core("c0ffee11"))
    page.click("#update-apply")
    expect(page.locator("#update-busy")).to_contain_text("Waiting for the appliance")
    spooled = json.loads(spool.spool_file(spool.UPDATE, lab.root).read_text())
    assert (spooled["action"], spooled["confirmed"], spooled["digest"]) == (
        "apply", False, digest)
    assert run_request_when_spooled(lab)["result"] == "succeeded"
    expect(page.locator("#update-history tbody tr").nth(0)).to_contain_text("succeeded")
    expect(fact(release, "Digest")).to_have_text(digest)
    notice = page.locator("#update-background")
    expect(notice).to_contain_text("The update succeeded and login works")
    expect(notice).to_contain_text(
        "the installation of the workflow engine (HelmRelease alga-system/temporal): "
        "UpgradeFailed")
    expect(page.locator("#update-error")).to_be_hidden()


# --- update notices ----------------------------------------------------------------------


def test_the_status_page_shows_an_update_notice_and_when_a_check_last_succeeded(
        oci_update_lab, open_ui):
    """The daily check (what alga-appliance-update-check.service runs) finds 1.0.4 on the
    installed channel: the status page says so in the notice's words and leads to Updates.
    Then the registry fails: what was found stands, with when the last check succeeded."""
    lab = oci_update_lab
    lab.publish("1.0.4", algaCore="c0ffee11")
    found = update_request.scheduled_check(lab.root)
    ui = open_ui(lab.root)
    ui.open("/status")
    page = ui.page
    box = page.locator("#update-notice")
    expect(box).to_be_visible()
    expect(page.locator("#update-notice-headline")).to_have_text(
        "Alga 1.0.4 is available on stable.")
    expect(page.locator("#update-notice-changes li").first).to_have_text("app 1.0.3 → 1.0.4")
    expect(page.locator("#update-notice-next")).to_have_text(found["next_step"])
    expect(page.locator("#update-notice-command")).to_have_text(
        "sudo alga-appliance update --channel stable --check")
    expect(page.locator("#update-notice-checked")).to_contain_text("Checked ")
    ui.shot("status-update-notice")
    phone = open_ui(lab.root, viewport=PHONE)  # readable at 390 px: no sideways scrolling
    phone.open("/status")
    expect(phone.page.locator("#update-notice-command")).to_be_visible()
    phone.shot("phone-status-update-notice")
    assert history_entries(lab) == []  # the daily check is no plan the admin reviewed

    with lab.registry.blob_host_down():
        update_request.scheduled_check(lab.root)
    checked = page.locator("#update-notice-checked")
    expect(checked).to_contain_text("The last check failed: release.", timeout=15_000)
    expect(checked).to_contain_text("Last successful check: ")
    expect(checked).not_to_contain_text("never")
    expect(page.locator("#update-notice-headline")).to_have_text(
        "Alga 1.0.4 is available on stable.")

    page.click("#update-notice-link")
    ui.showing("updates")
    expect(page.locator("#update-daily")).to_contain_text("Alga 1.0.4 is available on stable.")
    expect(page.locator("#update-daily")).to_contain_text("Last successful check: ")


def test_check_for_updates_without_a_channel_checks_the_installed_one(oci_update_lab,
                                                                     open_ui):
    lab = oci_update_lab
    lab.publish("1.0.4", algaCore="c0ffee11")
    ui = open_ui(lab.root)
    ui.open("/updates")
    page = ui.page
    expect(page.locator("#update-stable")).to_be_checked()
    # No channel chosen (as when the page was opened before the release was known): the
    # choice is cleared and the button pressed in one step, before a poll fills it in.
    with page.expect_request(lambda r: r.url.endswith("/api/updates") and
                             r.method == "POST") as asked:
        page.evaluate("""() => {
            for (const radio of document.querySelectorAll('[name=update_channel]')) {
                radio.checked = false;
            }
            document.querySelector('#update-check').click(); }""")
    assert asked.value.post_data_json == {"action": "check"}
    expect(page.locator("#update-busy")).to_contain_text("Waiting for the appliance")
    checked = run_request_when_spooled(lab)
    assert (checked["channel"], checked["result"]) == ("stable", "update_available")
    expect(page.locator("#update-summary")).to_contain_text(
        "1.0.3 (app 1.0.3) → 1.0.4 (app 1.0.4) on stable")
    expect(page.locator("#update-error")).to_be_hidden()
    expect(page.locator("#update-daily")).to_contain_text("Alga 1.0.4 is available on stable.")
    ui.shot("updates-check-installed")

    # No release installed (its record moved aside): there is no installed channel, said so.
    state.set_aside(state.SELECTED_RELEASE, lab.root)
    page.reload()
    expect(page.locator("#release")).to_contain_text("None yet")
    expect(page.locator("#update-stable")).not_to_be_checked()
    page.click("#update-check")
    expect(page.locator("#update-error")).to_have_text(
        "there is no installed channel to check: no release is installed yet; updates are "
        "possible once setup has completed")
    assert not spool.spool_file(spool.UPDATE, lab.root).exists()


def history_entries(lab) -> list[dict]:
    document = state.read(state.UPDATE_HISTORY, lab.root)
    return document["entries"] if document else []
