"""The console: the first-boot banner (rendered, and its addresses read from real
interfaces in a network namespace), and the setup fallback driven in real terminals, the
full-screen TUI in tmux at 80x24 and the plain mode through a pty, with real preflight runs
behind the progress screens. A parity table holds the console to the web API's results."""

import datetime
import grp
import io
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pexpect
import pytest
import requests
from click.testing import CliRunner
from support.answers import (
    ADMIN_PASSWORD,
    SPOOLED_ADMIN,
    hash_checks,
    made_public_keys,
    parse_with_admin,
    with_admin,
)
from support.base import FAKES, ROOT, make_host_root, serve_wsgi
from support.builders import INSTALLED
from support.docs import CAPTURE_NAMES, CAPTURES
from support.netlab import (
    free_loopback_address,
)
from support.scenarios import assert_next_step_is_ours

from host import cli
from host.console import app, banner
from host.console import progress as console_progress
from host.core import paths, runlock, spool, state, tls, token
from host.net import addresses as netinfo
from host.setup import engine
from host.setup.inputs import (
    PASSWORD_RULE,
    InputErrors,
    default_answers,
    parse_setup_inputs,
)
from host.web import make_app

ROLLUP_STATES = ("setup_required", "installing", "failed_action_required", "ready_to_log_in",
                 "ready_with_background_issues", "fully_healthy")
TOKEN = "3XAMP1E0ABCDEFGHJKMNPQRSTVWX"  # as read_token gives it
SHOWN_TOKEN = "3XAM-P1E0-ABCD-EFGH-JKMN-PQRS-TVWX"  # as the banner shows it
FINGERPRINT = ":".join(f"{n:02X}" for n in range(0xA0, 0xC0))  # 32 bytes, as tls shows them
# Screens and transcripts for docs/admin-guide.md, which ci/screenshots.sh embeds
# (CAPTURES, CAPTURE_NAMES: support.docs).
DOC_NODE_IP = "192.0.2.2"  # a documentation address in place of this machine's


@pytest.fixture
def lab(preflight_lab):
    """The release-repository lab of support.preflight_lab."""
    return preflight_lab


def keep_capture(name: str, text: str) -> None:
    assert name in CAPTURE_NAMES
    text = text.replace(netinfo.node_ip(), DOC_NODE_IP).replace(SHOWN_TOKEN, "<token>")
    CAPTURES.mkdir(parents=True, exist_ok=True)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").splitlines()]
    (CAPTURES / f"{name}.txt").write_text("\n".join(lines).strip("\n") + "\n")


# --- the banner --------------------------------------------------------------------------


@pytest.mark.parametrize("ips", [[], ["192.0.2.10"], ["192.0.2.10", "198.51.100.7"]])
@pytest.mark.parametrize("rollup", ROLLUP_STATES)
def test_banner_for_each_address_count_and_rollup_state(ips, rollup):
    current = {"state": rollup, "message": "" if rollup == "setup_required" else
               f"the {rollup} message", "next_action": "do the next thing"}
    text = banner.render(ips, current, TOKEN, FINGERPRINT)
    assert banner.HEADLINES[rollup] in text
    page = "setup" if rollup in ("setup_required", "failed_action_required") else "status"
    for ip in ips:
        assert f"  http://{ip}:8080/{page}?token={SHOWN_TOKEN}\n" in text
        assert f"  https://{ip}:8443/{page}\n" in text
    if ips:  # the fingerprint on two lines, which joined are the whole of it
        assert FINGERPRINT in "".join(line.strip() for line in text.splitlines())
    else:
        assert "no network address yet" in text and "console's Network entry" in text
        assert "sudo alga-appliance network set" in text and "/etc/netplan" not in text
        assert "http://" not in text and "https://" not in text
    assert f"Setup token: {SHOWN_TOKEN}\n" in text and TOKEN not in text
    assert "sudo alga-appliance console" in text
    assert "Logs: the Logs page, or run  sudo alga-appliance logs appliance" in text
    assert_next_step_is_ours("`sudo alga-appliance logs appliance`")  # runs as written
    if rollup != "setup_required":
        assert f"the {rollup} message" in text and "Next: do the next thing" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    if rollup == "setup_required":
        assert "Ubuntu is installed" in text and "waiting for your input" in text
        assert "Next:" not in text  # the setup URL is the next step, and it is shown
        if ips == ["192.0.2.10"]:
            keep_capture("banner", text)


@pytest.mark.parametrize("rollup", ROLLUP_STATES)
def test_banner_links_with_the_longest_address_and_token_stay_within_78_columns(rollup):
    current = {"state": rollup, "message": "", "next_action": ""}
    text = banner.render(["255.255.255.255"], current, "Z" * 28, FINGERPRINT)
    assert "?token=ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ\n" in text
    assert max(len(line) for line in text.splitlines()) <= banner.WIDTH


def test_banner_says_https_is_off_without_a_certificate():
    text = banner.render(["192.0.2.10"], {"state": "setup_required", "message": "",
                                          "next_action": ""}, TOKEN, None)
    assert f"  http://192.0.2.10:8080/setup?token={SHOWN_TOKEN}\n" in text
    assert "https://" not in text
    assert "HTTPS is off: no usable certificate (sudo alga-appliance ensure-tls)" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_banner_escapes_backslashes_for_agetty():
    text = banner.render([], {"state": "failed_action_required", "message": r"C:\temp \4",
                              "next_action": ""}, TOKEN, FINGERPRINT)
    assert r"C:\\temp \\4" in text  # agetty would expand \4 into an address


def in_namespace(code: str, namespace: str) -> str:
    return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", code],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()


@pytest.fixture
def namespace():
    name = f"alga-banner-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def add_interface(namespace: str, name: str, address: str) -> None:
    """An interface with `address` (a veth pair inside the namespace: this kernel may have
    no dummy driver; the peer stays without an address)."""
    for argv in (["link", "add", name, "type", "veth", "peer", "name", f"p{name}"[:15]],
                 ["addr", "add", address, "dev", name], ["link", "set", name, "up"]):
        subprocess.run(["ip", "-n", namespace, *argv], check=True)


def on_the_guides_node(namespace: str, argv: list[str]) -> list[str]:
    """`argv` run on a node whose one interface has the guide's address: the screens the
    guide shows list the node's addresses, and this machine's may be others or more (a test
    network's veth left by another run)."""
    add_interface(namespace, "ens3", f"{DOC_NODE_IP}/24")
    return ["ip", "netns", "exec", namespace, *argv]


def test_banner_addresses_come_from_the_nodes_own_interfaces(namespace):
    read = "from host.net import addresses; print(','.join(addresses.node_addresses()))"
    assert in_namespace(read, namespace) == ""  # loopback only: no address
    add_interface(namespace, "ens3", "192.0.2.10/24")
    assert in_namespace(read, namespace) == "192.0.2.10"
    add_interface(namespace, "cni0", "10.42.0.1/24")  # k3s's own bridges are not the node's
    add_interface(namespace, "flannel.1", "10.42.0.0/32")
    add_interface(namespace, "ens4", "198.51.100.7/24")
    assert in_namespace(read, namespace) == "192.0.2.10,198.51.100.7"


def test_banner_update_writes_a_private_issue_file_and_reloads_agetty_on_change(
        tmp_path, monkeypatch):
    make_host_root(tmp_path)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AGETTY_LOG", str(tmp_path / "agetty.log"))
    secret = token.ensure_token(tmp_path, owner=os.environ.get("USER", "root"))
    tls.ensure(tmp_path, group=grp.getgrgid(os.getgid()).gr_name)
    first = CliRunner().invoke(cli.main, ["console-banner"])
    assert first.exit_code == 0 and first.output == "console banner updated\n"
    assert secret not in first.output  # the journal keeps this output
    issue = tmp_path / paths.ISSUE_FILE.lstrip("/")
    assert issue.stat().st_mode & 0o777 == 0o600
    assert f"Setup token: {token.for_people(secret)}" in issue.read_text()
    shown = "".join(line.strip() for line in issue.read_text().splitlines())
    assert tls.fingerprint(tls.cert_path(tmp_path).read_bytes()) in shown
    assert banner.HEADLINES["setup_required"] in issue.read_text()
    again = CliRunner().invoke(cli.main, ["console-banner"])
    assert again.output == "console banner unchanged\n"
    assert (tmp_path / "agetty.log").read_text() == "--reload\n"  # only for the change
    state.write(state.INSTALL_STATE, {"status": "running", "current_phase": "k3s",
                                      "updated_at": "2026-11-27T10:00:00Z", "phases": {}},
                tmp_path)
    assert CliRunner().invoke(cli.main, ["console-banner"]).output == "console banner updated\n"
    assert banner.HEADLINES["installing"] in issue.read_text()
    assert (tmp_path / "agetty.log").read_text() == "--reload\n--reload\n"


NOTICE_EXAMPLES = ROOT / "tests/schema_examples/update-notice"


def test_banner_and_menu_show_the_update_notice_with_its_command_on_a_line_of_its_own(
        tmp_path, monkeypatch):
    make_host_root(tmp_path)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AGETTY_LOG", str(tmp_path / "agetty.log"))
    token.ensure_token(tmp_path, owner=os.environ.get("USER", "root"))
    state.write(state.INSTALL_STATE, INSTALLED, tmp_path)
    issue = tmp_path / paths.ISSUE_FILE.lstrip("/")
    assert CliRunner().invoke(cli.main, ["console-banner"]).exit_code == 0
    assert "Update:" not in issue.read_text()  # never checked: no notice
    notice = json.loads((NOTICE_EXAMPLES / "valid-available.json").read_text())
    state.write(state.UPDATE_NOTICE, notice, tmp_path)
    assert CliRunner().invoke(cli.main, ["console-banner"]).output == "console banner updated\n"
    text = issue.read_text()
    lines = text.splitlines()
    assert "Update: Alga 1.0.4 is available on stable." in lines
    assert f"  {notice['command']}" in lines  # whole, as typed
    joined = " ".join(line.strip() for line in lines)
    assert notice["next_step"] in joined  # the status page's words
    assert all(len(line) <= banner.WIDTH for line in lines)
    assert lines[lines.index(f"  {notice['command']}") - 1].endswith("console with:")
    assert banner.now(tmp_path)[-1] == f"  {notice['command']}"  # the menu shows it too
    for up_to_date in ("valid-up-to-date.json", "valid-failed.json"):  # no alarm either
        state.write(state.UPDATE_NOTICE, json.loads((NOTICE_EXAMPLES / up_to_date)
                                                    .read_text()), tmp_path)
        CliRunner().invoke(cli.main, ["console-banner"])
        assert "Update:" not in issue.read_text() and "update check" not in issue.read_text()
    state.UPDATE_NOTICE.path(tmp_path).write_text("{not json")
    assert CliRunner().invoke(cli.main, ["console-banner"]).exit_code == 0
    assert "The update notice file" in issue.read_text()


@pytest.mark.parametrize(("term", "tty", "plain"), [
    ("dumb", "/dev/pts/0", True), ("", "/dev/tty1", True), ("linux", "/dev/tty1", False),
    ("linux", "/dev/ttyS0", True), ("vt100", "/dev/ttyS0", True), ("vt220", "/dev/hvc0", True),
    ("xterm-256color", "/dev/ttyS0", False), ("xterm-256color", "/dev/pts/3", False),
    ("xterm", None, True),
])
def test_plain_mode_is_chosen_for_serial_and_dumb_terminals(term, tty, plain):
    assert app.plain_wanted(term, tty) is plain


# --- the setup fallback in real terminals ------------------------------------------------


def console_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "host", "--root", str(root), "console", *extra]


def console_env(term: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": term, "LANG": "C.UTF-8"}


class Tmux:
    """A real terminal: tmux at 80x24 on a private server, read with capture-pane."""

    def __init__(self, argv: list[str], env: dict):
        self.socket = f"alga-console-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                           if k in ("PYTHONPATH", "PATH", "LANG", paths.ROOT_ENV))
        script = f"export {exports}; {shlex.join(argv)}; echo EXIT=$?; sleep 600"
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "console",
                  f"TERM={env['TERM']} sh -c {shlex.quote(script)}")

    def tmux(self, *argv: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *argv], capture_output=True,
                              text=True, check=True).stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "console", key)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "console", "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "console")

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def console_root(tmp_path, monkeypatch):
    make_host_root(tmp_path, paths.SPOOL_DIR)
    # As on Ubuntu: resolv.conf names systemd-resolved's stub, which forwards to what DHCP gave.
    (tmp_path / "etc/resolv.conf").write_text("nameserver 127.0.0.53\n")
    (tmp_path / "run/systemd/resolve").mkdir(parents=True)
    (tmp_path / "run/systemd/resolve/resolv.conf").write_text("nameserver 192.0.2.53\n")
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def tui():
    opened = []

    def start(root: Path) -> Tmux:
        terminal = Tmux(console_command(root), console_env("xterm-256color"))
        opened.append(terminal)
        terminal.wait_for("Set up here")
        terminal.keys("Enter")  # the menu's first entry has the focus
        terminal.wait_for("Release channel")
        return terminal

    yield start
    for terminal in opened:
        terminal.close()


def spooled_request(root: Path) -> dict | None:
    request_file = spool.spool_file(spool.SETUP, root)
    return json.loads(request_file.read_text()) if request_file.exists() else None


def spooled(root: Path) -> dict | None:
    request = spooled_request(root)
    return request["answers"] if request else None


def passwords_match(root: Path, password: str) -> bool:
    """The spooled request carries the hash of `password`, and never the password."""
    request = spooled_request(root)
    assert password not in json.dumps(request, ensure_ascii=False)
    return hash_checks(request["admin_password_hash"], password)


def without_hash(recorded: bytes) -> bytes:
    """Recorded setup inputs with the admin password hash (checked against the password of
    support.answers) in place of the hash."""
    password_hash = json.loads(recorded)["admin"]["password_hash"]
    assert hash_checks(password_hash, ADMIN_PASSWORD)
    return recorded.replace(password_hash.encode(), b"<hash>")


def default_app_url() -> str:
    return default_answers(netinfo.node_ip())["app_url"]


NEXT = ("Tab", "Tab", "Enter")  # from the first of two choices to Next, and press it
DEFAULTS_SPOOLED = {"channel": "stable", "dns_mode": "system", "ssh_password_login": "no"}


def tui_admin(terminal: Tmux, keys: list[str] = ()) -> str:
    """The admin account's screens: the password twice (masked), `keys` in the multi-line
    field, SSH password login left off. The screen with the keys typed."""
    terminal.wait_for("Admin password: for the console shell")
    terminal.type(ADMIN_PASSWORD)
    terminal.wait_for("> " + "*" * len(ADMIN_PASSWORD))
    terminal.keys("Enter")
    terminal.wait_for("Admin password again")
    terminal.type(ADMIN_PASSWORD)
    terminal.keys("Enter")
    terminal.wait_for("SSH public keys for the admin account")
    for key in keys:
        terminal.type(key)
        terminal.keys("Enter")
    screen = terminal.screen()
    terminal.keys("Tab", "Enter")  # Next
    terminal.wait_for("Allow SSH login with the admin password?")
    terminal.keys(*NEXT)
    return screen


def test_tui_setup_with_defaults(console_root, tui):
    terminal = tui(console_root)
    screen = terminal.screen()
    assert "(X) stable (recommended)" in screen and "nightly - TESTING only" in screen
    assert "Esc: back" in screen and "F10: cancel" in screen
    terminal.keys(*NEXT)
    terminal.wait_for(f"> {default_app_url()}")
    terminal.keys("Enter")
    screen = terminal.wait_for("This network's resolvers: 192.0.2.53")
    assert "(X) this network's resolvers (recommended)" in screen
    terminal.keys(*NEXT)
    terminal.wait_for("HTTP proxy")
    terminal.keys(*NEXT)
    tui_admin(terminal)
    terminal.wait_for("Support overrides")
    terminal.keys(*NEXT)
    screen = terminal.wait_for("Review")
    assert "Channel           stable" in screen and f"App address       {default_app_url()}" \
        in screen
    assert "Admin account     alga-admin, admin password: set" in screen
    assert ADMIN_PASSWORD not in screen
    assert spooled(console_root) is None
    terminal.keys("Enter")  # Start setup has the focus
    terminal.wait_for("Waiting for setup to start")
    assert spooled(console_root) == {**DEFAULTS_SPOOLED, "app_url": default_app_url()}


def test_tui_custom_dns_shows_the_apis_error_then_takes_a_valid_list(console_root, tui):
    terminal = tui(console_root)
    terminal.keys(*NEXT)
    terminal.wait_for("App address")
    terminal.keys("Enter")
    terminal.wait_for("DNS")
    terminal.keys("Down", "Enter")  # custom
    keep_capture("tui-dns", terminal.wait_for("Warning: If your network uses Active"))
    terminal.keys("Tab", "Enter")  # Next: the servers question
    terminal.wait_for("DNS servers, separated by commas")
    terminal.type("8.8.8.999")
    terminal.keys("Enter")
    expected = api_error({"dns_mode": "custom", "dns_servers": "8.8.8.999"}, "dns_servers")
    terminal.wait_for(f"Error: {expected}")
    terminal.keys(*["BSpace"] * 9)
    terminal.type("8.8.8.8,8.8.4.4")
    terminal.keys("Enter")
    terminal.wait_for("HTTP proxy")
    terminal.keys(*NEXT)
    tui_admin(terminal)
    terminal.wait_for("Support overrides")
    terminal.keys(*NEXT)
    assert "custom servers: 8.8.8.8, 8.8.4.4" in terminal.wait_for("Review")


def test_tui_proxy_is_asked_and_its_password_hidden_in_the_review(console_root, tui):
    terminal = tui(console_root)
    terminal.keys(*NEXT)
    terminal.keys("Enter")
    terminal.wait_for("This network's resolvers")
    terminal.keys(*NEXT)
    terminal.wait_for("HTTP proxy")
    terminal.keys("Down", "Enter", "Tab", "Enter")  # yes, Next
    terminal.wait_for("Proxy URL")
    terminal.type("http://proxy.corp:3128")
    terminal.keys("Enter")
    terminal.wait_for("Proxy user")
    terminal.type("ops")
    terminal.keys("Enter")
    terminal.wait_for("what you type is not shown")
    terminal.type(TUI_PASSWORD)
    screen = terminal.wait_for("> " + "*" * len(TUI_PASSWORD))
    assert "s3cret" not in screen
    terminal.keys("Enter")
    terminal.wait_for("Also bypass the proxy")
    terminal.type("corp.example")
    terminal.keys("Enter")
    tui_admin(terminal)
    terminal.wait_for("Support overrides")
    terminal.keys(*NEXT)
    screen = terminal.wait_for("Review")
    assert "http://proxy.corp:3128 as ops (password hidden)" in screen
    assert "s3cret" not in screen
    # Where releases will come from, as the web review says it (nothing overrides it here).
    assert "Release source    oci://ghcr.io/nine-minds/alga-appliance-release (the" in screen
    assert "│                   built-in default)" in screen, screen
    terminal.keys("Enter")
    terminal.wait_for("Waiting for setup to start")
    assert spooled(console_root)["proxy_url"] == "http://proxy.corp:3128"
    assert spooled(console_root)["proxy_user"] == "ops"
    assert spooled(console_root)["proxy_password"] == TUI_PASSWORD  # as typed
    assert spooled(console_root)["no_proxy"] == "corp.example"


TUI_PASSWORD = "s3cret @:#/%40 ü"


def test_tui_back_and_cancel_leave_nothing_behind(console_root, tui):
    terminal = tui(console_root)
    terminal.keys(*NEXT)
    terminal.wait_for("App address")
    terminal.keys("Escape")
    terminal.wait_for("Release channel")
    terminal.keys(*NEXT)
    terminal.wait_for("App address")
    terminal.keys("Tab", "Tab", "Enter")  # the Back button
    terminal.wait_for("Release channel")
    terminal.keys("F10")
    terminal.wait_for("Setup cancelled: nothing was started.")  # back at the menu
    assert spooled(console_root) is None


def test_tui_progress_screen_follows_a_real_preflight_failure(lab, tui, monkeypatch):
    make_host_root(lab.root, paths.SPOOL_DIR)
    monkeypatch.setenv(paths.ROOT_ENV, str(lab.root))
    lab.configure(resolver=free_loopback_address())  # no resolver answers there
    terminal = tui(lab.root)
    terminal.keys(*NEXT, "Enter")
    terminal.wait_for("This network's resolvers")
    terminal.keys(*NEXT)
    terminal.wait_for("HTTP proxy")
    terminal.keys(*NEXT)
    tui_admin(terminal)
    terminal.wait_for("Support overrides")
    terminal.keys(*NEXT)
    terminal.wait_for("Review")
    terminal.keys("Enter")
    terminal.wait_for("Waiting for setup to start")
    accept_setup(monkeypatch, lab.root)
    assert engine.run_phase("preflight", lab.root) == engine.EXIT_FAILED
    screen = terminal.wait_for("FAILED: Preflight checks [dns]")
    assert "[!] Preflight checks" in screen
    assert "Nothing else on this machine has been changed" in screen
    assert "Retry:           safe" in screen
    terminal.keys("NPage")  # the root cause follows the failure, before the checklist
    terminal.wait_for("Root cause (DNS): ")
    terminal.keys("Enter")
    terminal.wait_for(banner.HEADLINES["failed_action_required"])  # back at the menu


def accept_setup(monkeypatch, root: Path) -> None:
    """What the .path unit does with the spooled request (systemctl is the stand-in)."""
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(root / "systemctl.log"))
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code == 0 and "started" in result.output, result.output


def api_error(answers: dict, field: str) -> str:
    try:
        parse_setup_inputs(answers, netinfo.node_ip())
    except InputErrors as exc:
        return next(e.message for e in exc.errors if e.field == field)
    raise AssertionError(f"{answers} is valid")


# --- plain mode through a pty --------------------------------------------------------------


def plain(root: Path, term: str = "vt100") -> pexpect.spawn:
    """The console in plain mode: chosen by itself on a dumb terminal, else by --plain."""
    command = console_command(root, *([] if term == "dumb" else ["--plain"]))
    child = pexpect.spawn(command[0], command[1:], env=console_env(term), encoding="utf-8",
                          timeout=15, dimensions=(24, 80))
    child.logfile_read = io.StringIO()  # the whole transcript, typed replies echoed
    choose(child, "Set up here")
    child.expect_exact("Release channel")
    return child


def choose(child: pexpect.spawn, label: str) -> None:
    """Pick the plain menu's entry called `label`, by its number."""
    child.expect(r"Choose 1-\d \(Enter shows this again\): ")
    [number] = [line.split(".")[0].strip() for line in child.before.splitlines()
                if line.strip().endswith(f". {label}")]
    child.sendline(number)


ADMIN_REPLIES = [ADMIN_PASSWORD, ADMIN_PASSWORD, "", ""]  # twice; no keys; SSH login off


def replies_for(answers: dict) -> list[str]:
    """The replies that give `answers` (and the admin password of support.answers), in the
    order the console asks."""
    replies = [answers.get("channel", ""), answers.get("app_url", ""),
               answers.get("dns_mode", "")]
    if answers.get("dns_mode") == "custom":
        replies.append(answers["dns_servers"])
    replies.append("yes" if "proxy_url" in answers else "no")
    if "proxy_url" in answers:
        replies += [answers["proxy_url"], answers.get("proxy_user", "")]
        if answers.get("proxy_user"):
            replies.append(answers.get("proxy_password", ""))
        replies.append(answers.get("no_proxy", ""))
    replies += ADMIN_REPLIES
    overrides = "release_source" in answers or "branch" in answers
    replies.append("yes" if overrides else "no")
    if overrides:
        replies += [answers.get("release_source", ""), answers.get("branch", "")]
    return replies


def answer_all(child: pexpect.spawn, replies: list[str]) -> str:
    """Send each reply at its prompt; returns everything the console printed."""
    for reply in replies:
        child.expect(r"\]: ")
        child.sendline(reply)
    return child.before or ""


def assert_plain_text(transcript: str) -> None:
    assert "\x1b" not in transcript  # no escape sequences at all
    assert transcript.isascii()


def test_plain_setup_with_defaults(console_root):
    child = plain(console_root, term="xterm")
    answer_all(child, replies_for({}))
    child.expect_exact("Start setup? yes/back [yes]: ")
    review = child.before
    assert f"App address       {default_app_url()}" in review
    assert "this network's resolvers (192.0.2.53)" in review
    child.sendline("")
    child.expect_exact("Waiting for setup to start...")
    assert spooled(console_root) == {**DEFAULTS_SPOOLED, "app_url": default_app_url()}
    child.terminate(force=True)


def test_plain_is_chosen_by_itself_on_a_dumb_terminal_and_prints_no_escapes(console_root):
    child = plain(console_root, term="dumb")
    transcript = child.before
    child.sendline("nightly")
    child.expect_exact("Warning: Nightly builds are untested.")
    transcript += child.before + child.after
    child.sendline("cancel")
    child.expect_exact("Setup cancelled: nothing was started.")  # and the menu again
    transcript += child.before
    child.expect_exact("Choose 1-")
    transcript += child.before
    assert_plain_text(transcript)
    assert "Cancelled: nothing was started." in transcript
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and spooled(console_root) is None


def test_plain_custom_dns_error_then_valid(console_root):
    child = plain(console_root)
    answer_all(child, ["", "", "custom"])
    child.expect_exact("Warning: If your network uses Active Directory-integrated")
    child.expect(r"\]: ")
    child.sendline("8.8.8.999")
    message = api_error({"dns_mode": "custom", "dns_servers": "8.8.8.999"}, "dns_servers")
    child.expect_exact(f"Error: {message}")
    child.expect(r"\]: ")
    child.sendline("8.8.8.8,8.8.4.4")
    answer_all(child, ["no", *ADMIN_REPLIES, "no"])
    child.expect_exact("Start setup? yes/back [yes]: ")
    assert "custom servers: 8.8.8.8, 8.8.4.4" in child.before
    assert_plain_text(child.before)
    transcript = child.logfile_read.getvalue()  # from the setup on, after the menu
    keep_capture("plain-custom-dns", transcript[transcript.index("Alga appliance setup"):])
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    assert spooled(console_root)["dns_servers"] == "8.8.8.8,8.8.4.4"
    child.terminate(force=True)


def test_plain_proxy_and_back_navigation(console_root):
    child = plain(console_root)
    answer_all(child, ["nightly", "back"])  # back from the app address to the channel
    child.expect_exact("Release channel")
    answer_all(child, ["stable", "psa.example.com", "system", "yes",
                       "http://proxy.corp:3128", "", "corp.example", *ADMIN_REPLIES, "no"])
    child.expect_exact("Start setup? yes/back [yes]: ")
    assert "nightly" not in child.before.split("Review")[1]
    child.sendline("back")  # from the review, through the questions again
    child.expect_exact("Release channel")
    answer_all(child, [""] * 12)  # the passwords too: Enter keeps them as typed before
    child.expect_exact("Start setup?")
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    assert spooled(console_root) == {**DEFAULTS_SPOOLED, "app_url": "psa.example.com",
                                     "proxy_url": "http://proxy.corp:3128",
                                     "no_proxy": "corp.example"}
    assert passwords_match(console_root, ADMIN_PASSWORD)
    child.terminate(force=True)


PLAIN_PASSWORDS = ["p@ss:w/rd #1 %40", " spaced out ", "Pässwörd€密码", "back up:cancel"]


def enter_proxy_password(console_root, password: str):
    """The plain console up to the review, with a proxy, its user and `password` typed."""
    child = plain(console_root)
    answer_all(child, ["", "", "", "yes", "http://proxy.corp:3128", "svc@corp"])
    child.expect_exact("what you type is not shown")
    child.expect_exact("[]: ")
    child.sendline(password)
    answer_all(child, ["", *ADMIN_REPLIES, "no"])
    child.expect_exact("Start setup? yes/back [yes]: ")
    return child


@pytest.mark.parametrize("password", PLAIN_PASSWORDS)
def test_plain_proxy_password_is_read_without_echo_and_kept_as_typed(console_root, password):
    child = enter_proxy_password(console_root, password)
    assert "Proxy             http://proxy.corp:3128 as svc@corp (password hidden)" in (
        child.before)
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    assert spooled(console_root)["proxy_password"] == password
    assert password.strip() not in child.logfile_read.getvalue()  # never echoed
    child.terminate(force=True)


@pytest.mark.parametrize("password", ["cancel", "back", "QUIT"])
def test_plain_a_proxy_password_that_is_a_command_word_is_a_password(console_root, password):
    """Words that are commands at other prompts are taken as typed at the password's."""
    child = enter_proxy_password(console_root, password)
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    assert spooled(console_root)["proxy_password"] == password
    assert f"]: {password}" not in child.logfile_read.getvalue()  # never echoed
    child.terminate(force=True)


def test_plain_keeps_the_stored_proxy_password_on_enter(console_root):
    stored = parse_with_admin({"proxy_url": "http://proxy.corp:3128", "proxy_user": "svc",
                               "proxy_password": "p@ss:w/rd #1"}, netinfo.node_ip())
    state.write(state.SETUP_INPUTS, stored, console_root)
    child = plain(console_root)
    answer_all(child, ["", "", "", "", "", ""])  # all as before, through the proxy user
    child.expect_exact("[stored]: ")
    child.sendline("")
    answer_all(child, [""])  # no_proxy
    child.expect_exact("[stored]: ")  # the admin password too: no confirmation is asked
    child.sendline("")
    answer_all(child, ["", "", ""])
    child.expect_exact("Start setup? yes/back [yes]: ")
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    answers = spooled(console_root)
    assert answers["proxy_user"] == "svc" and "proxy_password" not in answers
    assert parse_setup_inputs(answers, netinfo.node_ip(), stored) == stored
    assert "p@ss" not in child.logfile_read.getvalue()
    child.terminate(force=True)


# --- the admin's credentials -------------------------------------------------------------


@pytest.fixture
def public_keys(tmp_path) -> list[tuple[str, str]]:
    return made_public_keys(tmp_path)


def up_to_the_admin_password(root: Path) -> pexpect.spawn:
    child = plain(root)
    answer_all(child, ["", "", "", "no"])
    child.expect_exact("Admin password: for the console shell and SSH login")
    return child


def test_plain_admin_password_is_asked_twice_without_echo_and_refused_when_weak_or_different(
        console_root):
    child = up_to_the_admin_password(console_root)
    child.expect_exact(f"({PASSWORD_RULE}; what you type is not shown)")  # before typing
    answer_all(child, ["short pw 1"])
    child.expect_exact("Error: is too short: use at least 12 characters")
    child.expect_exact(f"({PASSWORD_RULE}; what you type is not shown)")  # asked again
    answer_all(child, ["my alga-admin login"])
    child.expect_exact("Error: contains the account's name (alga-admin)")
    answer_all(child, [ADMIN_PASSWORD])
    child.expect_exact("Admin password again")
    answer_all(child, [ADMIN_PASSWORD + "x"])
    child.expect_exact("Error: does not match the password: type the same password in both")
    child.expect_exact("Admin password: for the console shell")  # both again, from the first
    answer_all(child, [ADMIN_PASSWORD, ADMIN_PASSWORD, "", "", "no"])
    child.expect_exact("Start setup? yes/back [yes]: ")
    assert "Admin account     alga-admin, admin password: set" in child.before
    assert "SSH keys          none" in child.before
    assert "SSH password      off (keys only)" in child.before
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    assert passwords_match(console_root, ADMIN_PASSWORD)
    transcript = child.logfile_read.getvalue()
    for typed in (ADMIN_PASSWORD, "short pw 1", "alga-admin login"):
        assert typed not in transcript  # never echoed, never repeated
    assert_plain_text(transcript)
    child.terminate(force=True)


def test_plain_ssh_keys_one_per_line_a_bad_one_asked_again_and_fingerprints_reviewed(
        console_root, public_keys):
    (first, first_listed), (second, second_listed) = public_keys
    child = up_to_the_admin_password(console_root)
    answer_all(child, [ADMIN_PASSWORD, ADMIN_PASSWORD])
    child.expect_exact("SSH public keys for the admin account (optional)")
    answer_all(child, [first])
    child.expect_exact("2 (empty line ends)> ")
    child.sendline("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNvcnJ1cHQ= cut@short")
    child.expect_exact("3 (empty line ends)> ")
    child.sendline("")
    child.expect_exact("Error: key 2 is cut short: copy the whole line from the .pub file")
    child.expect_exact("SSH public keys for the admin account (optional)")  # asked again
    answer_all(child, [first])
    for prompt, line in (("2 (empty line ends)> ", second), ("3 (empty line ends)> ", "")):
        child.expect_exact(prompt)
        child.sendline(line)
    answer_all(child, ["yes"])  # SSH password login
    child.expect_exact("Warning: SSH will accept the admin password from anywhere")
    answer_all(child, ["no"])
    child.expect_exact("Start setup? yes/back [yes]: ")
    review = child.before
    assert f"SSH keys          {first_listed}" in review
    assert f"                  {second_listed}" in review
    assert "SSH password      allowed (keys and password)" in review
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    answers = spooled(console_root)
    assert answers["ssh_authorized_keys"] == f"{first}\n{second}"
    assert answers["ssh_password_login"] == "yes"
    child.terminate(force=True)


def test_tui_admin_password_masked_a_mismatch_asked_again_and_keys_in_a_multiline_field(
        console_root, tui, public_keys):
    (first, first_listed), (second, second_listed) = public_keys
    terminal = tui(console_root)
    terminal.keys(*NEXT)
    terminal.keys("Enter")
    terminal.wait_for("This network's resolvers")
    terminal.keys(*NEXT)
    terminal.wait_for("HTTP proxy")
    terminal.keys(*NEXT)
    screen = terminal.wait_for("Admin password: for the console shell")
    assert "at least 12 characters" in screen  # the rule, before anything is typed
    terminal.type(ADMIN_PASSWORD)
    terminal.keys("Enter")
    terminal.wait_for("Admin password again")
    terminal.type("not the same password")
    terminal.keys("Enter")
    screen = terminal.wait_for("Error: does not match the password")
    assert "Admin password: for the console shell" in screen  # from the first, empty
    assert "Admin password again" not in screen and "> *" not in screen  # empty again
    screen = tui_admin(terminal, keys=[first, second])
    assert ADMIN_PASSWORD not in screen and "not the same" not in screen
    terminal.wait_for("Support overrides")
    terminal.keys(*NEXT)
    screen = terminal.wait_for("Review")
    assert "admin password: set" in screen
    for listed in (first_listed, second_listed):  # 80 columns: the fingerprint fits
        assert listed.split()[1] in screen
    terminal.keys("Enter")
    terminal.wait_for("Waiting for setup to start")
    assert spooled(console_root)["ssh_authorized_keys"] == f"{first}\n{second}"
    assert passwords_match(console_root, ADMIN_PASSWORD)


def test_plain_progress_follows_real_preflight_runs_to_failure(lab, monkeypatch):
    make_host_root(lab.root, paths.SPOOL_DIR)
    monkeypatch.setenv(paths.ROOT_ENV, str(lab.root))
    lab.configure(resolver=free_loopback_address())
    child = plain(lab.root)
    answer_all(child, replies_for({}))
    child.expect_exact("Start setup?")
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    accept_setup(monkeypatch, lab.root)
    assert engine.run_phase("preflight", lab.root) == engine.EXIT_FAILED
    child.expect_exact("FAILED: Preflight checks [dns]")
    child.expect_exact(banner.HEADLINES["failed_action_required"])  # the menu, after it
    transcript = child.before
    assert "Nothing else on this machine has been changed" in transcript
    assert "Retry:           safe" in transcript
    assert "FAIL dns.github.com" in transcript
    # The root cause first, its fix said once; the failed checks carry none of their own.
    report = state.read(state.PREFLIGHT_REPORT, lab.root)
    [root_cause] = report["causes"]
    assert f"Root cause (DNS): {root_cause['summary']}" in transcript
    assert transcript.index("Root cause (DNS)") < transcript.index("Preflight checks:")
    assert transcript.count(f"Fix: {root_cause['remediation']}") >= 1
    assert "       fix:" not in transcript
    assert_plain_text(transcript)
    child.expect_exact("1. Set up here")  # to set up again
    child.terminate(force=True)


def test_console_follows_a_setup_already_running_instead_of_starting_another(console_root):
    spool.submit(spool.SETUP, {**SPOOLED_ADMIN, "answers": {},
                               "submitted_at": "2026-11-27T10:00:00Z"},
                 console_root)  # from the web
    child = pexpect.spawn(sys.executable, console_command(console_root, "--plain")[1:],
                          env=console_env("vt100"), encoding="utf-8", timeout=15)
    choose(child, "Follow setup progress")
    child.expect_exact("Setup is already under way (a setup request is already waiting")
    child.expect_exact("Waiting for setup to start...")
    running = {"status": "running", "current_phase": "k3s",
               "updated_at": "2026-11-27T10:00:00Z", "phases": {"k3s": {
                   "state": "running", "started_at": "2026-11-27T10:00:00Z",
                   "finished_at": None, "last_action": "starting k3s", "failure": None}},
               "owner": runlock.owner()}  # a live process (this one) runs it
    state.write(state.INSTALL_STATE, running, console_root)
    child.expect_exact("[>] Install k3s - starting k3s")
    assert "Release channel" not in child.before
    child.terminate(force=True)


def test_plain_console_offers_resume_for_an_interrupted_setup(console_root):
    interrupted_in_flux(console_root)
    child = pexpect.spawn(sys.executable, console_command(console_root, "--plain")[1:],
                          env=console_env("vt100"), encoding="utf-8", timeout=15)
    choose(child, "Set up here")
    child.expect_exact("FAILED: Install Flux [flux]")
    child.expect_exact("Interrupted:     Install Flux, last progress at 2026-11-27T10:00:00Z")
    child.expect_exact("Resume setup? yes/no [yes]: ")
    child.sendline("")
    child.expect_exact("Setup resumed.")
    spooled = json.loads(spool.spool_file(spool.SETUP, console_root).read_text())
    assert spooled["resume"] is True
    assert "Release channel" not in child.before
    child.terminate(force=True)


def interrupted_in_flux(root: Path) -> None:
    """The flux phase's process is gone (killed, or its start timeout)."""
    process = subprocess.Popen(["sleep", "60"])
    owner = runlock.owner(process.pid)
    process.kill()
    process.wait()
    state.write(state.SETUP_INPUTS, parse_with_admin({}, netinfo.node_ip()), root)
    state.write(state.INSTALL_STATE, {
        "status": "running", "current_phase": "flux", "updated_at": "2026-11-27T10:00:00Z",
        "owner": owner, "phases": {"flux": {
            "state": "running", "started_at": "2026-11-27T10:00:00Z", "finished_at": None,
            "last_action": "applying the Flux install", "failure": None}}}, root)


def test_tui_offers_resume_for_an_interrupted_setup(console_root):
    interrupted_in_flux(console_root)
    terminal = Tmux(console_command(console_root), console_env("xterm-256color"))
    try:
        terminal.wait_for("Set up here")
        terminal.keys("Enter")
        screen = terminal.wait_for("Setup was interrupted")
        assert "FAILED: Install Flux [flux]" in screen and "Resume" in screen
        terminal.keys("Enter")  # Resume has the focus
        terminal.wait_for("Setup progress")
        assert json.loads(spool.spool_file(spool.SETUP, console_root).read_text())["resume"]
    finally:
        terminal.close()


def test_console_after_setup_succeeded_offers_status_not_setup(console_root):
    state.write(state.INSTALL_STATE, INSTALLED, console_root)
    child = pexpect.spawn(sys.executable, console_command(console_root, "--plain")[1:],
                          env=console_env("vt100"), encoding="utf-8", timeout=15)
    child.expect_exact("Choose 1-")
    assert "1. Status" in child.before and "Set up here" not in child.before
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not spool.spool_file(spool.SETUP, console_root).exists()


PINNED_SOURCE = ("oci://registry.msp.example:5000/alga/alga-appliance-release@sha256:"
                 + "ab" * 32)
RELEASE_SOURCE_HINT = ("(oci://<registry>/<repository>[:<version>|@sha256:<digest>] or a git "
                       "repository URL)")


def test_plain_release_source_override_round_trips(console_root):
    """Support gives a pinned OCI release: asked as the release source, shown in the review
    and spooled as typed."""
    child = plain(console_root)
    answer_all(child, ["", "", "", "no", *ADMIN_REPLIES, "yes"])
    child.expect_exact(f"Release source\r\n  {RELEASE_SOURCE_HINT}\r\n")
    answer_all(child, [PINNED_SOURCE])
    child.expect_exact("Branch (git sources only)")
    answer_all(child, [""])
    child.expect_exact("Start setup? yes/back [yes]: ")
    assert f"release_source: {PINNED_SOURCE}" in child.before
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    assert spooled(console_root)["release_source"] == PINNED_SOURCE
    child.terminate(force=True)


def test_tui_asks_for_the_release_source_with_its_hint(console_root, tui):
    terminal = tui(console_root)
    terminal.keys(*NEXT)
    terminal.keys("Enter")
    terminal.wait_for("This network's resolvers")
    terminal.keys(*NEXT)
    terminal.wait_for("HTTP proxy")
    terminal.keys(*NEXT)
    tui_admin(terminal)
    terminal.wait_for("Support overrides")
    terminal.keys("Down", "Enter", "Tab", "Enter")  # yes, Next
    screen = terminal.wait_for("Release source")
    assert "[:<version>|@sha256:<digest>] or a git" in screen  # the hint, wrapped
    assert "│ repository URL " in screen
    terminal.type(PINNED_SOURCE)
    terminal.keys("Enter")
    terminal.wait_for("Branch (git sources only)")
    terminal.keys("Enter")
    terminal.wait_for("Review")
    terminal.keys("Enter")
    terminal.wait_for("Waiting for setup to start")
    assert spooled(console_root)["release_source"] == PINNED_SOURCE


# --- parity with the web API -------------------------------------------------------------

VALID_SETS = [
    {},
    {"channel": "nightly", "app_url": "psa.example.com", "dns_mode": "custom",
     "dns_servers": "1.1.1.1, 9.9.9.9"},
    {"app_url": "https://psa.example.com", "proxy_url": "http://proxy.corp:3128",
     "proxy_user": "u@corp", "proxy_password": "p@ss:w/rd #1 %40 ü",
     "no_proxy": "corp.example, 10.0.0.0/8"},
    {"release_source": "https://github.com/example/alga-psa", "branch": "support/fix-1"},
    {"release_source": PINNED_SOURCE},
]
INVALID_SETS = [
    ("app_url", {"app_url": "ftp://psa.example.com"}),
    ("dns_servers", {"dns_mode": "custom", "dns_servers": "300.1.1.1"}),
    ("proxy_url", {"proxy_url": "socks5://proxy.corp:1080"}),
    ("proxy_url", {"proxy_url": "http://u:p#w@proxy.corp:3128"}),
    ("proxy_user", {"proxy_url": "http://proxy.corp:3128", "proxy_user": "a:b",
                    "proxy_password": "pw"}),
    ("branch", {"branch": "a..b"}),
    ("release_source", {"release_source": "oci://ghcr.io/Upper"}),
]


@pytest.fixture
def web(console_root):
    secret = token.ensure_token(console_root, owner=os.environ.get("USER", "root"))
    with serve_wsgi(make_app(console_root)) as url:
        yield url, {"Authorization": f"Bearer {secret}"}


def recorded_inputs(monkeypatch, root: Path) -> bytes:
    accept_setup(monkeypatch, root)
    written = state.SETUP_INPUTS.path(root)
    data = written.read_bytes()
    written.unlink()
    # The run it queued is owned by this (live) process, so setup counts as starting: as if
    # it had finished, only the inputs it recorded matter here.
    state.INSTALL_STATE.path(root).unlink()
    return data


@pytest.mark.parametrize("answers", VALID_SETS)
def test_web_and_console_write_byte_identical_setup_inputs(console_root, web, monkeypatch,
                                                           answers):
    url, auth = web
    web_answers = with_admin({"channel": "stable", "app_url": default_app_url(),
                              "dns_mode": "system", **answers})
    assert requests.post(f"{url}/api/setup", json=web_answers, headers=auth,
                         timeout=5).status_code == 202
    from_web = recorded_inputs(monkeypatch, console_root)
    child = plain(console_root)
    answer_all(child, replies_for(answers))
    child.expect_exact("Start setup?")
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    child.terminate(force=True)
    from_console = recorded_inputs(monkeypatch, console_root)
    # Each hash has its own random salt: each must check against the password, and all
    # else is the same to the byte.
    assert without_hash(from_console) == without_hash(from_web)


@pytest.mark.parametrize(("field", "answers"), INVALID_SETS)
def test_web_and_console_give_the_same_error_messages(console_root, web, field, answers):
    url, auth = web
    response = requests.post(f"{url}/api/setup/validate", json=answers, headers=auth,
                             timeout=5)
    assert response.status_code == 422
    [message] = [f["message"] for f in response.json()["fields"] if f["field"] == field]
    child = plain(console_root)
    replies = replies_for(answers)
    invalid_at = replies.index(answers[field])
    answer_all(child, replies[:invalid_at + 1])
    child.expect_exact(f"Error: {message}\r\n")
    child.sendline("cancel")
    child.expect_exact("Setup cancelled: nothing was started.")
    child.terminate(force=True)


def test_console_while_an_update_runs_names_the_update(console_root):
    """The one busy rule (host/core/busy.py): the console asks it as the web does (setup
    failed, so the menu offers it again, while an update runs)."""
    interrupted_in_flux(console_root)
    release = {"source": "git", "channel": "stable", "release_version": "1.0",
               "app_version": "1.0", "repo_branch": "release/1.0.0"}
    state.write(state.UPDATE_HISTORY, {"entries": [{
        "id": "20261201T095800Z-0a1b2c3d", "request_id": None, "action": "apply",
        "who": "cli", "channel": "stable", "started_at": "2026-12-01T09:58:00Z",
        "finished_at": None, "result": "running", "step": "waiting for Flux", "from": release,
        "to": None, "changes": None, "duration_s": None, "failure": None}]}, console_root)
    child = pexpect.spawn(sys.executable, console_command(console_root, "--plain")[1:],
                          env=console_env("vt100"), encoding="utf-8", timeout=15)
    choose(child, "Set up here")
    child.expect_exact("Setup cannot start from here: an update to stable is running "
                       "(waiting for Flux) since 2026-12-01T09:58:00Z")
    child.expect_exact("Choose 1-")  # back at the menu
    child.terminate(force=True)
    assert not spool.spool_file(spool.SETUP, console_root).exists()


def test_plain_console_shows_why_the_appliance_refused_its_request_and_stops(console_root,
                                                                             monkeypatch):
    """The busy rule is checked again at acceptance: an update that started between the
    console's submission and the .path unit taking the request up refuses it."""
    child = plain(console_root)
    answer_all(child, replies_for({}))
    child.expect_exact("Start setup?")
    child.sendline("yes")
    child.expect_exact("Waiting for setup to start...")
    state.write(state.INSTALL_STATE, INSTALLED, console_root)
    monkeypatch.setenv(paths.ROOT_ENV, str(console_root))
    result = CliRunner().invoke(cli.main, ["accept-setup"])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    child.expect_exact("Setup was not started: the setup request was not taken up: ")
    child.expect_exact("Choose 1-")  # back at the menu
    assert "setup has already completed" in " ".join((child.before or "").split()), child.before
    child.terminate(force=True)
    assert not spool.spool_file(spool.SETUP, console_root).exists()


def running_k3s_since(root: Path, seconds: int) -> None:
    """Setup as it runs k3s, started `seconds` ago, after preflight (50 s) and DNS (10 s),
    owned by this (live) process."""
    now = datetime.datetime.now(datetime.UTC)

    def at(before: int) -> str:
        return state.timestamp(now - datetime.timedelta(seconds=before))

    def record(phase_state, started, finished, action=None):
        return {"state": phase_state, "started_at": at(started),
                "finished_at": None if finished is None else at(finished),
                "last_action": action, "failure": None}
    state.write(state.INSTALL_STATE, {
        "status": "running", "current_phase": "k3s", "updated_at": at(0), "request_id": None,
        "owner": runlock.owner(), "phases": {
            "preflight": record("succeeded", seconds + 60, seconds + 10),
            "dns": record("succeeded", seconds + 10, seconds),
            "k3s": record("running", seconds, None, "waiting for the node")}}, root)


def late_setup_request(root: Path) -> None:
    """A setup request from the web that has waited 31 s (its file's time set back)."""
    spool.submit(spool.SETUP, {**SPOOLED_ADMIN, "answers": {},
                               "submitted_at": "2026-11-27T10:00:00Z"}, root)
    request = spool.spool_file(spool.SETUP, root)
    landed = request.stat().st_mtime - spool.PICKUP_SECONDS - 1
    os.utime(request, (landed, landed))


def test_plain_progress_says_a_request_is_late_then_each_steps_time_without_ticking(
        console_root):
    late_setup_request(console_root)
    child = pexpect.spawn(sys.executable, console_command(console_root, "--plain")[1:],
                          env=console_env("vt100"), encoding="utf-8", timeout=15)
    choose(child, "Follow setup progress")
    child.expect_exact(spool.not_picked_up(spool.SETUP))
    assert "sudo alga-appliance accept-setup" in spool.not_picked_up(spool.SETUP)
    spool.take(spool.SETUP, console_root)  # picked up: the run starts, k3s 100 s in
    running_k3s_since(console_root, 100)
    # 160 s elapsed, 1,280 s left: 20 s from either's next whole minute.
    child.expect_exact("Setup: running (step 3 of 9, 2 min elapsed, about 21 min left)")
    child.expect_exact("[x] Preflight checks (took 50 s)")
    child.expect_exact("[x] DNS for k3s (took 10 s)")
    started = state.read(state.INSTALL_STATE, console_root)["phases"]["k3s"]["started_at"]
    child.expect_exact(f"[>] Install k3s - waiting for the node (since {started[11:19]} UTC, "
                       "usually 4 min)")
    # Three more polls: the times do not tick, so a serial console gets no new line.
    child.expect(pexpect.TIMEOUT, timeout=3 * console_progress.POLL_SECONDS + 0.5)
    assert "step 3 of 9" not in child.before and "[>] Install k3s" not in child.before
    assert_plain_text(child.before)
    child.terminate(force=True)


def test_tui_progress_shows_step_n_of_m_and_each_steps_time(console_root):
    running_k3s_since(console_root, 100)
    terminal = Tmux(console_command(console_root), console_env("xterm-256color"))
    try:
        terminal.wait_for("Follow setup progress")
        terminal.keys("Enter")
        screen = terminal.wait_for("(step 3 of 9, 2 min elapsed, about 21 min left)")
        assert "[x] Preflight checks (took 50 s)" in screen
        assert "usually 4 min)" in screen
    finally:
        terminal.close()
