"""Applying a network change like `netplan try`, through `alga-appliance network`: the files
it writes and moves aside, the rollback timer it leaves to systemd, confirm, the rollback the
timer runs after the console died (its recorded command, run as systemd would), the boot-time
rollback of a change a reboot left pending, and every refusal. netplan apply, systemd-run and
systemctl are stand-ins (tests/fakes: networkd and systemd do not run here); netplan generate
is the real one."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.base import ROOT
from support.network import INSTALLER_NETPLAN, logged, network_host

from host import cli
from host.core import paths, state, token

STATIC = ["--interface", "ens3", "--mode", "static", "--ipv4-address", "192.0.2.10/24",
          "--ipv4-gateway", "192.0.2.1", "--dns", "192.0.2.53"]


@pytest.fixture
def host(tmp_path, monkeypatch):
    logs = network_host(tmp_path, monkeypatch)
    token.ensure_token(tmp_path, owner=os.environ.get("USER", "root"))
    return tmp_path, logs


def network(*argv: str):
    return CliRunner().invoke(cli.main, ["network", *argv])


def netplan_files(root: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes()
            for f in sorted(paths.on_host(paths.NETPLAN_DIR, root).glob("*.yaml"))}


def test_set_writes_the_one_netplan_file_moves_the_installers_aside_and_waits(host):
    root, logs = host
    result = network("set", *STATIC)
    assert result.exit_code == 0, result.output
    assert "applied: ens3 static 192.0.2.10/24 gateway 192.0.2.1 DNS 192.0.2.53" in result.output
    assert "sudo alga-appliance network confirm" in result.output
    own = paths.on_host(paths.NETPLAN_FILE, root)
    assert list(netplan_files(root)) == [own.name]  # one definition per interface
    assert own.stat().st_mode & 0o777 == 0o600
    aside = paths.on_host(paths.NETPLAN_ASIDE_DIR, root) / "50-cloud-init.yaml"
    assert aside.read_text() == INSTALLER_NETPLAN
    assert state.read(state.NETWORK, root)["interfaces"]["ens3"]["addresses"] == \
        ["192.0.2.10/24"]
    change = state.read(state.NETWORK_CHANGE, root)
    assert (change["status"], change["moved_aside"]) == ("pending", ["50-cloud-init.yaml"])
    assert logged(logs, "netplan")[-1] == "apply"
    [timer] = logged(logs, "systemd_run")
    assert timer.split()[:2] == ["--unit=alga-appliance-network-rollback", "--on-active=60s"]
    assert timer.endswith("/usr/local/bin/alga-appliance network rollback --if-pending "
                          "--timed-out")
    assert "applied, pending until" in paths.on_host(paths.NETWORK_LOG, root).read_text()
    assert logged(logs, "agetty") == ["--reload"]  # the banner follows at once


def test_confirm_stops_the_timer_and_keeps_the_change(host):
    root, logs = host
    network("set", *STATIC)
    result = network("confirm")
    assert result.exit_code == 0 and "confirmed: ens3 static" in result.output
    assert logged(logs, "systemctl") == ["stop alga-appliance-network-rollback.timer"]
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "confirmed"
    assert not paths.on_host(paths.NETWORK_PREVIOUS_DIR, root).exists()
    assert list(netplan_files(root)) == ["50-alga-appliance.yaml"]
    # What the timer runs when it fires anyway (it was stopped too late) changes nothing.
    late = network("rollback", "--if-pending")
    assert late.exit_code == 0 and "no network change is waiting" in late.output
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "confirmed"


def run_as_systemd_would(recorded: str, root: Path) -> subprocess.CompletedProcess:
    """The command a transient timer was given, run in a process of its own."""
    command = shlex.split(recorded)
    start = command.index(paths.CLI_LINK)
    argv = [sys.executable, "-m", "host", *command[start + 1:]]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), paths.ROOT_ENV: str(root)})


def test_the_timer_rolls_back_to_the_exact_files_when_nobody_confirms(host):
    root, logs = host
    before = netplan_files(root)
    network("set", *STATIC)
    network("set", "--interface", "ens4", "--mode", "dhcp")  # refused: one change at a time
    fired = run_as_systemd_would(logged(logs, "systemd_run")[0], root)
    assert fired.returncode == 0, fired.stderr
    assert "rolled back: ens3 static" in fired.stdout
    assert netplan_files(root) == before  # byte for byte, the installer's file back
    assert not (paths.on_host(paths.NETPLAN_ASIDE_DIR, root) / "50-cloud-init.yaml").exists()
    assert state.read(state.NETWORK, root) is None
    change = state.read(state.NETWORK_CHANGE, root)
    assert (change["status"], change["reason"]) == ("rolled_back", "not confirmed in time")
    assert logged(logs, "netplan")[-1] == "apply"
    journal = paths.on_host(paths.NETWORK_LOG, root).read_text().splitlines()
    assert journal[-1].endswith("rolled back (not confirmed in time): ens3 static "
                                "192.0.2.10/24 gateway 192.0.2.1 DNS 192.0.2.53")


def test_a_second_change_keeps_the_first_confirmed_one_and_rolls_back_to_it(host):
    root, _logs = host
    network("set", *STATIC)
    network("confirm")
    confirmed = netplan_files(root)
    assert network("set", "--interface", "ens4", "--mode", "static", "--ipv6-address",
                   "2001:db8::4/64", "--vlan", "12").exit_code == 0
    written = paths.on_host(paths.NETPLAN_FILE, root).read_text()
    assert "192.0.2.10/24" in written and "ens4.12" in written  # ens3 as it was
    assert network("rollback").exit_code == 0
    assert netplan_files(root) == confirmed
    assert list(state.read(state.NETWORK, root)["interfaces"]) == ["ens3"]


def test_a_reboot_in_the_window_comes_back_with_the_previous_configuration(host):
    """What alga-appliance-network-recover.service runs, before networkd: restore, then the
    real netplan generate renders the restored files for networkd."""
    root, logs = host
    before = netplan_files(root)
    network("set", *STATIC)
    unit = (ROOT / "units/alga-appliance-network-recover.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start == f"ExecStart={paths.CLI_LINK} network rollback --if-pending --at-boot"
    result = network("rollback", "--if-pending", "--at-boot")
    assert result.exit_code == 0, result.output
    assert netplan_files(root) == before
    assert logged(logs, "netplan")[-1] == f"generate --root-dir {root}"
    assert logged(logs, "netplan").count("apply") == 1  # the set's: at boot none waits on networkd
    generated = (root / "run/systemd/network").glob("*.network")
    assert all("Address=192.0.2.10/24" not in f.read_text() for f in generated)
    assert [f.name for f in (root / "run/systemd/network").glob("*.network")] == \
        ["10-netplan-wired.network"]
    # The next boot finds nothing pending.
    again = network("rollback", "--if-pending", "--at-boot")
    assert again.exit_code == 0 and "no network change is waiting" in again.output


def test_a_failing_netplan_apply_is_rolled_back_at_once(host, monkeypatch):
    root, logs = host
    before = netplan_files(root)
    monkeypatch.setenv("FAKE_NETPLAN_APPLY_FAIL", "1")
    result = network("set", *STATIC)
    assert result.exit_code == 1
    # networkd cannot be reached: the rollback's own apply fails too, so the files are back
    # for the next boot and the admin is told so.
    assert "netplan apply failed (netplan apply exited 1: Failed to connect system bus" in \
        result.output
    assert "previous files are back in /etc/netplan but could not be applied either: reboot" \
        in result.output
    assert netplan_files(root) == before
    change = state.read(state.NETWORK_CHANGE, root)
    assert change["status"] == "rolled_back" and change["reason"].startswith("netplan apply "
                                                                             "failed")
    assert logged(logs, "netplan").count("apply") == 2


def test_without_a_rollback_timer_nothing_is_changed(host, monkeypatch):
    root, logs = host
    before = netplan_files(root)
    monkeypatch.setenv("FAKE_SYSTEMD_RUN_FAIL", "1")
    result = network("set", *STATIC)
    assert result.exit_code == 1 and "nothing was changed" in result.output
    assert "systemctl is-system-running" in result.output
    assert netplan_files(root) == before and logged(logs, "netplan")[-1].startswith("generate")
    assert state.read(state.NETWORK, root) is None


def test_a_change_waiting_for_confirmation_refuses_another(host):
    _root, logs = host
    network("set", *STATIC)
    result = network("set", "--interface", "ens4", "--mode", "dhcp")
    assert result.exit_code == 1
    assert "still waiting for confirmation: confirm it" in result.output
    assert logged(logs, "netplan").count("apply") == 1


def test_invalid_settings_name_each_field_and_change_nothing(host):
    root, logs = host
    before = netplan_files(root)
    result = network("set", "--interface", "ens3", "--mode", "static", "--ipv4-address",
                     "192.0.2.10/24", "--ipv4-gateway", "198.51.100.1", "--vlan", "5000")
    assert result.exit_code == 1
    assert "network set: vlan: '5000' is not a VLAN id" in result.output
    assert "network set: ipv4_gateway: 198.51.100.1 is not in the subnet 192.0.2.0/24" in \
        result.output
    assert "Traceback" not in result.output
    assert netplan_files(root) == before and logged(logs, "netplan") == []


def test_set_from_a_json_file_and_not_both(host, tmp_path_factory):
    root, _logs = host
    answers = tmp_path_factory.mktemp("in") / "ens3.json"
    answers.write_text(json.dumps({"interface": "ens3", "mode": "static",
                                   "ipv6_address": "2001:db8::10/64", "vlan": 30}))
    both = network("set", "--from-file", str(answers), "--mode", "dhcp")
    assert both.exit_code == 2 and "not both" in both.output
    done = network("set", "--from-file", str(answers))
    assert done.exit_code == 0, done.output
    assert state.read(state.NETWORK, root)["interfaces"]["ens3"] == {
        "mode": "static", "addresses": ["2001:db8::10/64"], "dns": [], "vlan": 30}
    answers.write_text("[1, 2]")
    network("rollback")
    listed = network("set", "--from-file", str(answers))
    assert listed.exit_code == 2 and "must hold one JSON object" in listed.output


def test_only_root_may_change_the_network(host, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for command in (["set", *STATIC], ["confirm"], ["rollback"], ["edit"]):
        result = network(*command)
        assert result.exit_code == 1
        assert f"must run as root (sudo alga-appliance network {command[0]})" in result.output


def test_confirm_or_rollback_with_nothing_pending_says_so(host):
    for command in ("confirm", "rollback"):
        result = network(command)
        assert result.exit_code == 1 and "no network change is waiting" in result.output


def test_a_broken_change_record_is_named_not_a_traceback(host):
    root, _logs = host
    state.NETWORK_CHANGE.path(root).write_text('{"status": "maybe"}')
    result = network("rollback", "--if-pending", "--at-boot")
    assert result.exit_code == 1
    assert "network change (" in result.output and "next step" in result.output


def test_show_lists_each_nic_its_link_mac_and_setting(host):
    _root, _logs = host
    network("set", *STATIC)
    shown = network("show")
    assert shown.exit_code == 0
    assert "ens3  link up  MAC 52:54:00:00:00:00" in shown.output
    assert "set: ens3 static 192.0.2.10/24 gateway 192.0.2.1 DNS 192.0.2.53" in shown.output
    assert "set: ens4 DHCP" in shown.output
    assert "last change: ens3 static" in shown.output and "pending (confirm by" in shown.output
    as_json = json.loads(network("show", "--json").output)
    assert [i["name"] for i in as_json["interfaces"]] == ["ens3", "ens4"]
    assert as_json["last_change"]["status"] == "pending"
