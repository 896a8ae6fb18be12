#!/usr/bin/env python3
"""Build a tiny disk that looks like an installed Alga appliance to the ISO's boot menu.

Laid out as Ubuntu's `direct` layout on UEFI: GPT, partition 1 an ESP holding
/EFI/ubuntu/shimx64.efi, partition 2 an ext4 root holding the install marker. Whatever
boots it prints INSTALLED_LINE on ttyS0 and ends the VM: under BIOS the MBR's own few
bytes of real-mode code, under UEFI a GRUB image standing in for shim. So a boot log that
shows the line proves the ISO's menu booted the disk instead of the installer.

Needs grub-efi-amd64-bin, mtools, dosfstools and e2fsprogs (no root).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from isobuild import disklayout as dl
from isobuild.grubcfg import INSTALLED_MARKER

INSTALLED_LINE = "ALGA-INSTALLED-SYSTEM-BOOTED"
LINUX_DATA_TYPE = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
PARTITION_SECTORS = 8192  # 4 MiB each
FIRST_LBA = 2048
TOTAL_SECTORS = FIRST_LBA + 2 * PARTITION_SECTORS + 2048
GPT_ENTRIES, GPT_ENTRY_SIZE = 128, 128


def _mbr_code(line: str) -> bytes:
    """Real-mode code loaded at 0:7C00: write `line` to COM1, then reset through the
    keyboard controller, which ends a qemu started with -no-reboot."""
    message = (line + "\r\n").encode() + b"\0"
    code = bytes([
        0xFA, 0xFC,              # cli; cld
        0x31, 0xC0, 0x8E, 0xD8,  # xor ax,ax; mov ds,ax
        0xBE, 0x1B, 0x7C,        # mov si,0x7C1B (the message, after these 27 bytes)
        0xBA, 0xF8, 0x03,        # mov dx,0x3F8
        0xAC,                    # next: lodsb
        0x84, 0xC0, 0x74, 0x03,  # test al,al; jz reset
        0xEE, 0xEB, 0xF8,        # out dx,al; jmp next
        0xB0, 0xFE, 0xE6, 0x64,  # reset: mov al,0xFE; out 0x64,al
        0xF4, 0xEB, 0xFD,        # hlt; jmp hlt
    ])  # fmt: skip
    assert len(code) == 0x1B
    return code + message


def _efi_loader(work: Path) -> Path:
    config = work / "loader.cfg"
    config.write_text(f"echo {INSTALLED_LINE}\nhalt\n")
    loader = work / "shimx64.efi"
    _run("grub-mkimage", "-O", "x86_64-efi", "-p", "/", "-c", config, "-o", loader,
         "echo", "halt")  # fmt: skip
    return loader


def _esp(work: Path) -> Path:
    esp = work / "esp.img"
    _run("mkfs.vfat", "-n", "ESP", "-C", esp, str(PARTITION_SECTORS // 2))
    env = {"MTOOLS_SKIP_CHECK": "1"}
    for directory in ("::/EFI", "::/EFI/ubuntu"):
        _run("mmd", "-i", esp, directory, env=env)
    _run("mcopy", "-i", esp, _efi_loader(work), "::/EFI/ubuntu/shimx64.efi", env=env)
    return esp


def _root(work: Path, marked: bool) -> Path:
    tree = work / "root"
    (tree / "boot").mkdir(parents=True)
    if marked:
        (tree / INSTALLED_MARKER.lstrip("/")).write_text("0.0.0-test\n")
    root = work / "root.img"
    _run("mkfs.ext4", "-q", "-d", tree, root, f"{PARTITION_SECTORS // 2}k")
    return root


def _gpt(total: int) -> tuple[bytes, bytes, bytes]:
    """(primary header, partition entries, backup header): the ESP, then the root."""
    starts = (FIRST_LBA, FIRST_LBA + PARTITION_SECTORS)
    partitions = [
        dl.GptPartition(kind, uuid.uuid5(uuid.NAMESPACE_URL, name), start,
                        start + PARTITION_SECTORS - 1, 0, name)
        for kind, name, start in ((dl.ESP_TYPE, "ESP", starts[0]),
                                  (LINUX_DATA_TYPE, "root", starts[1]))
    ]  # fmt: skip
    entries_sectors = GPT_ENTRIES * GPT_ENTRY_SIZE // dl.SECTOR
    primary = dl.GptHeader(1, total - 1, 2 + entries_sectors, total - 2 - entries_sectors,
                           uuid.uuid5(uuid.NAMESPACE_URL, "alga-installed-disk"), 2,
                           GPT_ENTRIES, GPT_ENTRY_SIZE)
    entries = dl.encode_gpt_entries(primary, partitions)
    backup = dl.backup_header(primary, total)
    return (dl.encode_gpt_header(primary, entries), entries,
            dl.encode_gpt_header(backup, entries))


def build_installed_disk(output: Path, *, marked: bool = True) -> Path:
    """Write the disk to `output`; without `marked` it is the same disk minus the marker."""
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="installed-disk-") as temporary:
        work = Path(temporary)
        esp, root = _esp(work), _root(work, marked)
        primary, entries, backup = _gpt(TOTAL_SECTORS)
        protective = dl.MbrEntry(0, dl.PROTECTIVE_TYPE, 1, TOTAL_SECTORS - 1)
        mbr = dl.encode_mbr(_mbr_code(INSTALLED_LINE).ljust(dl.MBR_CODE_SIZE, b"\0"), 0,
                            b"\0" * 6, [protective] + [dl.MbrEntry(0, 0, 0, 0)] * 3)
        with output.open("wb") as disk:
            disk.truncate(TOTAL_SECTORS * dl.SECTOR)
            for lba, data in ((0, mbr), (1, primary), (2, entries),
                              (FIRST_LBA, esp.read_bytes()),
                              (FIRST_LBA + PARTITION_SECTORS, root.read_bytes()),
                              (TOTAL_SECTORS - 1 - len(entries) // dl.SECTOR, entries),
                              (TOTAL_SECTORS - 1, backup)):  # fmt: skip
                disk.seek(lba * dl.SECTOR)
                disk.write(data)
    return output


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(part) for part in cmd], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({result.returncode}):\n{result.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="raw disk image to write")
    parser.add_argument("--no-marker", action="store_true", help="leave the marker out")
    args = parser.parse_args(argv)
    print(build_installed_disk(args.output, marked=not args.no_marker))
    return 0


if __name__ == "__main__":
    sys.exit(main())
