"""On-disk boot structures of a hybrid ISO: MBR, GPT, El Torito and GRUB2 boot info.

These are the structures that Ubuntu's xorriso run creates and that pycdlib does not
preserve, so both the writer (`hybrid.py`) and the verifier (`verify.py`) read and
encode them here and nowhere else.
"""

import struct
import uuid
import zlib
from dataclasses import dataclass, replace
from typing import BinaryIO

SECTOR = 512
BLOCK = 2048
SYSTEM_AREA = 16 * BLOCK
MBR_CODE_SIZE = 0x1B0  # GRUB's boot_hybrid.img code, before the 0x1b0 pointer
MBR_GRUB_POINTER = 0x1B0  # u64: 512-byte LBA of the core image (eltorito block * 4 + 4)
GRUB_BOOT_INFO_OFFSET = 2548  # u64 in eltorito.img: eltorito block * 4 + 5
BOOT_INFO_TABLE_OFFSET = 8
PROTECTIVE_TYPE = 0xEE
EFI_PLATFORM = 0xEF
BIOS_PLATFORM = 0x00
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
BASIC_DATA_TYPE = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
GPT_SIGNATURE = b"EFI PART"
GPT_HEADER_SIZE = 92


class LayoutError(Exception):
    """A boot structure is missing or inconsistent."""


def read_at(fp: BinaryIO, offset: int, size: int) -> bytes:
    fp.seek(offset)
    data = fp.read(size)
    if len(data) != size:
        raise LayoutError(f"image ends before byte {offset + size}")
    return data


# --- MBR -------------------------------------------------------------------------


@dataclass(frozen=True)
class MbrEntry:
    status: int
    type: int
    first_lba: int
    sectors: int


def _chs(lba: int) -> bytes:
    """CHS address in the 64 heads x 32 sectors geometry xorriso uses; clamped past 1023."""
    cylinder, rest = divmod(lba, 64 * 32)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, 32)
    sector += 1
    return bytes([head, sector | ((cylinder >> 2) & 0xC0), cylinder & 0xFF])


def encode_mbr_entry(entry: MbrEntry) -> bytes:
    if entry.sectors == 0 and entry.type == 0 and entry.status == 0:
        return bytes(16)
    last = entry.first_lba + max(entry.sectors, 1) - 1
    return (
        bytes([entry.status]) + _chs(entry.first_lba) + bytes([entry.type]) + _chs(last)
        + struct.pack("<II", entry.first_lba, entry.sectors)
    )


def read_mbr(fp: BinaryIO) -> tuple[bytes, list[MbrEntry]]:
    """Return the first 512 bytes and the four partition entries."""
    mbr = read_at(fp, 0, SECTOR)
    entries = []
    for i in range(4):
        raw = mbr[446 + 16 * i: 462 + 16 * i]
        first_lba, sectors = struct.unpack_from("<II", raw, 8)
        entries.append(MbrEntry(raw[0], raw[4], first_lba, sectors))
    return mbr, entries


def mbr_grub_pointer(mbr: bytes) -> int:
    return struct.unpack_from("<Q", mbr, MBR_GRUB_POINTER)[0]


def encode_mbr(code: bytes, grub_pointer: int, disk_id: bytes, entries: list[MbrEntry]) -> bytes:
    body = code[:MBR_CODE_SIZE] + struct.pack("<Q", grub_pointer) + disk_id[:6]
    body += b"".join(encode_mbr_entry(e) for e in entries) + b"\x55\xaa"
    assert len(body) == SECTOR
    return body


# --- GPT -------------------------------------------------------------------------


@dataclass(frozen=True)
class GptPartition:
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int
    name: str

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1


@dataclass(frozen=True)
class GptHeader:
    current_lba: int
    backup_lba: int
    first_usable: int
    last_usable: int
    disk_guid: uuid.UUID
    entries_lba: int
    entry_count: int
    entry_size: int

    @property
    def entries_sectors(self) -> int:
        return -(-self.entry_count * self.entry_size // SECTOR)


def encode_gpt_entries(header: GptHeader, partitions: list[GptPartition]) -> bytes:
    table = bytearray(header.entry_count * header.entry_size)
    for i, part in enumerate(partitions):
        raw = struct.pack(
            "<16s16sQQQ72s", part.type_guid.bytes_le, part.unique_guid.bytes_le,
            part.first_lba, part.last_lba, part.attributes, part.name.encode("utf-16-le"),
        )
        table[i * header.entry_size: i * header.entry_size + len(raw)] = raw
    return bytes(table)


def encode_gpt_header(header: GptHeader, entries: bytes) -> bytes:
    def pack(crc: int) -> bytes:
        return struct.pack(
            "<8sIII4xQQQQ16sQIII", GPT_SIGNATURE, 0x00010000, GPT_HEADER_SIZE, crc,
            header.current_lba, header.backup_lba, header.first_usable, header.last_usable,
            header.disk_guid.bytes_le, header.entries_lba, header.entry_count,
            header.entry_size, zlib.crc32(entries),
        )

    raw = pack(zlib.crc32(pack(0)))
    return raw + bytes(SECTOR - len(raw))


def backup_header(primary: GptHeader, total_sectors: int) -> GptHeader:
    """The backup GPT header: last sector, entries just before it."""
    last = total_sectors - 1
    return replace(
        primary, current_lba=last, backup_lba=primary.current_lba,
        entries_lba=last - primary.entries_sectors,
    )


def read_gpt(fp: BinaryIO, lba: int) -> tuple[GptHeader, list[GptPartition]]:
    """Read and CRC-check the GPT header at `lba` and its partition entries."""
    raw = read_at(fp, lba * SECTOR, SECTOR)
    if raw[:8] != GPT_SIGNATURE:
        raise LayoutError(f"no GPT header at LBA {lba}")
    (_, _, size, header_crc, current, backup, first, last, disk, entries_lba, count,
     entry_size, entries_crc) = struct.unpack_from("<8sIII4xQQQQ16sQIII", raw)
    if zlib.crc32(raw[:16] + b"\0\0\0\0" + raw[20:size]) != header_crc:
        raise LayoutError(f"GPT header at LBA {lba} has a bad CRC")
    header = GptHeader(current, backup, first, last, uuid.UUID(bytes_le=disk), entries_lba,
                       count, entry_size)
    if current != lba:
        raise LayoutError(f"GPT header at LBA {lba} says it is at LBA {current}")
    table = read_at(fp, entries_lba * SECTOR, count * entry_size)
    if zlib.crc32(table) != entries_crc:
        raise LayoutError(f"GPT partition entries of the header at LBA {lba} have a bad CRC")
    partitions = []
    for i in range(count):
        type_le, unique_le, first_lba, last_lba, attrs, name = struct.unpack_from(
            "<16s16sQQQ72s", table, i * entry_size)
        if type_le != bytes(16):
            partitions.append(GptPartition(
                uuid.UUID(bytes_le=type_le), uuid.UUID(bytes_le=unique_le), first_lba, last_lba,
                attrs, name.decode("utf-16-le").rstrip("\0")))
    return header, partitions


# --- El Torito -------------------------------------------------------------------


@dataclass(frozen=True)
class BootEntry:
    platform: int
    bootable: bool
    media: int
    load_rba: int
    sector_count: int
    offset: int  # byte offset of the 32-byte entry in the image


def boot_catalog_block(fp: BinaryIO) -> int:
    """The boot catalog's block, from the Boot Record volume descriptor."""
    block = 17
    while True:
        vd = read_at(fp, block * BLOCK, BLOCK)
        if vd[1:6] != b"CD001" or vd[0] == 255:
            raise LayoutError("no El Torito boot record volume descriptor")
        if vd[0] == 0 and vd[7:30].rstrip(b"\0") == b"EL TORITO SPECIFICATION":
            return struct.unpack_from("<I", vd, 0x47)[0]
        block += 1


def read_boot_catalog(fp: BinaryIO) -> list[BootEntry]:
    """The default entry and every section entry, with the platform they belong to."""
    base = boot_catalog_block(fp) * BLOCK
    catalog = read_at(fp, base, BLOCK)
    validation = catalog[:32]
    if validation[0] != 1 or validation[30:32] != b"\x55\xaa":
        raise LayoutError("El Torito validation entry is malformed")
    if sum(struct.unpack("<16H", validation)) & 0xFFFF:
        raise LayoutError("El Torito validation entry checksum is wrong")
    entries = [_boot_entry(catalog, 32, validation[1], base)]
    offset = 64
    while offset < BLOCK and catalog[offset] in (0x90, 0x91):
        platform, count = catalog[offset + 1], struct.unpack_from("<H", catalog, offset + 2)[0]
        for i in range(count):
            entries.append(_boot_entry(catalog, offset + 32 * (i + 1), platform, base))
        if catalog[offset] == 0x91:
            break
        offset += 32 * (count + 1)
    return entries


def _boot_entry(catalog: bytes, offset: int, platform: int, base: int) -> BootEntry:
    indicator, media, _, _, _, count, rba = struct.unpack_from("<BBHBBHI", catalog, offset)
    return BootEntry(platform, indicator == 0x88, media, rba, count, base + offset)


def patch_boot_entry(fp: BinaryIO, entry: BootEntry, load_rba: int, sector_count: int) -> None:
    fp.seek(entry.offset + 6)
    fp.write(struct.pack("<HI", sector_count, load_rba))


# --- Boot info table and GRUB2 boot info ------------------------------------------


@dataclass(frozen=True)
class BootInfoTable:
    pvd_block: int
    file_block: int
    file_length: int
    checksum: int


def read_boot_info_table(image: bytes) -> BootInfoTable:
    return BootInfoTable(*struct.unpack_from("<IIII", image, BOOT_INFO_TABLE_OFFSET))


def boot_info_checksum(image: bytes) -> int:
    """Sum of the 32-bit words from byte 64 to the end, as mkisofs -boot-info-table does."""
    tail = image[64:] + bytes(-len(image[64:]) % 4)
    return sum(struct.unpack(f"<{len(tail) // 4}I", tail)) & 0xFFFFFFFF


def grub_boot_info(image: bytes) -> int:
    return struct.unpack_from("<Q", image, GRUB_BOOT_INFO_OFFSET)[0]


def with_boot_info(image: bytes, image_block: int) -> bytes:
    """eltorito.img as it must sit at `image_block`: its boot info table (as
    -boot-info-table writes it) and GRUB2 boot info (as --grub2-boot-info writes it)."""
    patched = bytearray(image)
    struct.pack_into("<Q", patched, GRUB_BOOT_INFO_OFFSET, image_block * 4 + 5)
    struct.pack_into("<III", patched, BOOT_INFO_TABLE_OFFSET, 16, image_block, len(image))
    struct.pack_into("<I", patched, BOOT_INFO_TABLE_OFFSET + 12, boot_info_checksum(patched))
    return bytes(patched)


# --- ISO 9660 volume descriptors -----------------------------------------------------


def volume_descriptor_blocks(fp: BinaryIO) -> list[tuple[int, int]]:
    """(block, type) of every volume descriptor up to the terminator."""
    found, block = [], 16
    while True:
        vd = read_at(fp, block * BLOCK, 8)
        if vd[1:6] != b"CD001":
            raise LayoutError(f"no ISO 9660 volume descriptor at block {block}")
        found.append((block, vd[0]))
        if vd[0] == 255:
            return found
        block += 1


def set_volume_space_size(fp: BinaryIO, blocks: int) -> None:
    """Set the primary descriptor's volume size; like xorriso, it spans the appended ESP."""
    for block, kind in volume_descriptor_blocks(fp):
        if kind == 1:
            fp.seek(block * BLOCK + 80)
            fp.write(struct.pack("<I", blocks) + struct.pack(">I", blocks))
