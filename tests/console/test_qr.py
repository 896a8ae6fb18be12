"""The setup link's QR code on a terminal (issue 20): what `token show` draws is read back
by a real decoder (zbarimg, from Debian's zbar-tools) as exactly the link, and the code
fits an 80x24 console."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.base import make_host_root

from host.console import banner, qr
from host.core import paths, token
from host.net import addresses

# What each half block shows, as (upper module, lower module), light being True.
MODULES = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
SCALE = 4  # pixels a module
MARGIN = 6  # modules of the screen's dark background around the code


def screen_image(lines: list[str], path: Path) -> Path:
    """The lines as a light-on-dark console shows them, written as a PGM image."""
    rows = [[MODULES[c][half] for c in line] for line in lines for half in (0, 1)]
    width = len(rows[0]) + 2 * MARGIN
    dark = [[False] * width] * MARGIN
    rows = dark + [[False] * MARGIN + row + [False] * MARGIN for row in rows] + dark
    pixels = b"".join(bytes(255 if light else 0 for light in row for _ in range(SCALE)) * SCALE
                      for row in rows)
    path.write_bytes(b"P5\n%d %d\n255\n" % (width * SCALE, len(rows) * SCALE) + pixels)
    return path


def decoded(lines: list[str], directory: Path) -> str:
    """What zbarimg reads in the drawn lines (it must be installed: ci/setup.sh --test)."""
    image = screen_image(lines, directory / "screen.pgm")
    run = subprocess.run(["zbarimg", "--raw", "--quiet", "--nodbus", str(image)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"zbarimg read no code: {run.stderr}"
    return run.stdout.removesuffix("\n")


@settings(max_examples=15, deadline=None)
@given(ip=st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
       secret=st.text(token.ALPHABET, min_size=28, max_size=28),
       page=st.sampled_from(["setup", "status"]))
def test_the_drawn_code_decodes_to_exactly_the_link(tmp_path_factory, ip, secret, page):
    link = banner.link(ip, page, secret)
    lines = qr.terminal_lines(link)
    assert decoded(lines, tmp_path_factory.mktemp("qr")) == link


def test_the_longest_link_fits_an_80x24_console_beside_the_token():
    link = banner.link("255.255.255.255", "status", "Z" * 28)
    assert len(link) == 75  # "status" is the longer page name
    lines = qr.terminal_lines(link)
    assert len(lines) <= 19 and {len(line) for line in lines} == {37}
    assert set("".join(lines)) <= set(MODULES)


@pytest.mark.parametrize(("encoding", "drawn"), [
    ("utf-8", True), ("UTF-8", True), ("utf8", True), ("ascii", False), ("latin-1", False),
    ("ANSI_X3.4-1968", False), (None, False), ("no-such-encoding", False)])
def test_only_a_utf8_terminal_draws_the_code(encoding, drawn):
    assert qr.can_draw(encoding) is drawn


def token_show(root: Path, encoding: str) -> subprocess.CompletedProcess:
    env = {**os.environ, paths.ROOT_ENV: str(root), "PYTHONIOENCODING": encoding}
    return subprocess.run([sys.executable, "-m", "host", "token", "show"], env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)


@pytest.fixture
def with_token(tmp_path):
    root = make_host_root(tmp_path / "root", paths.TOKEN_DIR)
    secret = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    return root, secret


def test_token_show_prints_the_grouped_token_the_link_and_its_code(with_token, tmp_path):
    root, secret = with_token
    shown = token_show(root, "utf-8")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"Setup token: {token.for_people(secret)}"
    ips = addresses.node_addresses()
    if not ips:  # a machine without a network address: no link, said so
        assert lines[1].startswith("No setup link: this node has no network address yet")
        return
    link = banner.link(ips[0], "setup", secret)
    assert lines[1] == f"Setup link: {link}"
    assert decoded(lines[2:], tmp_path) == link


def test_token_show_on_a_terminal_that_is_not_utf8_says_so_and_shows_the_text(with_token):
    root, secret = with_token
    shown = token_show(root, "ascii")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Setup token: {token.for_people(secret)}\n")
    assert not set(shown.stdout) & set("█▀▄")
    if addresses.node_addresses():
        assert shown.stdout.rstrip().endswith(
            "No QR code: this terminal writes ascii, not UTF-8, so it cannot draw one; open "
            "the link or type the token.")
