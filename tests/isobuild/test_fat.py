"""The FAT reader against real mkfs.vfat + mtools images of every FAT width."""

import subprocess

import pytest

from isobuild import fat


def make_fat(tmp_path, fat_bits: int, kib: int):
    image = tmp_path / f"fat{fat_bits}.img"
    subprocess.run(["mkfs.vfat", "-F", str(fat_bits), "-C", str(image), str(kib)], check=True,
                   capture_output=True)
    loader = tmp_path / "loader.efi"
    loader.write_bytes(b"MZ" + bytes(70_000))
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    for directory in ("::/EFI", "::/EFI/BOOT", "::/EFI/ubuntu"):
        subprocess.run(["mmd", "-i", str(image), directory], check=True, env=env)
    subprocess.run(["mcopy", "-i", str(image), str(loader), "::/EFI/BOOT/BOOTX64.EFI"],
                   check=True, env=env)
    subprocess.run(["mcopy", "-i", str(image), str(loader), "::/EFI/ubuntu/grubx64.efi"],
                   check=True, env=env)
    return image.read_bytes()


@pytest.mark.parametrize(("fat_bits", "kib"), [(12, 5072), (16, 20_000), (32, 40_000)])
def test_finds_the_removable_media_loader(tmp_path, fat_bits, kib):
    image = make_fat(tmp_path, fat_bits, kib)
    assert fat.file_size(image, "/EFI/BOOT/BOOTX64.EFI") == 70_002
    assert fat.file_size(image, "/efi/boot/bootx64.efi") == 70_002
    assert fat.file_size(image, "/EFI/ubuntu/grubx64.efi") == 70_002
    assert fat.file_size(image, "/EFI/BOOT/MMX64.EFI") is None
    assert fat.file_size(image, "/EFI/BOOT") is None  # a directory is not a loader


def test_non_fat_is_refused():
    with pytest.raises(fat.FatError):
        fat.file_size(bytes(4096), "/EFI/BOOT/BOOTX64.EFI")
