"""Rebuild the hybrid boot structures that a pycdlib write drops.

pycdlib writes a correct ISO 9660 volume with a working BIOS El Torito entry, but zeros
the system area and loses the appended EFI System Partition. Ubuntu's image also boots
from disk and USB, under BIOS (GRUB's hybrid MBR) and UEFI (GPT + ESP). So, after the
write, this appends the base ISO's ESP unchanged and writes the MBR, both GPTs, the
El Torito EFI entry, the GRUB2 boot info and the volume size to match the new image.
"""

from dataclasses import replace
from typing import BinaryIO

from isobuild import disklayout as dl
from isobuild.layout import Layout

COPY_CHUNK = 1 << 20


def rebuild(out: BinaryIO, base: Layout, base_fp: BinaryIO, bios_image: tuple[int, int]) -> int:
    """Rebuild the structures in `out` (a fresh pycdlib write); return the image size.

    `bios_image` is (block, length) of eltorito.img in `out`.
    """
    bios_block = bios_image[0]
    header, base_parts = base.gpt
    esp = base.esp
    out.seek(0, 2)
    esp_offset = _round_up(out.tell(), dl.BLOCK)
    _copy(base_fp, esp.first_lba * dl.SECTOR, out, esp_offset, esp.sectors * dl.SECTOR)
    esp_lba = esp_offset // dl.SECTOR
    entries_end = _round_up(esp_offset + esp.sectors * dl.SECTOR, dl.BLOCK) // dl.SECTOR
    total = _round_up(entries_end + header.entries_sectors + 1, dl.BLOCK // dl.SECTOR)
    iso_part = next(p for p in base_parts if p.type_guid == dl.BASIC_DATA_TYPE)
    partitions = [
        replace(iso_part, last_lba=esp_lba - 1),
        replace(esp, first_lba=esp_lba, last_lba=esp_lba + esp.sectors - 1),
    ]
    primary = replace(header, current_lba=1, backup_lba=total - 1,
                      last_usable=total - 2 - header.entries_sectors)
    _write_gpts(out, primary, partitions, total)
    _write_mbr(out, base, bios_block, total)
    dl.patch_boot_entry(out, _efi_entry(out), esp_offset // dl.BLOCK, min(esp.sectors, 0xFFFF))
    _patch_boot_info(out, bios_image)
    dl.set_volume_space_size(out, total * dl.SECTOR // dl.BLOCK)
    return total * dl.SECTOR


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _copy(src: BinaryIO, src_offset: int, dst: BinaryIO, dst_offset: int, size: int) -> None:
    src.seek(src_offset)
    dst.seek(dst_offset)
    while size:
        chunk = src.read(min(size, COPY_CHUNK))
        if not chunk:
            raise dl.LayoutError("base ISO ends inside its EFI System Partition")
        dst.write(chunk)
        size -= len(chunk)


def _write_gpts(out: BinaryIO, primary: dl.GptHeader, parts: list, total: int) -> None:
    entries = dl.encode_gpt_entries(primary, parts)
    backup = dl.backup_header(primary, total)
    for header in (primary, backup):
        out.seek(header.entries_lba * dl.SECTOR)
        out.write(entries)
        out.seek(header.current_lba * dl.SECTOR)
        out.write(dl.encode_gpt_header(header, entries))


def _write_mbr(out: BinaryIO, base: Layout, bios_block: int, total: int) -> None:
    # Keep the base's entries (the protective 0xEE one and GRUB's dummy active one),
    # resizing the protective entry to the new image.
    entries = [replace(e, sectors=min(total - 1, 0xFFFFFFFF)) if e.type == dl.PROTECTIVE_TYPE
               else e for e in base.mbr_entries]
    out.seek(0)
    out.write(dl.encode_mbr(base.mbr[:dl.MBR_CODE_SIZE], bios_block * 4 + 4,
                            base.mbr[440:446], entries))


def _efi_entry(out: BinaryIO) -> dl.BootEntry:
    return next(e for e in dl.read_boot_catalog(out) if e.platform == dl.EFI_PLATFORM)


def _patch_boot_info(out: BinaryIO, bios_image: tuple[int, int]) -> None:
    # Written here in full rather than trusting pycdlib's re-patch, which it skips when
    # it does not recognise the base's table (e.g. after an xorriso replay).
    block, length = bios_image
    bios = next(e for e in dl.read_boot_catalog(out) if e.platform == dl.BIOS_PLATFORM)
    if bios.load_rba != block:
        raise dl.LayoutError("the BIOS El Torito entry does not point at eltorito.img")
    image = dl.with_boot_info(dl.read_at(out, block * dl.BLOCK, length), block)
    out.seek(block * dl.BLOCK)
    out.write(image)
