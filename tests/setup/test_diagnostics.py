"""Network diagnostics on demand (host/setup/diagnostics.py) against the real network lab:
DNS, HTTPS with a test CA and a registry on loopback. The request goes through the spool
as the web service and the console send it; the root oneshot's code runs here as systemd
would run it."""

import json
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.base import TESTS
from support.builders import INSTALLED
from support.netlab import DnsServer, free_loopback_address

from host import cli
from host.core import paths, runlock, spool, state
from host.setup import diagnostics, preflight


@pytest.fixture
def lab(preflight_lab):
    paths.on_host(paths.SPOOL_DIR, preflight_lab.root).mkdir()
    return preflight_lab


def checks_of(report: dict) -> dict:
    return {check["id"]: check for check in report["checks"]}


def test_asked_through_the_spool_the_network_checks_run_and_leave_setups_report_alone(lab):
    setup_report = {"generated_at": "2026-11-27T10:00:00Z", "outcome": "pass", "causes": [],
                    "checks": [{"id": "ports", "status": "pass", "message": "free",
                                "remediation": "", "duration_ms": 1}]}
    state.write(state.PREFLIGHT_REPORT, setup_report, lab.root)
    request_id = diagnostics.submit(lab.root)
    assert diagnostics.progress_lines(lab.root, request_id) == (
        ["Waiting for the host to start the network checks..."], False)
    seen = []  # what the console and the web show while the checks run, after each one
    spooled = spool.take(spool.NETWORK_DIAGNOSTICS, lab.root)
    report = diagnostics.run(lab.root, spooled["id"], spooled["requested_at"],
                             log=lambda line: seen.append(
                                 diagnostics.progress_lines(lab.root, request_id)))
    assert report["outcome"] == "pass", report
    ids = set(checks_of(report))
    assert {"proxy", "release.channel", "ghcr", "dockerhub", "clock"} <= ids
    assert not any(i.startswith(("disk.", "ports")) for i in ids)  # the host's, not the net's
    assert all(i.startswith(diagnostics.CHECK_PREFIXES) for i in ids)
    status = diagnostics.last_status(lab.root)
    assert (status["state"], status["request_id"], status["inputs"]) == (
        "succeeded", request_id, "setup inputs")
    assert diagnostics.last_report(lab.root) == report
    assert state.read(state.PREFLIGHT_REPORT, lab.root) == setup_report  # untouched
    assert state.read(state.SELECTED_RELEASE, lab.root) is None  # nothing selected
    lines, ended = diagnostics.progress_lines(lab.root, request_id)
    assert ended and lines[0].startswith("Network diagnostics: pass")
    assert any(line.startswith("  ok   ghcr: ") for line in lines)
    assert len(seen) == len(report["checks"]) and not any(ended for _, ended in seen)
    assert seen[-1][0][1] == f"{len(report['checks'])} done; last: pass clock: " + \
        checks_of(report)["clock"]["message"]
    assert diagnostics.accept(lab.root) is None  # the request was taken once


def test_a_failing_host_shows_its_remediation_once_as_preflight_does(lab):
    lab.configure(ghcr_base="https://127.0.0.1:1")  # nothing listens there
    request_id = diagnostics.submit(lab.root)
    report = diagnostics.accept(lab.root)
    assert report["outcome"] == "fail"
    ghcr = checks_of(report)["ghcr"]
    assert ghcr["status"] == "fail" and "allow HTTPS to 127.0.0.1" in ghcr["remediation"]
    assert report["causes"][0]["checks"][0] == "ghcr"
    lines, ended = diagnostics.progress_lines(lab.root, request_id)
    assert ended
    assert any(line.startswith("Root cause") and "127.0.0.1:1" in line for line in lines)
    assert f"  Fix: {report['causes'][0]['remediation']}" in lines
    assert any(line.startswith("  FAIL ghcr: ") for line in lines)


def test_before_setup_the_checks_use_the_default_answers(lab):
    state.SETUP_INPUTS.path(lab.root).unlink()
    report = diagnostics.run(lab.root)
    assert diagnostics.last_status(lab.root)["inputs"] == "defaults"
    # The machine's own resolvers (the lab's resolv.conf) answer for every name.
    assert all(c["status"] == "pass" for i, c in checks_of(report).items()
               if i.startswith("dns.") and i != "dns.resolvers")


def test_a_dns_server_that_knows_nothing_fails_dns_with_the_fix_for_the_dns_chosen(lab):
    with DnsServer(free_loopback_address(), {}) as knows_nothing:
        lab.configure(resolver=knows_nothing.address)
        report = diagnostics.run(lab.root)
    assert report["outcome"] == "fail" and report["causes"][0]["cause"] == "dns"
    assert report["causes"][0]["remediation"] == preflight.DNS_NEXT_STEP["system"]


def test_while_setup_runs_the_report_says_so(lab):
    state.write(state.INSTALL_STATE, {**INSTALLED, "status": "running",
                                      "owner": runlock.owner()}, lab.root)
    diagnostics.run(lab.root)
    status = diagnostics.last_status(lab.root)
    assert status["setup_running"] and "setup" in status["setup_running"]
    lines = diagnostics.report_lines(status, diagnostics.last_report(lab.root))
    assert lines[1].startswith("While these ran: ") and "only read" in lines[1]


def test_one_request_at_a_time(lab):
    diagnostics.submit(lab.root)
    with pytest.raises(diagnostics.Busy, match="already asked for"):
        diagnostics.submit(lab.root)
    spool.take(spool.NETWORK_DIAGNOSTICS, lab.root)
    example = TESTS / "schema_examples/network-diagnostics/valid-running.json"
    state.write(state.NETWORK_DIAGNOSTICS, json.loads(example.read_text()), lab.root)
    with pytest.raises(diagnostics.Busy, match="running"):
        diagnostics.submit(lab.root)


def test_checks_that_cannot_run_are_recorded_as_failed_for_whoever_asked(lab):
    state.ENDPOINTS.path(lab.root).write_text("{not json")
    request_id = diagnostics.submit(lab.root)
    with pytest.raises(state.StateFileInvalid):
        diagnostics.accept(lab.root)
    status = diagnostics.last_status(lab.root)
    assert status["state"] == "failed" and "endpoint overrides" in status["error"]
    lines, ended = diagnostics.progress_lines(lab.root, request_id)
    assert ended and lines[0].startswith("The network checks could not run")
    assert "sudo alga-appliance diagnose-network" in lines[1]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200),
                      st.builds(lambda v: json.dumps(v).encode(),
                                st.recursive(st.none() | st.text(max_size=20) | st.integers(),
                                             lambda c: st.lists(c) | st.dictionaries(
                                                 st.text(max_size=8), c), max_leaves=10))))
def test_a_hostile_spooled_request_is_removed_and_nothing_runs(tmp_path_factory, body):
    root = tmp_path_factory.mktemp("hostile")
    path = spool.spool_file(spool.NETWORK_DIAGNOSTICS, root)
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    with pytest.raises(spool.Malformed):
        diagnostics.accept(root)
    assert not path.exists()
    assert diagnostics.last_status(root) is None


def test_the_cli_prints_the_report_and_exits_1_on_a_failure(lab):
    passed = CliRunner(mix_stderr=False).invoke(cli.main, ["--root", str(lab.root),
                                                           "diagnose-network"])
    assert passed.exit_code == 0, passed.output
    assert passed.stdout.startswith("Network diagnostics: pass")
    # Each check as it finished, on stderr: as many as the report has.
    assert len(passed.stderr.splitlines()) == len(diagnostics.last_report(lab.root)["checks"])
    assert passed.stderr.startswith("pass dns.")
    assert diagnostics.last_status(lab.root)["request_id"] is None
    lab.configure(ghcr_base="https://127.0.0.1:1")
    failed = CliRunner(mix_stderr=False).invoke(cli.main, ["--root", str(lab.root),
                                                           "diagnose-network", "--json"])
    assert failed.exit_code == 1
    assert checks_of(json.loads(failed.stdout))["ghcr"]["status"] == "fail"


def test_the_cli_refuses_without_root(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    refused = CliRunner().invoke(cli.main, ["--root", str(tmp_path), "diagnose-network"])
    assert refused.exit_code == 1
    assert "must run as root (sudo alga-appliance diagnose-network)" in refused.output
    assert diagnostics.last_status(tmp_path) is None


def test_the_units_command_takes_the_request_or_says_none_waits(lab):
    """`accept-network-diagnostics`, what the .path unit's oneshot runs."""
    def accept():
        return CliRunner(mix_stderr=False).invoke(
            cli.main, ["--root", str(lab.root), "accept-network-diagnostics"])
    idle = accept()
    assert (idle.exit_code, idle.stdout) == (0, "no network diagnostics request is waiting\n")
    diagnostics.submit(lab.root)
    done = accept()
    assert (done.exit_code, done.stdout) == (0, "network diagnostics: pass\n")
    spool.spool_file(spool.NETWORK_DIAGNOSTICS, lab.root).write_text('{"id": "../x"}')
    refused = accept()
    assert refused.exit_code == 1
    assert refused.stderr.startswith("accept-network-diagnostics: the network diagnostics "
                                     "request was malformed")
    state.INSTALL_STATE.path(lab.root).write_text("[]")  # broken: it cannot say what runs
    request_id = diagnostics.submit(lab.root)
    broken = accept()
    assert broken.exit_code == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("accept-network-diagnostics: install state ")
    lines, ended = diagnostics.progress_lines(lab.root, request_id)  # not left waiting
    assert ended and lines[0].startswith("The network checks could not run: install state")
