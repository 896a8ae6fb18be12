#!/usr/bin/env python3
"""Boot an ISO image in qemu (TCG) and collect the report that the replica's initrd prints.

The replica's /init (ci/replica.py) writes REPLICA-* lines to ttyS0 and powers off, so a
boot is: start qemu with the serial port going to a file, wait for qemu to exit, parse the
file. Stdlib only; needs qemu-system-x86 and, for UEFI, ovmf.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FIRMWARES = ("bios", "uefi")
MEDIA = ("cd", "disk", "usb")

# "REPLICA-<KEY>: <value>" -> BootResult field. GRUB and OVMF also draw on the serial
# port, with escape sequences and carriage returns, so match anywhere in a line.
REPORT_FIELDS = {
    "CMDLINE": "cmdline",
    "MEDIUM": "medium",
    "SEED": "seed",
    "USERDATA-SHA256": "userdata_sha256",
    "PAYLOAD": "payload",
}
REPORT_LINE = re.compile(r"REPLICA-(" + "|".join(REPORT_FIELDS) + r"): ([^\r\n]*)")
DONE_LINE = re.compile(r"REPLICA-DONE\r?$", re.MULTILINE)


@dataclasses.dataclass
class BootResult:
    """What the replica reported; a field is None when its line never appeared.

    Values are as printed: medium is a device such as /dev/sr0 or "none"; seed and
    payload are "present" or "missing"; userdata_sha256 is a hex digest or "none".
    """

    cmdline: str | None
    medium: str | None
    seed: str | None
    userdata_sha256: str | None
    payload: str | None
    done: bool
    seconds: float
    log: str


def firmware_args(firmware: str, scratch: Path) -> list[str]:
    if firmware == "bios":
        return []  # qemu's default firmware is SeaBIOS
    if firmware == "uefi":
        variables = scratch / "OVMF_VARS.fd"  # OVMF writes its variables: use a copy
        shutil.copyfile(OVMF_VARS, variables)
        return [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
        ]  # fmt: skip
    raise ValueError(f"firmware must be one of {FIRMWARES}, not {firmware!r}")


def _qemu_file(path: Path) -> str:
    return str(path).replace(",", ",,")  # qemu's option syntax escapes a comma by doubling it


def medium_args(iso: Path, medium: str) -> list[str]:
    # snapshot=on: a writable disk must not let the guest change the image under test.
    # bootindex=0: the firmware boots the medium first, even with the machine's disk there.
    file = _qemu_file(iso)
    if medium == "cd":
        return [
            "-drive", f"if=none,id=medium,file={file},media=cdrom,readonly=on",
            "-device", "ide-cd,drive=medium,bootindex=0",
        ]  # fmt: skip
    if medium == "disk":
        return [
            "-drive", f"if=none,id=medium,file={file},format=raw,snapshot=on",
            "-device", "ide-hd,drive=medium,bootindex=0",
        ]  # fmt: skip
    if medium == "usb":
        return [
            "-device", "qemu-xhci,id=xhci",
            "-drive", f"if=none,id=stick,file={file},format=raw,snapshot=on",
            # SeaBIOS only boots USB storage that has a boot index.
            "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
        ]  # fmt: skip
    raise ValueError(f"medium must be one of {MEDIA}, not {medium!r}")


def machine_disk_args(disk: Path | None) -> list[str]:
    """The machine's own disk (blank, or installed), booted only after the medium."""
    if disk is None:
        return []
    return [
        "-drive", f"if=none,id=machine,file={_qemu_file(disk)},format=raw,snapshot=on",
        "-device", "ide-hd,drive=machine,bootindex=1",
    ]  # fmt: skip


def qemu_command(
    iso: Path, firmware: str, medium: str, serial_log: Path, scratch: Path,
    disk: Path | None = None,
) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "512",
        # No display, no default devices (NIC option ROMs would only slow the firmware):
        # the serial port, into a file, is the only output.
        "-nographic", "-nodefaults", "-monitor", "none", "-serial", f"file:{serial_log}",
        "-no-reboot",
        *firmware_args(firmware, scratch),
        *medium_args(iso.resolve(), medium),
        *machine_disk_args(disk and disk.resolve()),
    ]  # fmt: skip


def parse_report(log: str, seconds: float) -> BootResult:
    fields: dict[str, str | None] = dict.fromkeys(REPORT_FIELDS.values())
    for match in REPORT_LINE.finditer(log):
        fields[REPORT_FIELDS[match[1]]] = match[2]
    return BootResult(**fields, done=bool(DONE_LINE.search(log)), seconds=seconds, log=log)


def run_qemu(command: list[str], timeout: float) -> float:
    """Run qemu until the guest powers off or `timeout` passes; return the seconds taken."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.monotonic() - started  # a hung boot is a result, not an error
    finally:
        # Also on timeout or KeyboardInterrupt: never leave a qemu behind.
        if process.poll() is None:
            process.kill()
            process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"qemu failed ({process.returncode}): {stderr.strip()}")
    return time.monotonic() - started


def boot(iso: Path, *, firmware: str, medium: str, timeout: float = 150,
         disk: Path | None = None) -> BootResult:
    """Boot `iso` with `firmware` ("bios"/"uefi") from `medium` ("cd"/"disk"/"usb"), with
    `disk` as the machine's own disk if given."""
    if not Path(iso).is_file():
        raise FileNotFoundError(iso)
    with tempfile.TemporaryDirectory(prefix="qemu-boot-") as temporary:
        scratch = Path(temporary)
        serial_log = scratch / "serial.log"
        command = qemu_command(Path(iso), firmware, medium, serial_log, scratch,
                               disk and Path(disk))
        seconds = run_qemu(command, timeout)
        log = serial_log.read_bytes().decode("utf-8", "replace") if serial_log.exists() else ""
    return parse_report(log, round(seconds, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit status 0 when the replica reported REPLICA-DONE, else 1.",
    )
    parser.add_argument("iso", type=Path)
    parser.add_argument("--firmware", choices=FIRMWARES, required=True)
    parser.add_argument("--medium", choices=MEDIA, required=True)
    parser.add_argument("--timeout", type=float, default=150)
    parser.add_argument("--disk", type=Path, help="the machine's own disk, booted after the ISO")
    parser.add_argument("--with-log", action="store_true", help="include the serial log")
    args = parser.parse_args(argv)
    result = boot(args.iso, firmware=args.firmware, medium=args.medium, timeout=args.timeout,
                  disk=args.disk)
    report = dataclasses.asdict(result)
    if not args.with_log:
        del report["log"]
    print(json.dumps(report, indent=2))
    return 0 if result.done else 1


if __name__ == "__main__":
    sys.exit(main())
