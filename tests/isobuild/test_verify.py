"""The verifier catches each broken structure, including a plain (unrepaired) pycdlib write."""

import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pycdlib
import pytest

from isobuild import disklayout as dl
from isobuild.image import IsoImage
from isobuild.layout import read_layout
from isobuild.verify import verify


def failed_checks(path: Path) -> set[str]:
    return {c["id"] for c in verify(path)["checks"] if not c["ok"]}


def broken_copy(appliance, tmp_path, patch) -> Path:
    copy = tmp_path / "broken.iso"
    shutil.copyfile(appliance.output, copy)
    with IsoImage(copy) as iso:
        layout = read_layout(iso)
    with open(copy, "r+b") as fp:
        patch(fp, layout)
    return copy


def test_good_output_passes_every_check(appliance):
    report = verify(appliance.output)
    assert report["ok"] and len(report["checks"]) == 13


def test_zeroed_system_area_is_caught(appliance, tmp_path):
    def zero(fp, layout):
        fp.seek(0)
        fp.write(bytes(dl.SYSTEM_AREA))
    assert {"mbr", "gpt", "esp", "efi-entry-matches-esp"} <= failed_checks(
        broken_copy(appliance, tmp_path, zero))


def test_unrepaired_pycdlib_write_is_caught(replica_iso, tmp_path):
    # What pycdlib alone produces from Ubuntu's layout, with the seed added.
    iso = pycdlib.PyCdlib()
    iso.open(str(replica_iso))
    iso.add_directory("/NOCLOUD", rr_name="nocloud", joliet_path="/nocloud")
    for name in ("user-data", "meta-data"):
        data = b"#cloud-config\nautoinstall:\n  version: 1\n"
        iso.add_fp(io.BytesIO(data), len(data), f"/NOCLOUD/{name.upper().replace('-', '_')}.;1",
                   rr_name=name, joliet_path=f"/nocloud/{name}")
    unrepaired = tmp_path / "pycdlib-only.iso"
    iso.write(str(unrepaired))
    iso.close()
    assert {"mbr", "gpt", "grub2-boot-info", "esp"} <= failed_checks(unrepaired)


def test_corrupt_backup_gpt_is_caught(appliance, tmp_path):
    def corrupt(fp, layout):
        fp.seek(layout.image_size - dl.SECTOR + 40)
        fp.write(b"\xff")
    assert failed_checks(broken_copy(appliance, tmp_path, corrupt)) == {"gpt"}


def test_stale_grub2_boot_info_is_caught(appliance, tmp_path):
    def stale(fp, layout):
        fp.seek(layout.bios_image[0] * dl.BLOCK + dl.GRUB_BOOT_INFO_OFFSET)
        fp.write(struct.pack("<Q", 5))
    assert {"grub2-boot-info", "boot-info-table"} <= failed_checks(
        broken_copy(appliance, tmp_path, stale))


def test_efi_entry_not_on_the_esp_is_caught(appliance, tmp_path):
    def misdirect(fp, layout):
        dl.patch_boot_entry(fp, layout.efi_entry, layout.efi_entry.load_rba - 1,
                            layout.efi_entry.sector_count)
    assert failed_checks(broken_copy(appliance, tmp_path, misdirect)) == {
        "efi-entry-matches-esp"}


def overwrite_in_file(appliance, tmp_path, path: str, old: bytes, new: bytes) -> Path:
    """A copy of the output with bytes of one file changed in place (same length)."""
    def edit(fp, layout):
        with IsoImage(appliance.output) as iso:
            block, data = iso.extent(path)[0], iso.read(path)
        assert len(old) == len(new) and data.count(old) == 1
        fp.seek(block * dl.BLOCK)
        fp.write(data.replace(old, new))
    return broken_copy(appliance, tmp_path, edit)


def test_changed_file_without_md5_update_is_caught(appliance, tmp_path):
    assert failed_checks(overwrite_in_file(appliance, tmp_path, "/alga/VERSION", b"0.", b"9.")
                         ) == {"md5sum"}


def test_invalid_seed_is_caught(appliance, tmp_path):
    # subiquity's schema allows only reboot or poweroff.
    broken = overwrite_in_file(appliance, tmp_path, "/nocloud/user-data",
                               b"shutdown: reboot", b'shutdown: "halt"')
    assert failed_checks(broken) == {"seed", "md5sum"}


def test_menu_without_the_installed_disk_entry_is_caught(appliance, tmp_path):
    # The search for the marker disabled: a second boot of the ISO would reinstall.
    broken = overwrite_in_file(appliance, tmp_path, "/boot/grub/grub.cfg",
                               b"/boot/alga-appliance-installed", b"/boot/alga-appliance-xxxxxxxxx")
    assert failed_checks(broken) == {"install-menu", "md5sum"}


def test_install_entry_without_the_warning_is_caught(appliance, tmp_path):
    broken = overwrite_in_file(appliance, tmp_path, "/boot/grub/grub.cfg",
                               b'"Install Alga appliance (erases the disk)"',
                               b'"Install Alga appliance                  "')
    report = verify(broken)
    [menu] = [c for c in report["checks"] if c["id"] == "install-menu"]
    assert not menu["ok"] and "'Install Alga appliance                  '" in menu["detail"]


def test_plain_ubuntu_iso_lacks_only_the_appliance_parts(replica_iso):
    assert failed_checks(replica_iso) == {"autoinstall-args", "install-menu", "seed"}


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_exit_codes_and_json(appliance, replica_iso, as_json):
    flags = ["--json"] if as_json else []
    good = subprocess.run([sys.executable, "-m", "isobuild", "verify", *flags,
                           str(appliance.output)], capture_output=True, text=True)
    bad = subprocess.run([sys.executable, "-m", "isobuild", "verify", *flags, str(replica_iso)],
                         capture_output=True, text=True)
    assert (good.returncode, bad.returncode) == (0, 1)
    if as_json:
        report = json.loads(good.stdout)
        assert report["ok"] is True
        assert {"id", "ok", "detail"} == set(report["checks"][0])
        assert json.loads(bad.stdout)["ok"] is False
    else:
        assert good.stdout.endswith("verified\n")
        assert "FAIL autoinstall-args" in bad.stdout


def test_not_an_iso_fails_cleanly(tmp_path):
    junk = tmp_path / "junk.iso"
    junk.write_bytes(bytes(100_000))
    report = verify(junk)
    assert not report["ok"] and report["checks"][0]["id"] == "iso9660"
