"""Just enough of FAT12/16/32 to confirm that the EFI System Partition holds a loader.

UEFI firmware boots removable media from `/EFI/BOOT/BOOTX64.EFI` on a FAT ESP; the
verifier checks for exactly that, so this reads boot sectors, FATs and 8.3 directory
entries and nothing more.
"""

import struct
from dataclasses import dataclass


class FatError(Exception):
    """The image is not a FAT file system we can read."""


@dataclass(frozen=True)
class _Volume:
    image: bytes
    bytes_per_sector: int
    sectors_per_cluster: int
    fat_offset: int
    fat_bits: int
    root_dir_offset: int
    root_dir_size: int
    root_cluster: int
    data_offset: int

    @property
    def cluster_size(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster


def _volume(image: bytes) -> _Volume:
    if len(image) < 512 or image[510:512] != b"\x55\xaa":
        raise FatError("no boot sector signature")
    (bps, spc, reserved, fats, root_entries, total16, _, fat_size16) = struct.unpack_from(
        "<HBHBHHBH", image, 11)
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or fats == 0:
        raise FatError("boot sector does not describe a FAT file system")
    total = total16 or struct.unpack_from("<I", image, 32)[0]
    fat_size = fat_size16 or struct.unpack_from("<I", image, 36)[0]
    root_dir_size = root_entries * 32
    root_dir_offset = (reserved + fats * fat_size) * bps
    data_offset = root_dir_offset + -(-root_dir_size // bps) * bps
    clusters = (total * bps - data_offset) // (bps * spc)
    # The FAT type follows from the cluster count alone (Microsoft's FAT specification).
    fat_bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    root_cluster = struct.unpack_from("<I", image, 44)[0] if fat_bits == 32 else 0
    return _Volume(image, bps, spc, reserved * bps, fat_bits, root_dir_offset, root_dir_size,
                   root_cluster, data_offset)


def _next_cluster(vol: _Volume, cluster: int) -> int:
    if vol.fat_bits == 12:
        raw = struct.unpack_from("<H", vol.image, vol.fat_offset + cluster * 3 // 2)[0]
        return (raw >> 4) if cluster & 1 else (raw & 0xFFF)
    if vol.fat_bits == 16:
        return struct.unpack_from("<H", vol.image, vol.fat_offset + cluster * 2)[0]
    return struct.unpack_from("<I", vol.image, vol.fat_offset + cluster * 4)[0] & 0x0FFFFFFF


def _chain(vol: _Volume, cluster: int) -> bytes:
    end = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[vol.fat_bits]
    data, seen = bytearray(), set()
    while 2 <= cluster < end and cluster not in seen:
        seen.add(cluster)
        start = vol.data_offset + (cluster - 2) * vol.cluster_size
        data += vol.image[start:start + vol.cluster_size]
        cluster = _next_cluster(vol, cluster)
    return bytes(data)


def _entries(directory: bytes):
    for offset in range(0, len(directory) - 31, 32):
        entry = directory[offset:offset + 32]
        if entry[0] == 0:
            return
        if entry[0] == 0xE5 or entry[11] == 0x0F:  # deleted, or a long-name fragment
            continue
        name = entry[0:8].decode("ascii", "replace").rstrip()
        ext = entry[8:11].decode("ascii", "replace").rstrip()
        cluster = struct.unpack_from("<H", entry, 26)[0] | (
            struct.unpack_from("<H", entry, 20)[0] << 16)
        size = struct.unpack_from("<I", entry, 28)[0]
        yield (f"{name}.{ext}" if ext else name).upper(), entry[11], cluster, size


def file_size(image: bytes, path: str) -> int | None:
    """Size of the file at `path` (8.3 names, any case), or None if it is not there."""
    vol = _volume(image)
    if vol.fat_bits == 32:
        directory = _chain(vol, vol.root_cluster)
    else:
        directory = image[vol.root_dir_offset:vol.root_dir_offset + vol.root_dir_size]
    parts = [p.upper() for p in path.strip("/").split("/")]
    for depth, part in enumerate(parts):
        match = next((e for e in _entries(directory) if e[0] == part), None)
        if match is None:
            return None
        _, attributes, cluster, size = match
        is_dir = bool(attributes & 0x10)
        if depth == len(parts) - 1:
            return None if is_dir else size
        if not is_dir:
            return None
        directory = _chain(vol, cluster)
    return None
