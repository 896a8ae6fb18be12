"""Patch Ubuntu's GRUB configs for an unattended install, idempotently.

Every casper `linux` line gets `autoinstall 'ds=nocloud;s=/cdrom/nocloud/'` before
`---` (arguments after `---` are copied into the installed system; these must not be).
The `;` is quoted because GRUB would otherwise end the command there. Lines are split
with GRUB's own word rules so that existing quoting survives and a second run finds and
replaces our arguments instead of adding them again.
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
