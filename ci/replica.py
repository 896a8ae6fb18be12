#!/usr/bin/env python3
"""Build a small, bootable replica of the Ubuntu Server 24.04 live-server amd64 ISO.

The replica has the real ISO's boot structure (GRUB hybrid MBR, protective MBR + GPT,
appended FAT ESP, two El Torito entries, one /boot/grub/grub.cfg for BIOS and UEFI) and
its tree layout, so the project's ISO builder can be tested against it without downloading
a 2.7 GB image. Instead of casper, its initrd reports on ttyS0 what it finds on the
medium and powers off: see INIT_SCRIPT for the REPLICA-* lines.

Stdlib only; needs xorriso, grub-pc-bin, grub-efi-amd64-bin, mtools, dosfstools,
busybox-static, kmod and a Debian amd64 kernel (see /work/shared/reference/
ubuntu-iso-layout.md for the layout being copied).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Fixed timestamp (the 24.04.1 build day) so that two builds give the same bytes.
FIXED_EPOCH = 1724760000
BUILD_SERIALS = {
    "24.04": "20240423",
    "24.04.1": "20240827",
    "24.04.2": "20250215",
    "24.04.3": "20250805",
}
ESP_SECTORS = 10144  # the size of the ESP in the real 24.04.1 ISO
FILLER_CHUNK = 8 << 20

GRUB_LIB = Path("/usr/lib/grub")
GRUB_FONT = Path("/usr/share/grub/unicode.pf2")
BUSYBOX = Path("/bin/busybox")

# Everything GRUB needs is embedded, so neither image loads modules from the medium
# (the replica only ships a token few .mod files, and a remaster must not depend on them).
# ext2, regexp and chain serve the appliance menu's installed-disk entry: Ubuntu's signed
# EFI GRUB has them built in, its BIOS GRUB loads them from /boot/grub/i386-pc.
# fmt: off
BIOS_GRUB_MODULES = (
    "biosdisk", "iso9660", "part_msdos", "part_gpt", "normal", "configfile", "linux", "linux16",
    "search", "search_fs_file", "search_fs_uuid", "search_label", "echo", "test", "font",
    "gfxterm", "all_video", "minicmd", "ls", "cat", "ext2", "regexp", "chain",
)
EFI_GRUB_MODULES = (
    "part_gpt", "part_msdos", "fat", "iso9660", "normal", "configfile", "linux", "search",
    "search_fs_file", "search_fs_uuid", "search_label", "echo", "test", "font", "gfxterm",
    "efi_gop", "efi_uga", "all_video", "efifwsetup", "minicmd", "ls", "cat", "ext2", "regexp",
    "chain",
)
# fmt: on
SAMPLE_GRUB_MODULES = ("ls.mod", "cat.mod")

# What Ubuntu's signed GRUB does before reading the menu: find the ISO 9660 tree by its
# /.disk/info, so BIOS and UEFI share /boot/grub/grub.cfg.
EFI_EARLY_CONFIG = """\
search --file --set=root /.disk/info
set prefix=($root)/boot/grub
configfile $prefix/grub.cfg
"""

# Kernel modules for qemu's PIIX IDE CD and disk, xHCI USB sticks, and ISO 9660.
MEDIUM_MODULES = ("ata_piix", "sr_mod", "sd_mod", "isofs", "xhci_pci", "usb_storage")

GRUB_ENTRY = """\
menuentry "{title}" {{
\tset gfxpayload=keep
\tlinux\t/casper/{kernel}  {args}---
\tinitrd\t/casper/{initrd}
}}
"""

GRUB_CFG_HEAD = """\
set timeout=30

loadfont unicode

set menu_color_normal=white/black
set menu_color_highlight=black/light-gray

"""

GRUB_CFG_TAIL = """\
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

INIT_SCRIPT = """\
#!/bin/busybox sh
# Replica of casper's job, reduced to a report: find the boot medium the way casper
# does (an ISO 9660 holding /.disk/info), say what is on it on ttyS0, power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The kernel console is not on ttyS0, so this is all the serial log holds after GRUB.
exec </dev/null >/dev/ttyS0 2>&1

echo "REPLICA-CMDLINE: $(cat /proc/cmdline)"
for ko in {modules}; do
\tinsmod "/modules/$ko" 2>/dev/null || echo "replica: could not load $ko"
done

find_medium() {{
\tfor dev in /dev/sr* /dev/sd*; do
\t\t[ -b "$dev" ] || continue
\t\tmount -t iso9660 -o ro "$dev" /cdrom 2>/dev/null || continue
\t\t[ -f /cdrom/.disk/info ] && echo "$dev" && return 0
\t\tumount /cdrom
\tdone
\treturn 1
}}

medium=none
for attempt in $(seq 15); do
\tif dev=$(find_medium); then medium=$dev; break; fi
\tsleep 1
done
echo "REPLICA-MEDIUM: $medium"

if [ "$medium" != none ]; then
\tif [ -f /cdrom/nocloud/user-data ] && [ -f /cdrom/nocloud/meta-data ]; then
\t\techo "REPLICA-SEED: present"
\telse
\t\techo "REPLICA-SEED: missing"
\tfi
\tif [ -f /cdrom/nocloud/user-data ]; then
\t\techo "REPLICA-USERDATA-SHA256: $(sha256sum /cdrom/nocloud/user-data | cut -d' ' -f1)"
\telse
\t\techo "REPLICA-USERDATA-SHA256: none"
\tfi
\tif [ -f /cdrom/alga/VERSION ]; then
\t\techo "REPLICA-PAYLOAD: present"
\telse
\t\techo "REPLICA-PAYLOAD: missing"
\tfi
fi
echo "REPLICA-DONE"
poweroff -f
"""

# `xorriso -report_el_torito as_mkisofs` of the real 24.04.1 ISO, one regex per line;
# only sizes, block addresses and the image's own file name may differ.
EL_TORITO_REPORT_SHAPE = (
    r"-V 'Ubuntu-Server \S+ LTS \S+'",
    r"--modification-date='\d{16}'",
    r"--grub2-mbr --interval:local_fs:0s-15s:zero_mbrpt,zero_gpt:'.+'",
    r"--protective-msdos-label",
    r"-partition_cyl_align off",
    r"-partition_offset 16",
    r"--mbr-force-bootable",
    r"-append_partition 2 28732ac11ff8d211ba4b00a0c93ec93b --interval:local_fs:\d+d-\d+d::'.+'",
    r"-appended_part_as_gpt",
    r"-iso_mbr_part_type a2a0d0ebe5b9334487c068b6b72699c7",
    r"-c '/boot.catalog'",
    r"-b '/boot/grub/i386-pc/eltorito.img'",
    r"-no-emul-boot",
    r"-boot-load-size 4",
    r"-boot-info-table",
    r"--grub2-boot-info",
    r"-eltorito-alt-boot",
    r"-e '--interval:appended_partition_2_start_\d+s_size_\d+d:all::'",
    r"-no-emul-boot",
    r"-boot-load-size \d+",
)


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a tool; on failure raise with its stderr, which is where all of them explain."""
    result = subprocess.run(
        [str(part) for part in cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(FIXED_EPOCH), **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def volume_id(release: str, arch: str) -> str:
    return f"Ubuntu-Server {release} LTS {arch}"


def disk_info(release: str, arch: str) -> str:
    if release not in BUILD_SERIALS:
        raise ValueError(f"unknown release {release!r}; known: {', '.join(BUILD_SERIALS)}")
    return f'Ubuntu-Server {release} LTS "Noble Numbat" - Release {arch} ({BUILD_SERIALS[release]})'


def casper_entries(hwe: bool, extra_args: str) -> str:
    entries = [("Try or Install Ubuntu Server", "vmlinuz", "initrd")]
    if hwe:
        entries.append(("Ubuntu Server with the HWE kernel", "hwe-vmlinuz", "hwe-initrd"))
    return "".join(
        GRUB_ENTRY.format(title=title, kernel=kernel, initrd=initrd, args=extra_args)
        for title, kernel, initrd in entries
    )


def grub_cfg(hwe: bool) -> str:
    return GRUB_CFG_HEAD + casper_entries(hwe, "") + GRUB_CFG_TAIL


def loopback_cfg(hwe: bool) -> str:
    return casper_entries(hwe, "iso-scan/filename=${iso_path} ")


def host_kernel() -> tuple[Path, str]:
    """The newest kernel in /boot that has modules installed, and its version string."""
    kernels = [
        path
        for path in Path("/boot").glob("vmlinuz-*")
        if Path("/lib/modules", path.name.removeprefix("vmlinuz-")).is_dir()
    ]
    if not kernels:
        raise FileNotFoundError("no kernel in /boot: install linux-image-amd64")
    kernel = max(kernels, key=lambda path: [int(n) for n in re.findall(r"\d+", path.name)])
    return kernel, kernel.name.removeprefix("vmlinuz-")


def module_files(kernel_version: str, modules: tuple[str, ...]) -> list[Path]:
    """The module files for `modules` and their dependencies, in load order."""
    ordered: dict[Path, None] = {}
    for module in modules:
        plan = run("modprobe", "-S", kernel_version, "--show-depends", module)
        for line in plan.splitlines():
            words = line.split()
            if words and words[0] == "insmod":  # "builtin <name>" lines need nothing
                ordered.setdefault(Path(words[1]), None)
    return list(ordered)


def uncompressed_module(path: Path) -> tuple[str, bytes]:
    """(name.ko, contents): busybox insmod cannot load Ubuntu's .ko.zst or .ko.xz files."""
    name, _, compression = path.name.partition(".ko")
    data = path.read_bytes()
    if compression == ".zst":
        data = subprocess.run(["zstd", "-dcq", path], capture_output=True, check=True).stdout
    elif compression == ".xz":
        data = lzma.decompress(data)
    elif compression == ".gz":
        data = gzip.decompress(data)
    return f"{name}.ko", data


def newc_entry(name: str, mode: int, data: bytes = b"", *, ino: int, rdev: int = 0) -> bytes:
    """One 'newc' cpio record, the format the kernel unpacks an initramfs from."""
    fields = {
        "ino": ino, "mode": mode, "uid": 0, "gid": 0, "nlink": 1, "mtime": FIXED_EPOCH,
        "filesize": len(data), "devmajor": 0, "devminor": 0,
        "rdevmajor": rdev >> 8, "rdevminor": rdev & 0xFF,
        "namesize": len(name) + 1, "check": 0,
    }  # fmt: skip
    header = b"070701" + b"".join(b"%08X" % value for value in fields.values())
    record = header + name.encode() + b"\0"
    record += b"\0" * (-len(record) % 4)
    return record + data + b"\0" * (-len(data) % 4)


def build_initrd(kernel_version: str) -> bytes:
    modules = [uncompressed_module(path) for path in module_files(kernel_version, MEDIUM_MODULES)]
    init = INIT_SCRIPT.format(modules=" ".join(name for name, _ in modules))
    directories = (".", "bin", "dev", "proc", "sys", "cdrom", "modules")
    entries: list[tuple[str, int, bytes, int]] = [
        *((directory, 0o40755, b"", 0) for directory in directories),
        # The kernel opens /dev/console for init before devtmpfs is mounted.
        ("dev/console", 0o20600, b"", (5 << 8) | 1),
        ("bin/busybox", 0o100755, BUSYBOX.read_bytes(), 0),
        ("init", 0o100755, init.encode(), 0),
        *((f"modules/{name}", 0o100644, data, 0) for name, data in modules),
    ]
    archive = b"".join(
        newc_entry(name, mode, data, ino=ino, rdev=rdev)
        for ino, (name, mode, data, rdev) in enumerate(entries, start=1)
    )
    archive += newc_entry("TRAILER!!!", 0, ino=0)
    return gzip.compress(archive, compresslevel=6, mtime=0)


def write_filler(path: Path, mib: int) -> None:
    """Incompressible placeholder bytes; SHAKE is faster than os.urandom and repeatable."""
    with path.open("wb") as out:
        for index in range(mib * (1 << 20) // FILLER_CHUNK):
            out.write(hashlib.shake_128(index.to_bytes(8, "little")).digest(FILLER_CHUNK))
        tail = mib * (1 << 20) % FILLER_CHUNK
        if tail:
            out.write(hashlib.shake_128(b"tail").digest(tail))


def install_sources_yaml(squashfs_size: int) -> str:
    return f"""\
- default: true
  description:
    en: This version installs a minimal, tailored Ubuntu Server environment.
  id: ubuntu-server-minimal
  locale_support: none
  name:
    en: Ubuntu Server (minimized)
  path: ubuntu-server-minimal.squashfs
  size: {squashfs_size}
  type: fsimage
  variant: server
"""


def release_file(release: str, arch: str) -> str:
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(FIXED_EPOCH))
    version = ".".join(release.split(".")[:2])
    return f"""\
Origin: Ubuntu
Label: Ubuntu
Suite: noble
Version: {version}
Codename: noble
Date: {date}
Architectures: {arch}
Components: main restricted
Description: Ubuntu Noble {release}
"""


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_bios_grub(tree: Path) -> None:
    grub = tree / "boot/grub"
    (grub / "i386-pc").mkdir(parents=True, exist_ok=True)
    run("grub-mkimage", "-O", "i386-pc-eltorito", "-p", "/boot/grub",
        "-o", grub / "i386-pc/eltorito.img", *BIOS_GRUB_MODULES)  # fmt: skip
    for platform in ("i386-pc", "x86_64-efi"):
        (grub / platform).mkdir(exist_ok=True)
        for module in SAMPLE_GRUB_MODULES:
            shutil.copyfile(GRUB_LIB / platform / module, grub / platform / module)
    if GRUB_FONT.exists():
        (grub / "fonts").mkdir(exist_ok=True)
        shutil.copyfile(GRUB_FONT, grub / "fonts/unicode.pf2")


def build_efi_grub(work: Path) -> Path:
    early_cfg = work / "early.cfg"
    early_cfg.write_text(EFI_EARLY_CONFIG)
    image = work / "grubx64.efi"
    run("grub-mkimage", "-O", "x86_64-efi", "-p", "/boot/grub", "-c", early_cfg,
        "-o", image, *EFI_GRUB_MODULES)  # fmt: skip
    return image


def build_esp(work: Path, efi_grub: Path) -> Path:
    """A FAT ESP like Ubuntu's: EFI/BOOT holds the boot loader under its three names."""
    staging = work / "esp-tree"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "EFI/BOOT").mkdir(parents=True)
    for name in ("BOOTX64.EFI", "GRUBX64.EFI", "MMX64.EFI"):
        shutil.copyfile(efi_grub, staging / "EFI/BOOT" / name)
    pin_mtimes(staging)
    esp = work / "esp.img"
    esp.unlink(missing_ok=True)
    run("mkfs.vfat", "--invariant", "-i", "0a1b2c3d", "-n", "ESP", "-C", esp, str(ESP_SECTORS // 2))
    # One recursive copy with -m, because mmd would stamp directories with the current time.
    run("mcopy", "-s", "-m", "-i", esp, staging / "EFI", "::/",
        env={"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"})  # fmt: skip
    return esp


def build_casper(tree: Path, hwe: bool, filler_mib: int) -> None:
    casper = tree / "casper"
    casper.mkdir(parents=True)
    kernel, kernel_version = host_kernel()
    initrd = build_initrd(kernel_version)
    kernel_names = [("vmlinuz", "initrd")] + ([("hwe-vmlinuz", "hwe-initrd")] if hwe else [])
    for kernel_name, initrd_name in kernel_names:
        shutil.copyfile(kernel, casper / kernel_name)
        (casper / initrd_name).write_bytes(initrd)
    squashfs = casper / "ubuntu-server-minimal.squashfs"
    write_filler(squashfs, filler_mib)
    write_text(casper / "install-sources.yaml", install_sources_yaml(squashfs.stat().st_size))


def md5sum_lines(tree: Path) -> str:
    """Ubuntu's md5sum.txt: every regular file but the two that writing the ISO patches."""
    skipped = {"./md5sum.txt", "./boot.catalog", "./boot/grub/i386-pc/eltorito.img"}
    lines = []
    for directory, _subdirs, files in os.walk(tree):  # does not follow the ubuntu -> . link
        for name in files:
            path = Path(directory, name)
            iso_path = "./" + path.relative_to(tree).as_posix()
            if iso_path not in skipped and not path.is_symlink():
                with path.open("rb") as stream:
                    digest = hashlib.file_digest(stream, "md5").hexdigest()
                lines.append((iso_path, digest))
    return "".join(f"{digest}  {iso_path}\n" for iso_path, digest in sorted(lines))


def pin_mtimes(tree: Path) -> None:
    for directory, subdirs, files in os.walk(tree):
        for name in [*subdirs, *files]:
            os.utime(Path(directory, name), (FIXED_EPOCH, FIXED_EPOCH), follow_symlinks=False)
    os.utime(tree, (FIXED_EPOCH, FIXED_EPOCH))


def build_tree(
    tree: Path, *, release: str, arch: str, hwe: bool, filler_mib: int, efi_grub: Path
) -> None:
    write_text(tree / ".disk/info", disk_info(release, arch))
    write_text(tree / "boot/grub/grub.cfg", grub_cfg(hwe))
    write_text(tree / "boot/grub/loopback.cfg", loopback_cfg(hwe))
    build_bios_grub(tree)
    (tree / "EFI/boot").mkdir(parents=True)
    for name in ("bootx64.efi", "grubx64.efi", "mmx64.efi"):
        shutil.copyfile(efi_grub, tree / "EFI/boot" / name)
    build_casper(tree, hwe, filler_mib)
    write_text(tree / "dists/noble/Release", release_file(release, arch))
    write_text(
        tree / "pool/main/a/alga-placeholder/README",
        "Placeholder so that /pool is not empty, as on the real ISO.\n",
    )
    (tree / "ubuntu").symlink_to(".")
    write_text(tree / "md5sum.txt", md5sum_lines(tree))
    pin_mtimes(tree)


def pack_iso(tree: Path, esp: Path, output: Path, volume: str) -> None:
    """xorriso with exactly the boot options of the real ISO (see the layout reference)."""
    output.unlink(missing_ok=True)
    # fmt: off
    run(
        "xorriso", "-as", "mkisofs", "-r", "-J", "-joliet-long", "-V", volume, "-o", output,
        "--grub2-mbr", GRUB_LIB / "i386-pc/boot_hybrid.img",
        "--protective-msdos-label", "-partition_cyl_align", "off", "-partition_offset", "16",
        "--mbr-force-bootable",
        "-append_partition", "2", "28732ac11ff8d211ba4b00a0c93ec93b", esp,
        "-appended_part_as_gpt", "-iso_mbr_part_type", "a2a0d0ebe5b9334487c068b6b72699c7",
        "-c", "/boot.catalog",
        "-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot", "-boot-load-size", "4",
        "-boot-info-table", "--grub2-boot-info",
        "-eltorito-alt-boot",
        "-e", "--interval:appended_partition_2:::", "-no-emul-boot",
        "-boot-load-size", str(esp.stat().st_size // 512),
        tree,
    )
    # fmt: on


def el_torito_report(iso: Path) -> str:
    """The boot setup of `iso` as xorriso would recreate it (`-report_el_torito as_mkisofs`)."""
    return run("xorriso", "-indev", iso, "-report_el_torito", "as_mkisofs").strip()


def el_torito_report_mismatches(report: str) -> list[str]:
    """How `report` differs in shape from the real 24.04.1 ISO's; empty when it matches."""
    # xorriso states the MBR's CHS geometry for small images such as the default replica;
    # the 2.7 GB original (and a 1.1 GB replica) have no such lines.
    lines = [
        line
        for line in report.splitlines()
        if not re.fullmatch(r"-partition_(hd_cyl|sec_hd) \d+", line)
    ]
    problems = [
        f"line {number}: {line!r} does not match {pattern!r}"
        for number, (pattern, line) in enumerate(
            zip(EL_TORITO_REPORT_SHAPE, lines, strict=False), start=1
        )
        if not re.fullmatch(pattern, line)
    ]
    if len(lines) != len(EL_TORITO_REPORT_SHAPE):
        problems.append(f"{len(lines)} lines, expected {len(EL_TORITO_REPORT_SHAPE)}")
    return problems


@contextlib.contextmanager
def work_directory(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="replica-") as temporary:
        yield Path(temporary)


def build_replica(
    output: Path,
    *,
    release: str = "24.04.1",
    arch: str = "amd64",
    hwe: bool = False,
    filler_mib: int = 1,
    workdir: Path | None = None,
) -> Path:
    """Write the replica ISO to `output` and return it; `workdir` is kept if given."""
    output = Path(output)
    with work_directory(workdir) as work:
        tree = work / "tree"
        if tree.exists():
            shutil.rmtree(tree)
        efi_grub = build_efi_grub(work)
        build_tree(
            tree, release=release, arch=arch, hwe=hwe, filler_mib=filler_mib, efi_grub=efi_grub
        )
        pack_iso(tree, build_esp(work, efi_grub), output, volume_id(release, arch))
    problems = el_torito_report_mismatches(el_torito_report(output))
    if problems:
        raise RuntimeError("replica boot setup differs from Ubuntu's:\n" + "\n".join(problems))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="ISO file to write")
    parser.add_argument("--release", default="24.04.1", choices=sorted(BUILD_SERIALS))
    parser.add_argument("--arch", default="amd64")
    parser.add_argument("--hwe", action="store_true", help="add the HWE kernel entry (24.04.2+)")
    parser.add_argument(
        "--filler-mib", type=int, default=1, help="size of the placeholder squashfs in MiB"
    )
    parser.add_argument("--workdir", type=Path, help="build here and keep the intermediate files")
    args = parser.parse_args(argv)
    started = time.monotonic()
    iso = build_replica(
        args.output,
        release=args.release,
        arch=args.arch,
        hwe=args.hwe,
        filler_mib=args.filler_mib,
        workdir=args.workdir,
    )
    print(f"{iso}: {iso.stat().st_size} bytes in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
