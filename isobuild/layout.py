"""What an ISO is and how it boots: the facts `inspect`, the base check and `verify` share."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from isobuild import disklayout as dl
from isobuild.grubcfg import casper_kernel_lines
from isobuild.image import IsoImage

GRUB_CONFIGS = ("/boot/grub/grub.cfg", "/boot/grub/loopback.cfg")
BIOS_IMAGE = "/boot/grub/i386-pc/eltorito.img"
DISK_INFO = "/.disk/info"
BUILD_INFO = "/alga/build-info.json"
_VOLUME_ID = re.compile(r"^Ubuntu-Server (?P<release>\d+\.\d+(\.\d+)?) LTS (?P<arch>\S+)$")


@dataclass
class Layout:
    volume_id: str
    release: str | None  # e.g. "24.04.1", from the volume id
    arch: str | None
    disk_info: str | None
    grub_configs: dict[str, str]  # iso path -> text, for the configs present
    bios_image: tuple[int, int] | None  # (block, length)
    boot_entries: list[dl.BootEntry]
    mbr: bytes
    mbr_entries: list[dl.MbrEntry]
    gpt: tuple[dl.GptHeader, list[dl.GptPartition]] | None
    gpt_error: str | None
    image_size: int
    build_info: dict | None
    el_torito_error: str | None

    @property
    def esp(self) -> dl.GptPartition | None:
        parts = self.gpt[1] if self.gpt else []
        return next((p for p in parts if p.type_guid == dl.ESP_TYPE), None)

    @property
    def bios_entry(self) -> dl.BootEntry | None:
        return next((e for e in self.boot_entries if e.platform == dl.BIOS_PLATFORM), None)

    @property
    def efi_entry(self) -> dl.BootEntry | None:
        return next((e for e in self.boot_entries if e.platform == dl.EFI_PLATFORM), None)

    def casper_lines(self) -> dict[str, list]:
        return {path: casper_kernel_lines(text) for path, text in self.grub_configs.items()}


def read_layout(iso: IsoImage) -> Layout:
    fp = iso.fp
    match = _VOLUME_ID.match(iso.volume_id)
    disk_info = iso.read(DISK_INFO)
    configs = {p: t.decode("utf-8", "replace") for p in GRUB_CONFIGS
               if (t := iso.read(p)) is not None}
    try:
        entries, el_torito_error = dl.read_boot_catalog(fp), None
    except dl.LayoutError as exc:
        entries, el_torito_error = [], str(exc)
    mbr, mbr_entries = dl.read_mbr(fp)
    try:
        gpt, gpt_error = dl.read_gpt(fp, 1), None
    except dl.LayoutError as exc:
        gpt, gpt_error = None, str(exc)
    fp.seek(0, 2)
    return Layout(
        volume_id=iso.volume_id,
        release=match["release"] if match else None,
        arch=match["arch"] if match else None,
        disk_info=disk_info.decode("utf-8", "replace").strip() if disk_info else None,
        grub_configs=configs,
        bios_image=iso.extent(BIOS_IMAGE),
        boot_entries=entries,
        mbr=mbr,
        mbr_entries=mbr_entries,
        gpt=gpt,
        gpt_error=gpt_error,
        image_size=fp.tell(),
        build_info=_build_info(iso),
        el_torito_error=el_torito_error,
    )


def _build_info(iso: IsoImage) -> dict | None:
    data = iso.read(BUILD_INFO)
    try:
        return json.loads(data) if data else None
    except ValueError:  # a damaged file; verify's md5sum check names it
        return None


def describe(path: Path) -> dict:
    """The `isobuild inspect` document."""
    with IsoImage(path) as iso:
        layout = read_layout(iso)
    esp = layout.esp
    return {
        "path": str(path),
        "size": layout.image_size,
        "volume_id": layout.volume_id,
        "release": layout.release,
        "arch": layout.arch,
        "disk_info": layout.disk_info,
        "boot": {
            "el_torito": [{"platform": "uefi" if e.platform == dl.EFI_PLATFORM else "bios",
                           "load_rba": e.load_rba, "sectors": e.sector_count}
                          for e in layout.boot_entries],
            "mbr_grub_pointer": dl.mbr_grub_pointer(layout.mbr),
            "gpt": None if layout.gpt is None else [
                {"name": p.name, "type": str(p.type_guid), "first_lba": p.first_lba,
                 "last_lba": p.last_lba} for p in layout.gpt[1]],
            "esp_bytes": esp.sectors * dl.SECTOR if esp else None,
        },
        "casper_entries": {path: [{"kernel": k.kernel, "before": k.before, "after": k.after}
                                  for k in lines]
                           for path, lines in layout.casper_lines().items()},
        "alga_appliance": layout.build_info,
    }
