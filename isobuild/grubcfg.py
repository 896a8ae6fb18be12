"""Patch Ubuntu's GRUB configs for an unattended install, idempotently.

Every casper `linux` line gets `autoinstall 'ds=nocloud;s=/cdrom/nocloud/'` before
`---` (arguments after `---` are copied into the installed system; these must not be).
The `;` is quoted because GRUB would otherwise end the command there. Lines are split
with GRUB's own word rules so that existing quoting survives and a second run finds and
replaces our arguments instead of adding them again.

The main menu also guards against a second install (`guard_reinstall`): the casper
entries are renamed to say they erase the disk, and when a disk holds the marker a
finished install leaves, an entry that boots that disk comes first and is the default.
"""

import re
from dataclasses import dataclass

NOCLOUD_SOURCE = "ds=nocloud;s=/cdrom/nocloud/"
AUTOINSTALL_ARGS = ("autoinstall", NOCLOUD_SOURCE)
SERIAL_CONSOLE_ARG = "console=ttyS0,115200"
SERIAL_TERMINAL = (
    "serial --unit=0 --speed=115200",
    "terminal_input console serial",
    "terminal_output console serial",
)
KERNEL_COMMANDS = ("linux", "linuxefi")
CASPER_PREFIX = "/casper/"
_TIMEOUT = re.compile(r"^(\s*)set\s+timeout=\S*\s*$")

# Left by the install's last late-command. On the root filesystem because that is the one
# filesystem every install has on both firmwares (a BIOS install has no ESP); the seed's
# `direct` layout makes it a plain ext4 partition (no LVM), which holds /boot, so the
# ISO's GRUB finds it with `ext2` alone.
INSTALLED_MARKER = "/boot/alga-appliance-installed"
INSTALL_TITLE = "Install Alga appliance (erases the disk)"
HWE_INSTALL_TITLE = "Install Alga appliance, HWE kernel (erases the disk)"
INSTALLED_TITLE = "Boot the installed Alga appliance"
INSTALLED_ENTRY_ID = "alga-installed"
# Ubuntu's direct layout on UEFI puts the ESP first; shim is what the firmware would boot.
INSTALLED_EFI_LOADER = "gpt1)/EFI/ubuntu/shimx64.efi"
# Before the first menu entry of grub.cfg. GRUB's `search` gives a partition such as
# `hd1,gpt2`; BIOS boots the whole disk's MBR (GRUB's boot code there), UEFI chainloads
# the disk's shim. Menu entries see only exported variables. The modules are built into
# Ubuntu's signed EFI GRUB and shipped in /boot/grub/i386-pc for BIOS.
INSTALLED_GUARD = f"""\
# Alga: a disk that holds an installed appliance is booted by default, not reinstalled.
insmod part_gpt
insmod ext2
insmod regexp
insmod chain
if search --no-floppy --file --set=alga_installed {INSTALLED_MARKER}; then
\tregexp --set=1:alga_disk '^([^,]+)' "$alga_installed"
\texport alga_disk
\tset default={INSTALLED_ENTRY_ID}
\tmenuentry "{INSTALLED_TITLE}" --id {INSTALLED_ENTRY_ID} {{
\t\tif [ "$grub_platform" = "efi" ]; then
\t\t\tchainloader ($alga_disk,{INSTALLED_EFI_LOADER}
\t\telse
\t\t\tset root=($alga_disk)
\t\t\tchainloader +1
\t\tfi
\t}}
fi
"""


@dataclass(frozen=True)
class Word:
    raw: str  # as written, quotes included
    value: str  # as GRUB passes it on


def split_words(line: str) -> list[Word]:
    """Split one config line into words the way GRUB's parser does (comments dropped)."""
    words, i = [], 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        if line[i] == "#":
            break
        start, value = i, []
        while i < len(line) and not line[i].isspace():
            i, part = _word_part(line, i)
            value.append(part)
        words.append(Word(line[start:i], "".join(value)))
    return words


def _word_part(line: str, i: int) -> tuple[int, str]:
    char = line[i]
    if char == "'":
        end = line.find("'", i + 1)
        end = len(line) if end < 0 else end
        return end + 1, line[i + 1:end]
    if char == '"':
        value, i = [], i + 1
        while i < len(line) and line[i] != '"':
            if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in '"\\$':
                i += 1
            value.append(line[i])
            i += 1
        return i + 1, "".join(value)
    if char == "\\" and i + 1 < len(line):
        return i + 2, line[i + 1]
    return i + 1, char


def quote(value: str) -> str:
    """GRUB-quote a value that holds characters GRUB would act on."""
    if re.fullmatch(r"[A-Za-z0-9_./,=:@%+-]+", value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class KernelLine:
    """A casper `linux` line: arguments before and after `---`."""

    kernel: str
    before: list[str]
    after: list[str] | None  # None when the line has no `---`


def parse_kernel_line(line: str) -> KernelLine | None:
    words = split_words(line)
    if len(words) < 2 or words[0].value not in KERNEL_COMMANDS:
        return None
    if not words[1].value.startswith(CASPER_PREFIX):
        return None
    args = [w.value for w in words[2:]]
    if "---" in args:
        cut = args.index("---")
        return KernelLine(words[1].value, args[:cut], args[cut + 1:])
    return KernelLine(words[1].value, args, None)


def casper_kernel_lines(text: str) -> list[KernelLine]:
    return [k for k in map(parse_kernel_line, text.splitlines()) if k is not None]


def _is_ours(value: str) -> bool:
    return value == "autoinstall" or value.startswith("ds=nocloud")


def _patch_kernel_line(line: str, serial: bool) -> str:
    words = split_words(line)
    kernel_end = line.index(words[1].raw, line.index(words[0].raw) + len(words[0].raw))
    head = line[:kernel_end + len(words[1].raw)]
    rest = words[2:]
    cut = next((i for i, w in enumerate(rest) if w.value == "---"), len(rest))
    before = [w.raw for w in rest[:cut] if not _is_ours(w.value)]
    before += [quote(arg) for arg in AUTOINSTALL_ARGS]
    after = [w.raw for w in rest[cut + 1:]]
    if serial and SERIAL_CONSOLE_ARG not in [w.value for w in rest[cut + 1:]]:
        after.append(SERIAL_CONSOLE_ARG)
    separator = ["---"] if cut < len(rest) or after else []
    return " ".join([head, *before, *separator, *after])


def patch_config(text: str, *, timeout: int | None, serial: bool) -> str:
    """Patch one GRUB config. `timeout` is None for configs that must not get one."""
    lines = text.splitlines()
    out = []
    for line in lines:
        if parse_kernel_line(line) is not None:
            out.append(_patch_kernel_line(line, serial))
        elif timeout is not None and _TIMEOUT.match(line):
            out.append(f"{_TIMEOUT.match(line).group(1)}set timeout={timeout}")
        else:
            out.append(line)
    header = []
    if timeout is not None and not any(_TIMEOUT.match(line) for line in lines):
        header.append(f"set timeout={timeout}")
    if serial and timeout is not None and SERIAL_TERMINAL[0] not in (s.strip() for s in lines):
        header.extend(SERIAL_TERMINAL)
    return "".join(f"{line}\n" for line in header + out)


def kernel_arguments(serial: bool) -> list[str]:
    """The arguments every patched casper line carries, for the build manifest."""
    return [*AUTOINSTALL_ARGS, *([SERIAL_CONSOLE_ARG] if serial else [])]


@dataclass(frozen=True)
class MenuEntry:
    title: str
    kernels: list[str]  # the casper kernels its `linux` lines boot


def _is_menuentry(words: list[Word]) -> bool:
    return len(words) >= 2 and words[0].value == "menuentry"


def menu_entries(text: str) -> list[MenuEntry]:
    """The `menuentry` blocks of a config, each up to its lone `}`, in order."""
    entries, current = [], None
    for line in text.splitlines():
        words = split_words(line)
        if _is_menuentry(words):
            current = MenuEntry(words[1].value, [])
            entries.append(current)
        elif current is not None and line.strip() == "}":
            current = None
        elif current is not None and (kernel := parse_kernel_line(line)) is not None:
            current.kernels.append(kernel.kernel)
    return entries


def install_title(kernel: str) -> str:
    return HWE_INSTALL_TITLE if kernel.startswith(CASPER_PREFIX + "hwe-") else INSTALL_TITLE


def _retitle(line: str, words: list[Word], title: str) -> str:
    start = line.index(words[1].raw, line.index(words[0].raw) + len(words[0].raw))
    return line[:start] + f'"{title}"' + line[start + len(words[1].raw):]


def guard_reinstall(text: str) -> str:
    """Title every casper entry as an erasing install; put the installed-disk entry first."""
    entries = iter(menu_entries(text))
    out, first_entry = [], None
    for line in text.splitlines():
        words = split_words(line)
        if _is_menuentry(words):
            first_entry = len(out) if first_entry is None else first_entry
            entry = next(entries)
            if entry.kernels:
                line = _retitle(line, words, install_title(entry.kernels[0]))
        out.append(line)
    guard = INSTALLED_GUARD.splitlines()
    if guard[0] not in out:
        at = len(out) if first_entry is None else first_entry
        out[at:at] = guard
    return "".join(f"{line}\n" for line in out)
