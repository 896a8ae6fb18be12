"""Update notices: the daily check of the installed channel (what
alga-appliance-update-check.timer runs) against a real OCI registry (support.registry),
release 1.0.3 installed on stable. A newer release on the channel gives a notice; the same
or an older one none; a registry that fails keeps what the last successful check found and
says when that was; nothing is ever applied, and nothing else is recorded."""

import datetime
import json

import pytest
import requests
from click.testing import CliRunner
from support.base import serve_wsgi
from support.openapi_check import assert_documented

from host import cli
from host.core import busy, spool, state, token
from host.update import history, notice
from host.update import request as update_request
from host.web import make_app

NEXT_STEP = ("Nothing changes until you apply it: review it and apply it on the Updates "
             "page, or at the console with:")
COMMAND = "sudo alga-appliance update --channel stable --check"


@pytest.fixture
def lab(oci_update_lab):
    """Release 1.0.3 installed from the OCI source (support.updates)."""
    return oci_update_lab


def daily_check(lab) -> dict:
    return update_request.scheduled_check(lab.root)


def test_a_newer_release_on_the_installed_channel_gives_a_notice_and_changes_nothing(lab):
    digest, _ = lab.publish("1.0.4", algaCore="c0ffee11")
    before, files = lab.objects(), lab.host_files()
    found = daily_check(lab)
    assert found == state.read(state.UPDATE_NOTICE, lab.root)
    assert found["headline"] == "Alga 1.0.4 is available on stable."
    assert (found["next_step"], found["command"]) == (NEXT_STEP, COMMAND)
    assert (found["channel"], found["installed"]["release_version"],
            found["available"]["release_version"]) == ("stable", "1.0.3", "1.0.4")
    assert found["available"]["location"].endswith(f"@{digest}")
    assert found["what_changes"][0] == "app 1.0.3 → 1.0.4"
    assert any(line.startswith("algaCore ") and line.endswith("→ c0ffee11")
               for line in found["what_changes"])
    assert found["failure"] is None and found["last_success_at"] == found["checked_at"]
    # Nothing applied, nothing recorded but the notice: the history's newest check stays
    # the plan the admin reviewed.
    assert lab.objects() == before and lab.host_files() == files
    assert history.entries(lab.root) == [] and not lab.log.exists()


def test_the_installed_release_gives_no_notice(lab):
    found = daily_check(lab)
    assert (found["headline"], found["available"], found["what_changes"],
            found["next_step"], found["command"], found["failure"]) == (
        None, None, [], None, None, None)
    assert notice.lines(found) == ["No newer release on stable: 1.0.3 is installed."]


def test_an_older_release_on_the_channel_gives_no_notice(lab):
    lab.publish("1.0.2", algaCore="0ldc0de1")  # stable moved back
    found = daily_check(lab)
    assert (found["headline"], found["available"]) == (None, None)
    assert found["installed"]["release_version"] == "1.0.3"


def test_a_failing_registry_keeps_the_last_notice_and_says_when_it_last_succeeded(lab):
    lab.publish("1.0.4", algaCore="c0ffee11")
    first = daily_check(lab)
    with lab.registry.blob_host_down():
        failed = daily_check(lab)
    # The blob host refuses connections: a network failure, named with the check.
    assert failed["failure"]["category"] == "network"
    assert failed["failure"]["suspected_cause"].startswith("release.")
    assert failed["last_success_at"] == first["checked_at"]
    # What the last successful check found stands: the newer release is still there.
    assert (failed["headline"], failed["available"]) == (first["headline"], first["available"])
    shown = notice.lines(failed)
    assert shown[0].startswith(f"The update check at {failed['checked_at']} failed: release.")
    assert shown[2] == f"  last successful check: {first['checked_at']}"
    assert "Alga 1.0.4 is available on stable." in shown
    # No blocker anywhere: the install state and the status are not touched.
    assert state.read(state.INSTALL_STATE, lab.root)["status"] == "succeeded"
    assert state.read(state.STATUS, lab.root) is None


def test_a_registry_failing_from_the_first_check_says_never(lab):
    with lab.registry.blob_host_down():
        failed = daily_check(lab)
    assert (failed["headline"], failed["last_success_at"]) == (None, None)
    assert notice.lines(failed)[2] == "  last successful check: never"
    assert len(notice.lines(failed)) == 3


def test_at_most_daily(lab):
    checked = daily_check(lab)
    with pytest.raises(update_request.CheckSkipped, match="checked less than 20 h ago"):
        update_request.scheduled_check(lab.root, if_due=True)
    checked_at = state.moment(checked["checked_at"])
    assert not notice.due(lab.root, checked_at + datetime.timedelta(hours=19, minutes=59))
    assert notice.due(lab.root, checked_at + datetime.timedelta(hours=20))
    day_old = checked_at - datetime.timedelta(hours=20)
    state.write(state.UPDATE_NOTICE, {**checked, "checked_at": state.timestamp(day_old)},
                lab.root)
    assert update_request.scheduled_check(lab.root, if_due=True)["checked_at"] != \
        state.timestamp(day_old)


def test_a_broken_notice_is_moved_aside_and_the_daily_check_starts_afresh(lab):
    path = state.UPDATE_NOTICE.path(lab.root)
    path.write_text('{"channel": "beta"}')
    assert notice.due(lab.root)
    assert state.aside(path).read_text() == '{"channel": "beta"}'  # kept for support
    assert update_request.scheduled_check(lab.root, if_due=True)["failure"] is None
    path.write_text("{not json")
    with lab.registry.blob_host_down():
        failed = daily_check(lab)  # the failure is recorded beside nothing older
    assert (failed["last_success_at"], failed["headline"]) == (None, None)
    assert state.aside(path).read_text() == "{not json"


def test_never_while_an_update_waits_or_runs_or_before_setup_has_completed(lab):
    spool.submit(spool.UPDATE, {"action": "check", "channel": "stable", "confirmed": False,
                                "who": "web", "requested_at": state.timestamp()}, lab.root)
    with pytest.raises(update_request.CheckSkipped,
                       match="not checked now: an update request is already waiting"):
        daily_check(lab)
    spool.take(spool.UPDATE, lab.root)
    install = state.read(state.INSTALL_STATE, lab.root)
    state.write(state.INSTALL_STATE, {**install, "status": "failed"}, lab.root)
    with pytest.raises(update_request.CheckSkipped,
                       match="updates are possible once setup has completed"):
        daily_check(lab)
    assert state.read(state.UPDATE_NOTICE, lab.root) is None
    assert busy.busy(lab.root) is None  # the skipped check left nothing behind


def test_a_check_of_the_installed_channel_on_demand_refreshes_the_notice_and_an_apply_settles_it(
        lab):
    digest, _ = lab.publish("1.0.4", algaCore="c0ffee11")
    lab.check("nightly")  # another channel: not the installed one's notice
    assert state.read(state.UPDATE_NOTICE, lab.root) is None
    checked = lab.check()
    assert checked["result"] == "update_available"
    found = state.read(state.UPDATE_NOTICE, lab.root)
    assert found["headline"] == "Alga 1.0.4 is available on stable."
    assert found["checked_at"] == checked["finished_at"]
    from support.updates import alga_core
    lab.put(alga_core("c0ffee11"))
    assert lab.apply(digest=digest)["result"] == "succeeded"
    settled = state.read(state.UPDATE_NOTICE, lab.root)
    assert (settled["headline"], settled["installed"]["release_version"]) == (None, "1.0.4")


def test_the_cli_checks_now_and_shows_the_notice(lab):
    lab.publish("1.0.4", algaCore="c0ffee11")
    runner = CliRunner()
    result = runner.invoke(cli.main, ["--root", str(lab.root), "check-updates"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Alga 1.0.4 is available on stable."
    assert f"{NEXT_STEP}\n  {COMMAND}\n" in result.output
    again = runner.invoke(cli.main, ["--root", str(lab.root), "check-updates", "--if-due"])
    assert again.exit_code == 0
    assert again.output.startswith("check-updates: the installed channel was checked less")
    with lab.registry.blob_host_down():
        failed = runner.invoke(cli.main, ["--root", str(lab.root), "check-updates"])
    assert failed.exit_code == 1
    assert "last successful check: " in failed.output


def test_the_notice_s_own_command_runs_as_written(lab):
    """The notice's command, and the same without --channel (the installed channel)."""
    lab.publish("1.0.4", algaCore="c0ffee11")
    sudo, program, *argv = daily_check(lab)["command"].split()
    assert (sudo, program) == ("sudo", "alga-appliance")
    runner = CliRunner()
    for args in (argv, [arg for arg in argv if arg not in ("--channel", "stable")]):
        result = runner.invoke(cli.main, ["--root", str(lab.root), *args])
        assert result.exit_code == 0, result.output
        assert "stable 1.0.3 → stable 1.0.4" in result.output
        assert "check: update available" in result.output


def test_update_without_a_channel_before_setup_says_there_is_none(tmp_path):
    from support.base import make_host_root
    make_host_root(tmp_path)
    result = CliRunner().invoke(cli.main, ["--root", str(tmp_path), "update", "--check"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "update: no release is installed yet, so there is no installed channel: complete "
        "setup first, or give --channel stable or nightly")
    skipped = CliRunner().invoke(cli.main, ["--root", str(tmp_path), "check-updates"])
    assert skipped.exit_code == 0
    assert skipped.output.strip() == ("check-updates: not checked now: updates are possible "
                                      "once setup has completed; the daily check tries again")


def test_the_web_serves_the_notice_and_checks_the_installed_channel_without_one(lab):
    lab.publish("1.0.4", algaCore="c0ffee11")
    found = daily_check(lab)
    secret = token.ensure_token(lab.root, owner=__import__("getpass").getuser())
    auth = {"Authorization": f"Bearer {secret}"}
    with serve_wsgi(make_app(lab.root, node_ip=lambda: "10.0.0.5")) as url:
        status = requests.get(f"{url}/api/status", timeout=5, headers=auth)
        updates = requests.get(f"{url}/api/updates", timeout=5, headers=auth)
        asked = requests.post(f"{url}/api/updates", json={"action": "check"}, timeout=5,
                              headers=auth)
    for response, method, path in ((status, "GET", "/api/status"),
                                   (updates, "GET", "/api/updates"),
                                   (asked, "POST", "/api/updates")):
        assert_documented(response, method, path)
    assert status.json()["update_notice"] == found
    assert updates.json()["notice"] == found
    assert asked.status_code == 202, asked.text
    spooled = json.loads(spool.spool_file(spool.UPDATE, lab.root).read_text())
    assert (spooled["action"], spooled["channel"], spooled["id"]) == (
        "check", "stable", asked.json()["request_id"])
    entry = update_request.accept(lab.root, lab.kubeconfig)
    assert (entry["channel"], entry["result"]) == ("stable", "update_available")
