"""Refuse anything but an Ubuntu Server 24.04 live-server amd64 ISO, before any work."""

from pathlib import Path

from isobuild import disklayout as dl
from isobuild import fat
from isobuild.errors import IsoBuildError
from isobuild.image import IsoImage
from isobuild.layout import BIOS_IMAGE, Layout, read_layout

RELEASE = "24.04"
ARCH = "amd64"
DOWNLOAD_HINT = "use the official ubuntu-24.04.x-live-server-amd64.iso (or run without --base-iso)"


def check_paths(base: Path, output: Path) -> None:
    if not base.is_file():
        raise IsoBuildError(f"base ISO {base} does not exist or is not a file",
                            "pass the path of the downloaded live-server ISO to --base-iso")
    if output.resolve() == base.resolve() or (output.exists() and output.samefile(base)):
        raise IsoBuildError(f"output {output} is the base ISO itself; the base is never modified",
                            "choose a different --output path")
    if not output.parent.is_dir():
        raise IsoBuildError(f"output directory {output.parent} does not exist",
                            "create it or choose another --output path")


def check_layout(iso: IsoImage) -> Layout:
    """The base's layout, or an IsoBuildError naming what is wrong with it."""
    layout = read_layout(iso)
    if layout.release is None:
        raise IsoBuildError(f"volume id {layout.volume_id!r} is not an Ubuntu Server ISO",
                            DOWNLOAD_HINT)
    if layout.release.rpartition(".")[0] != RELEASE and layout.release != RELEASE:
        raise IsoBuildError(f"base ISO is Ubuntu Server {layout.release}; only {RELEASE}.x is "
                            "supported", DOWNLOAD_HINT)
    if layout.arch != ARCH:
        raise IsoBuildError(f"base ISO is for {layout.arch}; only {ARCH} is supported",
                            DOWNLOAD_HINT)
    if layout.disk_info is None:
        raise IsoBuildError("base ISO has no /.disk/info, which GRUB's EFI image searches for",
                            DOWNLOAD_HINT)
    _check_grub(iso, layout)
    _check_boot(iso, layout)
    return layout


def _check_grub(iso: IsoImage, layout: Layout) -> None:
    if "/boot/grub/grub.cfg" not in layout.grub_configs:
        raise IsoBuildError("base ISO has no /boot/grub/grub.cfg", DOWNLOAD_HINT)
    lines = layout.casper_lines()
    if not lines["/boot/grub/grub.cfg"]:
        raise IsoBuildError("/boot/grub/grub.cfg has no `linux /casper/...` menu entry",
                            DOWNLOAD_HINT)
    for path, kernel_lines in lines.items():
        for line in kernel_lines:
            if iso.record(line.kernel) is None:
                raise IsoBuildError(f"{path} boots {line.kernel}, which is not on the ISO",
                                    DOWNLOAD_HINT)


def _check_boot(iso: IsoImage, layout: Layout) -> None:
    bios, efi, esp = layout.bios_entry, layout.efi_entry, layout.esp
    if bios is None or layout.bios_image is None or bios.load_rba != layout.bios_image[0]:
        reason = layout.el_torito_error or f"no BIOS El Torito entry for {BIOS_IMAGE}"
        raise IsoBuildError(f"base ISO is not bootable as shipped: {reason}", DOWNLOAD_HINT)
    if layout.gpt is None or esp is None or efi is None:
        raise IsoBuildError("base ISO lacks the GPT, EFI System Partition or UEFI El Torito "
                            f"entry of a hybrid live-server image ({layout.gpt_error or 'no ESP'})",
                            DOWNLOAD_HINT)
    if efi.load_rba * 4 != esp.first_lba:
        raise IsoBuildError("base ISO's UEFI El Torito entry does not point at its ESP",
                            DOWNLOAD_HINT)
    if not any(e.type == dl.PROTECTIVE_TYPE for e in layout.mbr_entries):
        raise IsoBuildError("base ISO's MBR has no protective 0xEE entry", DOWNLOAD_HINT)
    esp_image = dl.read_at(iso.fp, esp.first_lba * dl.SECTOR, esp.sectors * dl.SECTOR)
    try:
        loader = fat.file_size(esp_image, "/EFI/BOOT/BOOTX64.EFI")
    except (fat.FatError, IndexError, ValueError) as exc:
        raise IsoBuildError(f"base ISO's ESP is not a FAT file system ({exc})",
                            DOWNLOAD_HINT) from exc
    if not loader:
        raise IsoBuildError("base ISO's ESP has no /EFI/BOOT/BOOTX64.EFI", DOWNLOAD_HINT)
