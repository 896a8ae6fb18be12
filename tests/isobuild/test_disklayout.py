"""MBR, GPT and boot-info encoders and readers, checked against each other and xorriso."""

import io
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isobuild import disklayout as dl


def gpt_image(total_sectors: int, partitions: list[dl.GptPartition]) -> io.BytesIO:
    header = dl.GptHeader(1, total_sectors - 1, 64, total_sectors - 64, uuid.uuid4(), 2, 248,
                          128)
    image = io.BytesIO(bytes(total_sectors * dl.SECTOR))
    entries = dl.encode_gpt_entries(header, partitions)
    for h in (header, dl.backup_header(header, total_sectors)):
        image.seek(h.entries_lba * dl.SECTOR)
        image.write(entries)
        image.seek(h.current_lba * dl.SECTOR)
        image.write(dl.encode_gpt_header(h, entries))
    return image


PARTS = [
    dl.GptPartition(dl.BASIC_DATA_TYPE, uuid.uuid4(), 64, 999, 1 << 60 | 1, "ISO9660"),
    dl.GptPartition(dl.ESP_TYPE, uuid.uuid4(), 1000, 1099, 0, "Appended2"),
]


def test_gpt_round_trip_primary_and_backup():
    image = gpt_image(1200, PARTS)
    header, parts = dl.read_gpt(image, 1)
    assert parts == PARTS
    backup, backup_parts = dl.read_gpt(image, 1199)
    assert backup == dl.backup_header(header, 1200) and backup_parts == PARTS


@pytest.mark.parametrize("offset", [512 + 30, 1024 + 5, 1199 * 512 + 40])
def test_any_flipped_byte_breaks_a_crc(offset):
    image = gpt_image(1200, PARTS)
    raw = bytearray(image.getvalue())
    raw[offset] ^= 0xFF
    lba = 1199 if offset > 1100 * 512 else 1
    with pytest.raises(dl.LayoutError, match="CRC"):
        dl.read_gpt(io.BytesIO(bytes(raw)), lba)


@given(st.binary(min_size=64, max_size=9000), st.integers(0, 1 << 20))
def test_boot_info_patch_writes_table_grub_info_and_checksum(tail, block):
    image = bytes(2600) + tail
    patched = dl.with_boot_info(image, block)
    assert dl.grub_boot_info(patched) == block * 4 + 5
    table = dl.read_boot_info_table(patched)
    assert (table.pvd_block, table.file_block, table.file_length) == (16, block, len(image))
    assert table.checksum == dl.boot_info_checksum(patched)
    assert patched[:8] == image[:8] and patched[24:2548] == image[24:2548]
    assert patched[2556:] == image[2556:]


def test_mbr_round_trip():
    entries = [dl.MbrEntry(0, 0xEE, 1, 13223), dl.MbrEntry(0x80, 0, 0, 1),
               dl.MbrEntry(0, 0, 0, 0), dl.MbrEntry(0, 0, 0, 0)]
    mbr = dl.encode_mbr(b"\xeb\x63" + bytes(430), 320, b"\x01\x02\x03\x04\0\0", entries)
    read, read_entries = dl.read_mbr(io.BytesIO(mbr))
    assert read_entries == entries and dl.mbr_grub_pointer(read) == 320
    # The CHS fields are xorriso's (64 heads x 32 sectors): entry 1 ends at 1d 08 06.
    assert mbr[446:462].hex() == "00000200ee1d080601000000a7330000"
