"""The GRUB patcher: autoinstall args on every casper line, once, whatever was there."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isobuild import grubcfg

UBUNTU_GRUB_CFG = """set timeout=30

loadfont unicode

set menu_color_normal=white/black
set menu_color_highlight=black/light-gray

menuentry "Try or Install Ubuntu Server" {
\tset gfxpayload=keep
\tlinux\t/casper/vmlinuz  ---
\tinitrd\t/casper/initrd
}
menuentry "Ubuntu Server with the HWE kernel" {
\tset gfxpayload=keep
\tlinux\t/casper/hwe-vmlinuz  ---
\tinitrd\t/casper/hwe-initrd
}
grub_platform
if [ "$grub_platform" = "efi" ]; then
menuentry 'Boot from next volume' {
\texit 1
}
menuentry 'UEFI Firmware Settings' {
\tfwsetup
}
else
menuentry 'Test memory' {
\tlinux16 /boot/memtest86+x64.bin
}
fi
"""


def test_ubuntu_config_gets_args_before_separator_and_short_timeout():
    patched = grubcfg.patch_config(UBUNTU_GRUB_CFG, timeout=5, serial=False)
    assert "\tlinux\t/casper/vmlinuz autoinstall 'ds=nocloud;s=/cdrom/nocloud/' ---\n" in patched
    assert "\tlinux\t/casper/hwe-vmlinuz autoinstall 'ds=nocloud;s=/cdrom/nocloud/' ---\n" in (
        patched)
    assert "set timeout=5\n" in patched and "timeout=30" not in patched
    assert "linux16 /boot/memtest86+x64.bin\n" in patched  # not a casper line: untouched
    assert "serial" not in patched


def test_serial_console_adds_terminal_and_persisted_console_arg():
    patched = grubcfg.patch_config(UBUNTU_GRUB_CFG, timeout=5, serial=True)
    assert patched.startswith("serial --unit=0 --speed=115200\nterminal_input console serial\n"
                              "terminal_output console serial\n")
    for line in grubcfg.casper_kernel_lines(patched):
        assert line.after == ["console=ttyS0,115200"]
    assert grubcfg.patch_config(patched, timeout=5, serial=True) == patched


def test_loopback_config_gets_no_timeout():
    loopback = "menuentry x {\n\tlinux\t/casper/vmlinuz  iso-scan/filename=${iso_path} ---\n}\n"
    patched = grubcfg.patch_config(loopback, timeout=None, serial=False)
    assert "timeout" not in patched
    [line] = grubcfg.casper_kernel_lines(patched)
    assert line.before == ["iso-scan/filename=${iso_path}", *grubcfg.AUTOINSTALL_ARGS]


def test_unquoted_semicolon_is_what_grub_would_cut():
    # The whole reason for quoting: GRUB ends the command at an unquoted ';'.
    assert grubcfg.split_words("linux /casper/vmlinuz 'a;b' \"c;d\" e\\;f")[2:] == [
        grubcfg.Word("'a;b'", "a;b"), grubcfg.Word('"c;d"', "c;d"), grubcfg.Word("e\\;f", "e;f")]


def test_existing_nocloud_args_in_any_quoting_are_replaced_not_duplicated():
    for written in ("autoinstall 'ds=nocloud;s=/old/'", 'autoinstall "ds=nocloud;s=/cdrom/x/"',
                    "ds=nocloud\\;s=/cdrom/nocloud/ autoinstall"):
        config = f"linux /casper/vmlinuz quiet {written} --- splash\n"
        [line] = grubcfg.casper_kernel_lines(grubcfg.patch_config(config, timeout=None,
                                                                  serial=False))
        assert line.before == ["quiet", *grubcfg.AUTOINSTALL_ARGS]
        assert line.after == ["splash"]


# --- properties over arbitrary menus ---------------------------------------------------

plain_arg = st.from_regex(r"[a-z][a-z0-9_.=/,-]{0,15}", fullmatch=True).filter(
    lambda a: a not in ("autoinstall", "---") and not a.startswith("ds=nocloud"))
quoted_arg = plain_arg.map(lambda a: f"'{a};x'")
existing_ours = st.sampled_from(["autoinstall", "'ds=nocloud;s=/cdrom/nocloud/'",
                                 '"ds=nocloud;s=/elsewhere/"', "ds=nocloud\\;s=/x/"])
arg = st.one_of(plain_arg, quoted_arg, existing_ours)


@st.composite
def kernel_lines(draw):
    kernel = draw(st.sampled_from(["/casper/vmlinuz", "/casper/hwe-vmlinuz"]))
    command = draw(st.sampled_from(["linux", "linuxefi"]))
    before = draw(st.lists(arg, max_size=6))
    after = draw(st.none() | st.lists(st.one_of(plain_arg, quoted_arg), max_size=3))
    indent = draw(st.sampled_from(["", "\t", "    "]))
    separator = draw(st.sampled_from([" ", "\t", "  "]))
    words = [command, kernel, *before, *([] if after is None else ["---", *after])]
    return indent + separator.join(words)


other_lines = st.sampled_from([
    "menuentry 'x' {", "}", "\tinitrd\t/casper/initrd", "set timeout=30", "  set timeout=0",
    "linux /boot/other-kernel quiet", "linux16 /boot/memtest86+x64.bin", "# a comment",
    "loadfont unicode", "",
])
configs = st.lists(st.one_of(kernel_lines(), other_lines), max_size=12).map("\n".join)


@given(configs, st.integers(0, 300), st.booleans())
def test_patch_is_idempotent(config, timeout, serial):
    once = grubcfg.patch_config(config, timeout=timeout, serial=serial)
    assert grubcfg.patch_config(once, timeout=timeout, serial=serial) == once


@given(configs, st.booleans())
def test_every_casper_line_carries_the_args_exactly_once_before_separator(config, serial):
    patched = grubcfg.patch_config(config, timeout=None, serial=serial)
    original = grubcfg.casper_kernel_lines(config)
    lines = grubcfg.casper_kernel_lines(patched)
    assert len(lines) == len(original)
    for before_patch, line in zip(original, lines, strict=True):
        assert line.kernel == before_patch.kernel
        assert line.before[-2:] == list(grubcfg.AUTOINSTALL_ARGS)
        assert line.before.count("autoinstall") == 1
        assert sum(a.startswith("ds=nocloud") for a in line.before) == 1
        # Everything else survives, in order, on its own side of ---.
        kept = [a for a in before_patch.before
                if a != "autoinstall" and not a.startswith("ds=nocloud")]
        assert line.before[:-2] == kept
        expected_after = list(before_patch.after or [])
        if serial and grubcfg.SERIAL_CONSOLE_ARG not in expected_after:
            expected_after.append(grubcfg.SERIAL_CONSOLE_ARG)
        assert (line.after or []) == expected_after


@given(configs, st.integers(0, 300))
def test_timeout_is_set_exactly_once_when_asked(config, timeout):
    patched = grubcfg.patch_config(config, timeout=timeout, serial=False)
    timeouts = [w for w in patched.splitlines() if w.strip().startswith("set timeout=")]
    assert timeouts and all(t.strip() == f"set timeout={timeout}" for t in timeouts)
    assert not any(grubcfg._TIMEOUT.match(w) and w.strip() != f"set timeout={timeout}"
                   for w in patched.splitlines())


@given(configs)
def test_non_casper_lines_are_untouched(config):
    patched = grubcfg.patch_config(config, timeout=None, serial=False)
    untouched = [line for line in config.splitlines()
                 if grubcfg.parse_kernel_line(line) is None]
    assert [line for line in patched.splitlines()
            if grubcfg.parse_kernel_line(line) is None] == untouched


# --- the reinstall guard ---------------------------------------------------------------

def test_ubuntu_menu_boots_an_installed_disk_first_and_warns_on_every_install_entry():
    guarded = grubcfg.guard_reinstall(grubcfg.patch_config(UBUNTU_GRUB_CFG, timeout=5,
                                                           serial=False))
    assert [entry.title for entry in grubcfg.menu_entries(guarded)] == [
        "Boot the installed Alga appliance", "Install Alga appliance (erases the disk)",
        "Install Alga appliance, HWE kernel (erases the disk)", "Boot from next volume",
        "UEFI Firmware Settings", "Test memory"]
    head, _, _ = guarded.partition("menuentry \"Install")
    # The installed-disk entry exists, and is the default, only when the marker is found.
    assert ("if search --no-floppy --file --set=alga_installed "
            "/boot/alga-appliance-installed; then\n") in head
    assert "\tset default=alga-installed\n" in head
    assert "chainloader ($alga_disk,gpt1)/EFI/ubuntu/shimx64.efi\n" in head
    assert "set root=($alga_disk)\n\t\t\tchainloader +1\n" in head
    assert head.startswith("set timeout=5\n")  # a blank machine counts down to the install


def test_titles_are_replaced_whatever_their_quoting_and_options_survive():
    config = ("menuentry 'Try \"it\" or Install' --class ubuntu --id x {\n"
              "\tlinux /casper/hwe-vmlinuz ---\n}\n"
              "menuentry Memtest {\n\tlinux16 /boot/memtest86+x64.bin\n}\n")
    guarded = grubcfg.guard_reinstall(config)
    assert ('menuentry "Install Alga appliance, HWE kernel (erases the disk)" --class ubuntu '
            "--id x {\n") in guarded
    assert "menuentry Memtest {\n" in guarded


menu_entry_blocks = st.builds(
    lambda title, options, body: "\n".join([f"menuentry {title} {options}{{", *body, "}"]),
    st.sampled_from(["'Try or Install Ubuntu Server'", '"Ubuntu Server with the HWE kernel"',
                     "Memtest", "'it''s \"odd\"'"]),
    st.sampled_from(["", "--class ubuntu ", "--id x --hotkey=t "]),
    st.lists(st.one_of(kernel_lines(), other_lines.filter(lambda line: line.strip() != "}")),
             max_size=3))
menus = st.lists(st.one_of(menu_entry_blocks, other_lines.filter(
    lambda line: line.strip() != "}" and not line.startswith("menuentry"))), max_size=8).map(
    "\n".join)


@given(menus)
def test_guard_is_idempotent_and_added_once(config):
    once = grubcfg.guard_reinstall(config)
    assert grubcfg.guard_reinstall(once) == once
    assert once.count(grubcfg.INSTALLED_GUARD) == 1


@given(menus)
def test_guard_changes_only_titles_of_install_entries_and_puts_the_disk_entry_first(config):
    guarded = grubcfg.guard_reinstall(config)
    entries = grubcfg.menu_entries(guarded)
    assert entries[0].title == grubcfg.INSTALLED_TITLE
    original = grubcfg.menu_entries(config)
    assert [e.kernels for e in entries[1:]] == [e.kernels for e in original]
    for before, after in zip(original, entries[1:], strict=True):
        expected = grubcfg.install_title(before.kernels[0]) if before.kernels else before.title
        assert after.title == expected
    rest = guarded.replace(grubcfg.INSTALLED_GUARD, "", 1).splitlines()
    assert [line for line in rest if not line.startswith("menuentry")] == [
        line for line in config.splitlines() if not line.startswith("menuentry")]


# Issue 24: literal expectations, not ones worked out with grubcfg's own parser.
def test_the_ubuntu_config_patched_for_serial_is_exactly_this():
    patched = grubcfg.patch_config(UBUNTU_GRUB_CFG, timeout=5, serial=True)
    expected = UBUNTU_GRUB_CFG.replace("set timeout=30\n", "set timeout=5\n").replace(
        "/casper/vmlinuz  ---",
        "/casper/vmlinuz autoinstall 'ds=nocloud;s=/cdrom/nocloud/' --- console=ttyS0,115200",
    ).replace(
        "/casper/hwe-vmlinuz  ---",
        "/casper/hwe-vmlinuz autoinstall 'ds=nocloud;s=/cdrom/nocloud/' --- "
        "console=ttyS0,115200")
    assert patched == ("serial --unit=0 --speed=115200\nterminal_input console serial\n"
                       "terminal_output console serial\n" + expected)


def test_a_line_with_our_args_and_others_around_them_is_exactly_this():
    config = ("  linuxefi /casper/hwe-vmlinuz quiet 'a;b' ds=nocloud\\;s=/x/ --- splash "
              "console=ttyS0,115200\nset timeout=0\n")
    assert grubcfg.patch_config(config, timeout=0, serial=True) == (
        "serial --unit=0 --speed=115200\nterminal_input console serial\n"
        "terminal_output console serial\n"
        "  linuxefi /casper/hwe-vmlinuz quiet 'a;b' autoinstall "
        "'ds=nocloud;s=/cdrom/nocloud/' --- splash console=ttyS0,115200\nset timeout=0\n")


def test_kernel_lines_parse_to_these_words():
    assert grubcfg.casper_kernel_lines(
        "linuxefi /casper/vmlinuz quiet 'a;b' \"c d\" autoinstall --- splash\n"
        "linux /boot/vmlinuz quiet\n\tlinux\t/casper/hwe-vmlinuz # comment ---\n") == [
        grubcfg.KernelLine("/casper/vmlinuz", ["quiet", "a;b", "c d", "autoinstall"],
                           ["splash"]),
        grubcfg.KernelLine("/casper/hwe-vmlinuz", [], None)]
    # Inside single quotes a backslash is itself; inside double quotes it escapes.
    assert grubcfg.split_words("a\\ b 'c\\d' \"e\\\"f\" # g") == [
        grubcfg.Word("a\\ b", "a b"), grubcfg.Word("'c\\d'", "c\\d"),
        grubcfg.Word('"e\\"f"', 'e"f')]


def test_quoting_leaves_plain_words_and_quotes_the_rest():
    assert [grubcfg.quote(v) for v in ("abc", "ABC", "it's", "a;b")] == [
        "abc", "ABC", "'it'\\''s'", "'a;b'"]


@pytest.mark.parametrize(("line", "serial", "patched"), [
    # The kernel's path again as an argument stays an argument.
    ("linux /casper/vmlinuz /casper/vmlinuz ---", False,
     "linux /casper/vmlinuz /casper/vmlinuz autoinstall 'ds=nocloud;s=/cdrom/nocloud/' ---"),
    ("linux /casper/vmlinuz linux", False,
     "linux /casper/vmlinuz linux autoinstall 'ds=nocloud;s=/cdrom/nocloud/'"),
    # The serial console before --- is not the installed system's: it is added after.
    ("linux /casper/vmlinuz console=ttyS0,115200 ---", True,
     "linux /casper/vmlinuz console=ttyS0,115200 autoinstall 'ds=nocloud;s=/cdrom/nocloud/' "
     "--- console=ttyS0,115200"),
    # No --- and nothing to put after one: none is added.
    ("linux /casper/vmlinuz quiet", False,
     "linux /casper/vmlinuz quiet autoinstall 'ds=nocloud;s=/cdrom/nocloud/'"),
])
def test_kernel_lines_are_patched_to_exactly_this(line, serial, patched):
    assert grubcfg.patch_config(line + "\n", timeout=None, serial=serial) == patched + "\n"


def test_a_config_with_a_serial_line_gets_no_second_terminal_header():
    assert grubcfg.patch_config("serial --unit=0 --speed=115200\n", timeout=5, serial=True) == (
        "set timeout=5\nserial --unit=0 --speed=115200\n")


def test_the_manifest_names_these_kernel_arguments():
    assert grubcfg.kernel_arguments(False) == ["autoinstall", "ds=nocloud;s=/cdrom/nocloud/"]
    assert grubcfg.kernel_arguments(True) == ["autoinstall", "ds=nocloud;s=/cdrom/nocloud/",
                                              "console=ttyS0,115200"]


@pytest.mark.parametrize(("line", "words"), [
    ("a '' b", [("a", "a"), ("''", ""), ("b", "b")]),
    ("x 'unterminated", [("x", "x"), ("'unterminated", "unterminated")]),
    ('x "unterminated', [("x", "x"), ('"unterminated', "unterminated")]),
    ('"a\\', [('"a\\', "a\\")]),  # a backslash ending the line inside double quotes
    ('"a\\Xb"', [('"a\\Xb"', "a\\Xb")]),  # escapes only " \\ $ inside double quotes
    ('"a\\"', [('"a\\"', 'a"')]),  # an escaped quote ending the line still is one
    ("x \\b", [("x", "x"), ("\\b", "b")]),  # an escape ending the line
    ("x \\", [("x", "x"), ("\\", "\\")]),  # a backslash ending the line is itself
])
def test_quoting_edge_cases_split_to_exactly_these_words(line, words):
    assert grubcfg.split_words(line) == [grubcfg.Word(raw, value) for raw, value in words]


def test_a_title_found_inside_the_menuentry_word_or_again_later_is_replaced_where_it_stands():
    config = "menuentry e --class e --id menuentry-e {\n\tlinux /casper/vmlinuz ---\n}\n"
    assert grubcfg.guard_reinstall(config).endswith(
        'menuentry "Install Alga appliance (erases the disk)" --class e --id menuentry-e {\n'
        "\tlinux /casper/vmlinuz ---\n}\n")


def test_an_entry_ends_at_its_brace_and_may_open_it_on_the_next_line():
    # GRUB's grammar allows newlines between a menuentry's arguments and its "{".
    config = ('menuentry "Firmware" {\n\tfwsetup\n}\nlinux /casper/vmlinuz ---\n'
              'menuentry "Try"\n{\n\tlinux /casper/hwe-vmlinuz ---\n}\n')
    assert grubcfg.menu_entries(config) == [
        grubcfg.MenuEntry("Firmware", []), grubcfg.MenuEntry("Try", ["/casper/hwe-vmlinuz"])]


def test_a_config_already_loading_the_guards_modules_still_gets_the_guard():
    config = "insmod part_gpt\ninsmod ext2\nmenuentry Memtest {\n}\n"
    assert grubcfg.guard_reinstall(config) == (
        "insmod part_gpt\ninsmod ext2\n" + grubcfg.INSTALLED_GUARD + "menuentry Memtest {\n}\n")
