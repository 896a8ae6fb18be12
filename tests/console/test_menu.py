"""The console menu (host/console/menu.py and its two modes): every entry driven in real
terminals, tmux at 80x24 for the full screen and a pty for the plain lines, with hostile
input thrown at the plain prompts; and the serial console's instances."""

import copy
import io
import json
import os
import re
import shlex
import sys
from pathlib import Path

import pexpect
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.base import FAKES, ROOT
from support.builders import INSTALLED
from test_console import (  # noqa: F401 -- console_root, namespace: the fixtures, shared
    Tmux,
    choose,
    console_command,
    console_env,
    console_root,
    keep_capture,
    namespace,
    on_the_guides_node,
)
from test_qr import decoded

from host.console import actions, app, banner, serial
from host.console.plain import PlainMenu
from host.core import paths, spool, state, token
from host.net import addresses
from host.setup import diagnostics
from host.support import bundle
from host.support import request as support_request

BACKGROUND_ISSUE = json.loads(
    (ROOT / "tests/schema_examples/status/valid-background-issue.json").read_text())


def fully_healthy() -> dict:
    snapshot = copy.deepcopy(BACKGROUND_ISSUE)
    snapshot["rollup"] = {"state": "fully_healthy", "label": "Fully healthy",
                          "message": "Alga is up.", "next_action": "log in to Alga"}
    for tier in snapshot["tiers"].values():
        tier.update(ready=True, state="ready", degraded=False)
    snapshot["blockers"] = []
    return snapshot


@pytest.fixture
def menu_root(console_root, monkeypatch):  # noqa: F811 -- the shared fixture
    """A host root with a token (its owner: this user), and the fakes for agetty."""
    token.ensure_token(console_root, owner=os.environ.get("USER", "root"))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AGETTY_LOG", str(console_root / "agetty.log"))
    return console_root


def plain_menu(root: Path) -> pexpect.spawn:
    command = console_command(root, "--plain")
    child = pexpect.spawn(command[0], command[1:], env=console_env("vt100"),
                          encoding="utf-8", timeout=15, dimensions=(24, 80))
    child.logfile_read = io.StringIO()
    return child


# --- plain mode ----------------------------------------------------------------------------


def test_plain_menu_before_setup_shows_the_banner_and_its_entries(menu_root):
    child = plain_menu(menu_root)
    child.expect_exact("Choose 1-7 (Enter shows this again): ")
    shown = child.before
    assert "Ubuntu is installed. Appliance setup is waiting for your input." in shown
    assert f"Setup token: {token.for_people(token.read_token(menu_root))}" in shown
    for number, label in enumerate(("Set up here", "Network", "Support bundle", "Token",
                                    "Network diagnostics",
                                    "Shell (log in with the admin password)", "Exit"), 1):
        assert f"  {number}. {label}\r\n" in shown
    assert "Status" not in shown  # only after setup
    child.sendline("9")
    child.expect_exact("Error: type a number from 1 to 7.")
    child.expect_exact("Choose 1-7")
    child.sendline("7")  # Exit
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize("snapshot", [BACKGROUND_ISSUE, fully_healthy()],
                         ids=["background-blocker", "fully-healthy"])
def test_plain_status_after_setup_in_plain_words(menu_root, snapshot):
    state.write(state.INSTALL_STATE, INSTALLED, menu_root)
    state.write(state.STATUS, snapshot, menu_root)
    child = plain_menu(menu_root)
    choose(child, "Status")
    child.expect_exact("Choose 1-")
    shown = child.before
    assert "Steps to a working Alga:" in shown
    assert "[ ready  ] Login (you can log in to Alga)" in shown
    if snapshot is BACKGROUND_ISSUE:
        assert "Ready to log in, with background issues" in shown
        assert "[failing ] Background (email, workflows and other background services)" \
            in shown
        assert "warning (login still works): background job service keeps" in shown
        assert "Next: the log of its last run says why it stopped" in shown
        assert "Detail: Pod temporal-worker-5d9c-x1: CrashLoopBackOff" in shown
        assert "kubectl" not in shown
        keep_capture("plain-status", shown.split("Status\r\n------\r\n")[1].split(
            "\r\nAlga appliance console")[0])
    else:
        assert "Fully healthy (as of" in shown and "Problems: none." in shown
        assert "[failing" not in shown
    child.terminate(force=True)


def test_plain_status_before_the_first_snapshot_says_what_the_install_says(menu_root):
    state.write(state.INSTALL_STATE, INSTALLED, menu_root)
    child = plain_menu(menu_root)
    choose(child, "Status")
    child.expect_exact("Choose 1-")
    assert "No status yet" in child.before and "Setup: succeeded" in child.before
    child.terminate(force=True)


def test_plain_token_shown_with_its_link_then_rotated_the_old_one_stops_working(menu_root):
    old = token.read_token(menu_root)
    child = plain_menu(menu_root)
    choose(child, "Token")
    child.expect_exact("Rotate the token now? yes/no [no]: ")
    assert f"Setup token: {token.for_people(old)}" in child.before
    if not addresses.node_addresses():
        pytest.skip("this machine has no address for a setup link")
    link = re.search(r"Setup link:\s+(\S+)", child.before)[1]  # never cut
    assert link.endswith(f":8080/setup?token={token.for_people(old)}")
    # Plain mode writes ASCII (a serial line may know no more): no code, and it says so.
    assert "No QR code on this terminal" in child.before
    child.sendline("")  # no: nothing changes
    choose(child, "Token")
    assert token.read_token(menu_root) == old
    child.expect_exact("Rotate the token now? yes/no [no]: ")
    child.sendline("yes")
    child.expect(r"New setup token: (\S+)\s+\(the\s+old\s+one\s+no\s+longer\s+works\)")
    new = child.match.group(1)
    assert new == token.for_people(token.read_token(menu_root))
    assert token.read_token(menu_root) != old
    assert not token.matches(old, token.read_token(menu_root))
    issue = paths.on_host(paths.ISSUE_FILE, menu_root).read_text()
    assert f"Setup token: {new}" in issue and token.for_people(old) not in issue  # the banner
    assert f"Setup token: {new}" in child.before  # and the menu's header, above the note
    child.terminate(force=True)


def test_plain_support_bundle_through_the_webs_request(menu_root, monkeypatch):
    child = plain_menu(menu_root)
    choose(child, "Support bundle")
    child.expect_exact(actions.WAITING)
    request = spool.spool_file(spool.SUPPORT_BUNDLE, menu_root)
    assert request.exists()
    landed = request.stat().st_mtime - spool.PICKUP_SECONDS - 1
    os.utime(request, (landed, landed))  # as if the host had left it 31 s
    child.expect_exact(spool.not_picked_up(spool.SUPPORT_BUNDLE))

    def create(bundle_root, directory, progress):  # the collectors run in tests/bundle
        progress("journal", 1, 2)
        archive = directory / "alga-appliance-support-test.tar.gz"
        archive.write_bytes(b"archive")
        return archive

    monkeypatch.setattr(bundle, "create", create)
    assert support_request.accept(menu_root, owner=os.environ.get("USER", "root")) \
        == "alga-appliance-support-test.tar.gz"
    child.expect_exact("The support bundle is ready (7 bytes):")
    child.expect_exact(f"{paths.WEB_BUNDLE_DIR}/alga-appliance-support-test.tar.gz")
    child.expect_exact(":8080/support, then Download")
    child.expect(r"scp admin@\S+:/tmp/alga-appliance-support-test.tar.gz \.")
    choose(child, "Support bundle")  # the next one is a new request
    child.expect_exact(actions.WAITING)
    child.terminate(force=True)


def test_plain_network_diagnostics_through_the_webs_request_show_the_fix(preflight_lab):
    """The entry asks as the web does; the root oneshot's code (run here) checks the real
    network lab, where GHCR does not answer: the report names it and its fix."""
    lab = preflight_lab
    paths.on_host(paths.SPOOL_DIR, lab.root).mkdir()
    token.ensure_token(lab.root, owner=os.environ.get("USER", "root"))
    lab.configure(ghcr_base="https://127.0.0.1:1")  # nothing listens there
    child = plain_menu(lab.root)
    choose(child, "Network diagnostics")
    child.expect_exact("Waiting for the host to start the network checks...")
    assert spool.spool_file(spool.NETWORK_DIAGNOSTICS, lab.root).exists()
    report = diagnostics.accept(lab.root)
    child.expect_exact("Network diagnostics: fail")
    child.expect_exact(f"Fix: {report['causes'][0]['remediation']}")
    child.expect_exact("FAIL ghcr: cannot reach https://127.0.0.1:1/v2/")
    child.expect_exact("ok   k3s.release: ")
    choose(child, "Network diagnostics")  # the next one is a new request
    child.expect_exact("Waiting for the host to start the network checks...")
    child.terminate(force=True)


@pytest.mark.skipif(os.geteuid() != 0 or not Path(actions.LOGIN_COMMAND[0]).exists(),
                    reason="the real login needs root and /bin/login")
def test_plain_shell_runs_the_real_login_which_refuses_a_wrong_password(menu_root, tmp_path):
    """No shell without a password: login for a user that does not exist, with a guess.
    The console's stderr is not the terminal, as on the tty service (the journal): login's
    prompts must still reach the terminal."""
    command = shlex.join(console_command(menu_root, "--plain"))
    child = pexpect.spawn("sh", ["-c", f"exec {command} 2>>{tmp_path / 'journal'}"],
                          env=console_env("vt100"), encoding="utf-8", timeout=15,
                          dimensions=(24, 80))
    child.logfile_read = io.StringIO()
    choose(child, "Shell (log in with the admin password)")
    child.expect_exact("Log in with the admin user and its password")
    child.expect("login: ")
    child.sendline("alga-no-such-user")
    child.expect_exact("Password: ")
    child.sendline("not-the-password")
    child.expect_exact("Login incorrect", timeout=30)
    child.expect("login: ", timeout=30)
    assert "#" not in child.before and "$ " not in child.before  # no shell prompt
    child.terminate(force=True)


def test_plain_menu_survives_ctrl_c_and_returns_to_the_menu(menu_root):
    child = plain_menu(menu_root)
    child.expect_exact("Choose 1-")
    child.sendintr()
    child.expect_exact("Interrupted: back at the menu.")
    child.expect_exact("Choose 1-")
    child.terminate(force=True)


ENTRY_LINES = st.sampled_from(["1", "2", "3", "4", "5", "6", "", "yes", "no", "back",
                               "cancel", "0", "-1", "99", "1e3"])
HOSTILE_LINES = st.lists(st.one_of(ENTRY_LINES, st.text(max_size=40).map(
    lambda t: t.replace("\n", " "))), max_size=25)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=HOSTILE_LINES)
def test_hostile_plain_input_never_crashes_the_menu_nor_reaches_a_shell(menu_root,
                                                                        monkeypatch, lines):
    """Random replies at every prompt: the menu returns at the end of input, never with an
    exception, and the only program it ever runs is login."""
    ran = []
    monkeypatch.setattr(actions.subprocess, "run", lambda argv, **_: ran.append(argv) or
                        type("Done", (), {"returncode": 1})())
    monkeypatch.setattr(actions, "bundle_progress", lambda root, request_id: (["made"], True))
    monkeypatch.setattr(diagnostics, "progress_lines",
                        lambda root, request_id: (["checked"], True))
    monkeypatch.setattr(app, "ERROR_PAUSE_SECONDS", 0)
    spool.spool_file(spool.SUPPORT_BUNDLE, menu_root).unlink(missing_ok=True)
    spool.spool_file(spool.NETWORK_DIAGNOSTICS, menu_root).unlink(missing_ok=True)
    stdout = io.StringIO()
    ui = PlainMenu(menu_root, io.StringIO("".join(f"{line}\n" for line in lines)), stdout)
    assert app.serve(menu_root, ui, plain=True, service=True) == 0
    # login, and after a rotation the banner's reload of the login prompts' text (which
    # runs through the same subprocess module): nothing else.
    assert all(argv in (actions.LOGIN_COMMAND, ["agetty", "--reload"]) for argv in ran), ran
    assert "Traceback" not in stdout.getvalue()


# --- the full screen in tmux ---------------------------------------------------------------


@pytest.fixture
def tui_menu():
    opened = []

    def start(root: Path, *, on_node: str | None = None) -> Tmux:
        argv = console_command(root)
        terminal = Tmux(on_the_guides_node(on_node, argv) if on_node else argv,
                        console_env("xterm-256color"))
        opened.append(terminal)
        terminal.wait_for("Alga appliance console")
        return terminal

    yield start
    for terminal in opened:
        terminal.close()


def test_tui_menu_redraws_when_setup_completes(menu_root, tui_menu, namespace):  # noqa: F811
    terminal = tui_menu(menu_root, on_node=namespace)  # the guide shows this screen
    screen = terminal.wait_for("Set up here")
    assert "Support bundle" in screen and "Token" in screen and "Exit" in screen
    assert "Up/Down: move   Enter: choose" in screen
    secret = token.for_people(token.read_token(menu_root))
    keep_capture("tui-menu", screen.replace(secret, "<token>".ljust(len(secret))))
    state.write(state.INSTALL_STATE, INSTALLED, menu_root)
    state.write(state.STATUS, BACKGROUND_ISSUE, menu_root)
    screen = terminal.wait_for("Status")  # polled: no key pressed
    assert "Set up here" not in screen
    assert "Alga is ready to log in; a background service has a problem." in screen
    terminal.keys("Enter")  # Status has the focus
    screen = terminal.wait_for("Steps to a working Alga")
    assert "[failing ] Background" in screen
    terminal.keys("Escape")
    terminal.wait_for("Support bundle")


def test_tui_token_shown_beside_its_link_s_code_then_rotated_after_confirmation(
        menu_root, tui_menu, tmp_path):
    old = token.read_token(menu_root)
    terminal = tui_menu(menu_root)
    terminal.wait_for("Set up here")
    terminal.keys("Down", "Down", "Down", "Enter")  # Token
    screen = terminal.wait_for(token.for_people(old))
    if addresses.node_addresses():  # the code beside the token, whole within 80x24
        code = [row[2:39] for row in screen.splitlines()[2:21]]  # inside the box's border
        link = banner.link(addresses.node_addresses()[0], "setup", old)
        assert decoded(code, tmp_path) == link
    terminal.keys("Enter")  # leaves the code
    screen = terminal.wait_for("Rotate the token now?")
    terminal.keys("Enter")  # No has the focus
    terminal.wait_for("Set up here")
    assert token.read_token(menu_root) == old
    terminal.keys("Down", "Down", "Down", "Enter")
    terminal.wait_for("Setup token:")
    terminal.keys("Enter")
    terminal.wait_for("Rotate the token now?")
    terminal.keys("Down", "Enter")  # Yes
    new = token.read_token(menu_root)
    terminal.wait_for(f"New setup token: {token.for_people(new)}")
    assert new != old and not token.matches(old, new)


def test_tui_support_bundle_shows_progress_then_where_it_is(menu_root, tui_menu, monkeypatch):
    terminal = tui_menu(menu_root)
    terminal.wait_for("Set up here")
    terminal.keys("Down", "Down", "Enter")  # past Network to Support bundle
    terminal.wait_for(actions.WAITING)

    def create(bundle_root, directory, progress):
        archive = directory / "alga-appliance-support-test.tar.gz"
        archive.write_bytes(b"archive")
        return archive

    monkeypatch.setattr(bundle, "create", create)
    support_request.accept(menu_root, owner=os.environ.get("USER", "root"))
    screen = terminal.wait_for("The support bundle is ready")
    assert "/var/lib/alga-appliance/web-bundles/alga-appliance-support-test.tar.gz" in screen
    assert ":8080/support, then Download" in screen
    terminal.keys("Enter")  # Back
    terminal.wait_for("Set up here")


def test_tui_network_diagnostics_show_progress_then_the_report(preflight_lab, tui_menu):
    lab = preflight_lab
    paths.on_host(paths.SPOOL_DIR, lab.root).mkdir()
    token.ensure_token(lab.root, owner=os.environ.get("USER", "root"))
    terminal = tui_menu(lab.root)
    terminal.wait_for("Set up here")
    terminal.keys("Down", "Down", "Down", "Down", "Enter")  # past Token to the diagnostics
    terminal.wait_for("Waiting for the host to start the network checks...")
    report = diagnostics.accept(lab.root)
    screen = terminal.wait_for("< Back")  # the report's end, where the focus goes
    assert report["outcome"] == "pass"
    assert "ok   flux.release: the Flux install manifest is downloadable" in screen
    assert "Traceback" not in screen
    terminal.keys("Enter")  # Back
    terminal.wait_for("Set up here")


def test_tui_ctrl_c_returns_to_the_menu(menu_root, tui_menu):
    terminal = tui_menu(menu_root)
    terminal.wait_for("Set up here")
    terminal.keys("Enter")
    terminal.wait_for("Release channel")
    terminal.keys("C-c")
    terminal.wait_for("Interrupted: back at the menu.")
    assert "Traceback" not in terminal.screen()


# --- the serial console --------------------------------------------------------------------


@pytest.mark.parametrize(("active", "lines"), [
    ("tty0\n", []), ("tty1 ttyS0\n", ["ttyS0"]), ("ttyS0 ttyS1 tty0", ["ttyS0", "ttyS1"]),
    ("hvc0", ["hvc0"]), ("", []), ("ttyS0/../../x ttyS", []),
])
def test_serial_lines_are_the_kernels_serial_consoles(active, lines):
    assert serial.serial_lines(active) == lines


def test_console_serial_starts_an_instance_per_serial_console(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    assert serial.start_consoles(tmp_path) == []  # no console list (ESXi without a port)
    active = tmp_path / serial.ACTIVE_CONSOLES.lstrip("/")
    active.parent.mkdir(parents=True)
    active.write_text("tty1 ttyS0\n")
    assert serial.start_consoles(tmp_path) == ["ttyS0"]
    assert "start --no-block alga-appliance-console@ttyS0.service" in (
        tmp_path / "systemctl.log").read_text()


def test_console_service_mode_exits_at_end_of_input_for_systemd_to_restart(menu_root):
    child = pexpect.spawn(sys.executable, console_command(menu_root, "--plain", "--service")[1:],
                          env=console_env("vt100"), encoding="utf-8", timeout=15)
    child.expect_exact("Choose 1-6")  # no Exit on the tty service
    assert "Exit" not in child.before
    child.sendeof()
    child.expect(pexpect.EOF)
