"""The console's Network entry in real terminals: the plain mode through a pty and the
full-screen mode in tmux at 80x24. Each applies a change for real (files, settings, the
change record, the rollback timer handed to systemd), with stand-ins only for netplan apply,
systemd-run and systemctl (tests/fakes), and keeps it or lets it roll back."""

import io
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest
from support.base import ROOT
from support.network import INSTALLER_NETPLAN, logged, network_host
from test_console import (  # noqa: F401 -- namespace: the fixture, shared
    Tmux,  # the setup screens' terminal and captures
    keep_capture,
    namespace,
    on_the_guides_node,
)

from host.core import paths, state, token

WINDOW = "5"  # seconds to keep a change in: the console's own countdown, not a timing test


@pytest.fixture
def host(tmp_path, monkeypatch):
    logs = network_host(tmp_path, monkeypatch)
    token.ensure_token(tmp_path, owner=os.environ.get("USER", "root"))
    return tmp_path, logs


def console_env(term: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": term, "LANG": "C.UTF-8"}


def network_edit(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "host", "--root", str(root), "network", "edit", "--timeout",
            WINDOW, *extra]


def plain(root: Path) -> pexpect.spawn:
    command = network_edit(root, "--plain")
    child = pexpect.spawn(command[0], command[1:], env=console_env("vt100"), encoding="utf-8",
                          timeout=20, dimensions=(24, 80))
    child.logfile_read = io.StringIO()
    child.expect_exact("Interface (number or name)")
    return child


def answer(child: pexpect.spawn, *replies: str) -> None:
    for reply in replies:
        child.expect(r"\]: ")
        child.sendline(reply)


def installer_file(root: Path) -> Path:
    return paths.on_host(paths.NETPLAN_DIR, root) / "50-cloud-init.yaml"


# The replies, in the order the console asks: interface, mode, IPv4 address, IPv4 gateway,
# IPv6 address, IPv6 gateway, DNS servers, VLAN, then Apply.
STATIC_ENS4 = ("2", "static", "192.0.2.10/24", "192.0.2.1", "", "", "192.0.2.53", "", "yes")


def test_plain_static_applied_then_rolled_back_when_nobody_answers(host):
    root, _logs = host
    child = plain(root)
    assert "ens3  link up  MAC 52:54:00:00:00:00" in child.before
    answer(child, *STATIC_ENS4)
    child.expect_exact("Applied: ens4 static 192.0.2.10/24 gateway 192.0.2.1 DNS 192.0.2.53")
    # The countdown runs to the deadline recorded before the timer was set: the window, or
    # a second less when the clock ticked over in between.
    child.expect(r"Keep this configuration\? \[y/N\] \(rolled back in (\d) s\): ")
    left = int(child.match.group(1))
    assert int(WINDOW) - 1 <= left <= int(WINDOW)
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "pending"
    assert "ens4" in paths.on_host(paths.NETPLAN_FILE, root).read_text()
    child.expect_exact(f"No answer within {left} s.")
    child.expect_exact("Rolled back to the previous configuration.")
    child.expect(pexpect.EOF)
    assert child.wait() == 1
    assert installer_file(root).read_text() == INSTALLER_NETPLAN
    assert not paths.on_host(paths.NETPLAN_FILE, root).exists()
    assert state.read(state.NETWORK_CHANGE, root)["reason"] == "not confirmed in time"
    transcript = child.logfile_read.getvalue()
    assert "\x1b" not in transcript and transcript.isascii()


def test_plain_static_applied_and_kept(host):
    root, logs = host
    child = plain(root)
    answer(child, *STATIC_ENS4)
    child.expect_exact("Keep this configuration? [y/N]")
    child.sendline("y")
    child.expect_exact("Kept: ens4 static 192.0.2.10/24")
    child.expect(pexpect.EOF)
    assert child.wait() == 0
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "confirmed"
    assert state.read(state.NETWORK, root)["interfaces"]["ens4"]["gateway4"] == "192.0.2.1"
    assert logged(logs, "systemctl") == ["stop alga-appliance-network-rollback.timer"]
    assert logged(logs, "agetty")  # the banner was re-rendered for the new address


def test_the_console_menu_s_network_entry_applies_keeps_and_returns_to_the_menu(host):
    root, _ = host
    command = [sys.executable, "-m", "host", "--root", str(root), "console", "--plain"]
    child = pexpect.spawn(command[0], command[1:], env=console_env("vt100"), encoding="utf-8",
                          timeout=20, dimensions=(24, 80))
    child.logfile_read = io.StringIO()
    child.expect_exact("  2. Network\r\n")
    child.expect_exact("Choose 1-")
    child.sendline("2")
    child.expect_exact("Interface (number or name)")
    answer(child, *STATIC_ENS4)
    child.expect_exact("Keep this configuration? [y/N]")
    child.sendline("y")
    child.expect_exact("Kept: ens4 static 192.0.2.10/24")
    child.expect_exact("Choose 1-")  # back at the menu, which shows the new address
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "confirmed"
    child.terminate(force=True)


def test_plain_any_other_answer_rolls_back(host):
    root, _ = host
    child = plain(root)
    answer(child, *STATIC_ENS4)
    child.expect_exact("Keep this configuration? [y/N]")
    child.sendline("")
    child.expect_exact("Rolled back to the previous configuration.")
    child.expect(pexpect.EOF)
    assert state.read(state.NETWORK_CHANGE, root)["reason"] == "not kept at the console"


def test_plain_invalid_input_is_re_asked_with_the_reason(host):
    root, _ = host
    child = plain(root)
    answer(child, "7", "1", "s", "192.0.2.0/24", "198.51.100.1", "", "", "127.0.0.1", "9999")
    # Each refused answer is named and asked again, without it as the default: the address
    # (its gateway is then checked against it), the DNS servers, the VLAN.
    answer(child, "192.0.2.10/24", "", "")
    child.expect_exact("Error: ipv4_gateway: 198.51.100.1 is not in the subnet 192.0.2.0/24")
    answer(child, "192.0.2.254", "yes")
    child.expect_exact("Applied: ens3 static 192.0.2.10/24 gateway 192.0.2.254")
    child.expect_exact("Keep this configuration?")
    child.sendline("yes")
    child.expect(pexpect.EOF)
    said = child.logfile_read.getvalue()
    assert "Error: answer a number from 1 to 2, or one of: ens3, ens4" in said
    first = said.index("Error: ipv4_address: 192.0.2.0/24 is the network address of "
                       "192.0.2.0/24")
    assert first < said.index("Error: dns_servers: 127.0.0.1 is a local address") < \
        said.index("Error: vlan: '9999' is not a VLAN id")
    assert "> [192.0.2.0/24]" not in said
    assert state.read(state.NETWORK, root)["interfaces"]["ens3"] == {
        "mode": "static", "addresses": ["192.0.2.10/24"], "gateway4": "192.0.2.254", "dns": []}


def test_plain_dhcp_chosen_keeps_only_the_vlan_question(host):
    root, _ = host
    child = plain(root)
    answer(child, "ens3", "dhcp", "40", "yes")
    child.expect_exact("Applied: ens3 VLAN 40 DHCP")
    child.expect_exact("Keep this configuration?")
    child.sendline("y")
    child.expect(pexpect.EOF)
    assert "IPv4 address" not in child.logfile_read.getvalue()
    assert state.read(state.NETWORK, root)["interfaces"]["ens3"] == {"mode": "dhcp",
                                                                      "vlan": 40}


def test_plain_cancel_changes_nothing(host):
    root, logs = host
    child = plain(root)
    answer(child, "1", "cancel")
    child.expect_exact("Cancelled: nothing was changed.")
    child.expect(pexpect.EOF)
    assert child.wait() == 130
    assert installer_file(root).exists() and logged(logs, "netplan") == []


def test_the_timer_rolls_back_even_when_the_console_is_killed(host):
    """The terminal hangs up in the window: the rollback systemd was given still runs."""
    root, logs = host
    child = plain(root)
    answer(child, *STATIC_ENS4)
    child.expect_exact("Keep this configuration?")
    child.kill(9)
    child.close(force=True)
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "pending"
    [timer] = logged(logs, "systemd_run")
    command = timer.split()[timer.split().index(paths.CLI_LINK) + 1:]
    fired = pexpect.run(f"{sys.executable} -m host {' '.join(command)}", env=console_env("dumb"),
                        cwd=str(ROOT), withexitstatus=True, encoding="utf-8")
    assert fired[1] == 0, fired[0]
    assert installer_file(root).read_text() == INSTALLER_NETPLAN
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "rolled_back"


def test_a_console_opened_while_a_change_waits_offers_to_keep_it(host):
    root, _ = host
    first = plain(root)
    answer(first, *STATIC_ENS4)
    first.expect_exact("Keep this configuration?")
    first.kill(9)
    command = network_edit(root, "--plain")
    second = pexpect.spawn(command[0], command[1:], env=console_env("vt100"),
                           encoding="utf-8", timeout=20)
    second.expect_exact("A network change is waiting for confirmation: ens4 static")
    second.expect_exact("Keep this configuration? [y/N]")
    second.sendline("y")
    second.expect_exact("Kept: ens4 static")
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "confirmed"


# --- full screen, in tmux at 80x24 -------------------------------------------------------------


@pytest.fixture
def tui(host, namespace):  # noqa: F811 -- the shared fixture
    root, _ = host
    # On the guide's node: the guide shows the countdown, which lists the node's addresses.
    terminal = Tmux(on_the_guides_node(namespace, network_edit(root)),
                    console_env("xterm-256color"))
    terminal.wait_for("Which interface?")
    yield terminal
    terminal.close()


def fill_static(tui: Tmux, address: str, gateway: str) -> str:
    """From the interface list: ens4, static, an address and gateway; returns the screen."""
    tui.keys("Down", "Enter", "Down", "Enter")  # ens4, Next
    tui.wait_for("Addressing of ens4")
    tui.keys("Down", "Enter", "Down")  # static, then the IPv4 address field
    tui.type(address)
    tui.keys("Down")
    tui.type(gateway)
    tui.keys("Enter")  # Enter in a field: Review
    return tui.screen()


def test_tui_static_applied_then_rolled_back_by_the_countdown(host, tui):
    root, _ = host
    fill_static(tui, "192.0.2.10/24", "192.0.2.1")
    review = tui.wait_for("Review the change")
    assert "ens4 static 192.0.2.10/24 gateway 192.0.2.1" in review
    tui.keys("Enter")  # Apply
    countdown = tui.wait_for("unless you choose Keep")
    assert "Applied: ens4 static 192.0.2.10/24" in countdown
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "pending"
    done = tui.wait_for("Rolled back to the previous configuration.", timeout=30)
    assert "Keep" not in done
    assert installer_file(root).read_text() == INSTALLER_NETPLAN
    assert state.read(state.NETWORK_CHANGE, root)["reason"] == "not confirmed in time"
    tui.keys("Enter")
    tui.wait_for("EXIT=1")


def test_tui_static_applied_and_kept(host, tui):
    root, logs = host
    fill_static(tui, "192.0.2.10/24", "192.0.2.1")
    tui.wait_for("Review the change")
    tui.keys("Enter")
    countdown = tui.wait_for("unless you choose Keep")
    assert "The setup page is now at http://192.0.2.10:8080/setup" in countdown
    # The guide shows the countdown as it starts with the real window, not the tests' 5 s.
    keep_capture("tui-network-keep", re.sub(r"in \d s unless you choose Keep\. ",
                                            "in 60 s unless you choose Keep.", countdown))
    tui.keys("Left", "Enter")  # the focus starts on Roll back: Keep is one to the left
    kept = tui.wait_for("Kept: ens4 static 192.0.2.10/24")
    assert "Kept" in kept
    tui.keys("Enter")
    tui.wait_for("EXIT=0")
    assert state.read(state.NETWORK_CHANGE, root)["status"] == "confirmed"
    assert logged(logs, "systemctl") == ["stop alga-appliance-network-rollback.timer"]


def test_tui_invalid_input_is_shown_on_the_form_and_nothing_applied(host, tui):
    root, logs = host
    screen = fill_static(tui, "192.0.2.10/24", "198.51.100.1")
    screen = tui.wait_for("is not in the subnet")
    assert "198.51.100.1 is not in the subnet 192.0.2.0/24" in screen
    assert "Addressing of ens4" in screen and logged(logs, "netplan") == []
    tui.keys("F10")
    tui.wait_for("EXIT=130")
    assert installer_file(root).exists() and state.read(state.NETWORK, root) is None


def test_tui_dhcp_chosen(host, tui):
    root, _ = host
    tui.keys("Down", "Down", "Enter")  # ens3 as it is: Next
    tui.wait_for("Addressing of ens3")
    tui.keys(*["Down"] * 7)  # DHCP stays; past static and the address fields to the VLAN
    tui.type("40")
    tui.keys("Enter")  # Review
    assert "ens3 VLAN 40 DHCP" in tui.wait_for("Review the change")
    tui.keys("Enter")
    tui.wait_for("unless you choose Keep")
    tui.keys("Left", "Enter")
    tui.wait_for("Kept: ens3 VLAN 40 DHCP")
    assert state.read(state.NETWORK, root)["interfaces"]["ens3"] == {"mode": "dhcp", "vlan": 40}
