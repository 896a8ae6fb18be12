"""Every refusal names the problem and the fix, and leaves no output behind."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from support.base import sha256

ISOBUILD = [sys.executable, "-m", "isobuild"]


def run_build(base: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ISOBUILD, "build", "--base-iso", str(base), "--output", str(output),
                           *extra], capture_output=True, text=True)


def assert_refused(run: subprocess.CompletedProcess, output: Path, *phrases: str) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr
    for phrase in phrases:
        assert phrase in run.stderr, run.stderr
    assert "fix: " in run.stderr
    leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith(
        (output.name, f".{output.name}"))]
    assert leftovers == [], leftovers


def replay(base: Path, target: Path, *commands: str) -> Path:
    subprocess.run(["xorriso", "-indev", str(base), "-outdev", str(target), "-boot_image", "any",
                    "replay", *commands, "-commit"], check=True, capture_output=True)
    return target


def test_not_an_iso(tmp_path):
    junk = tmp_path / "ubuntu.iso"
    junk.write_bytes(b"\x7fELF" + bytes(70_000))
    assert_refused(run_build(junk, tmp_path / "out.iso"), tmp_path / "out.iso",
                   "is not an ISO 9660 image")


def test_missing_base(tmp_path):
    assert_refused(run_build(tmp_path / "nope.iso", tmp_path / "out.iso"),
                   tmp_path / "out.iso", "does not exist")


@pytest.mark.parametrize(("volume_id", "phrase"), [
    ("Ubuntu-Server 22.04.4 LTS amd64",
     "base ISO is Ubuntu Server 22.04.4; only 24.04.x is supported"),
    ("Ubuntu-Server 24.04.1 LTS arm64", "base ISO is for arm64; only amd64 is supported"),
    ("Ubuntu 24.04.1 LTS amd64", "is not an Ubuntu Server ISO"),
])
def test_wrong_release_architecture_or_flavour(replica_iso, tmp_path, volume_id, phrase):
    base = replay(replica_iso, tmp_path / "other.iso", "-volid", volume_id)
    assert_refused(run_build(base, tmp_path / "out.iso"), tmp_path / "out.iso", phrase)


def test_missing_grub_cfg(replica_iso, tmp_path):
    base = replay(replica_iso, tmp_path / "no-grub.iso", "-rm", "/boot/grub/grub.cfg", "--")
    assert_refused(run_build(base, tmp_path / "out.iso"), tmp_path / "out.iso",
                   "no /boot/grub/grub.cfg")


def test_grub_cfg_without_casper_entries(replica_iso, tmp_path):
    config = tmp_path / "grub.cfg"
    config.write_text("set timeout=30\nmenuentry 'Other' {\n\tlinux /boot/vmlinuz\n}\n")
    base = replay(replica_iso, tmp_path / "no-casper.iso", "-map", str(config),
                  "/boot/grub/grub.cfg")
    assert_refused(run_build(base, tmp_path / "out.iso"), tmp_path / "out.iso",
                   "has no `linux /casper/...` menu entry")


def test_casper_kernel_missing(replica_iso, tmp_path):
    base = replay(replica_iso, tmp_path / "no-kernel.iso", "-rm", "/casper/hwe-vmlinuz", "--")
    assert_refused(run_build(base, tmp_path / "out.iso"), tmp_path / "out.iso",
                   "boots /casper/hwe-vmlinuz, which is not on the ISO")


def test_iso_without_boot_records(replica_iso, tmp_path):
    base = replay(replica_iso, tmp_path / "no-boot.iso", "-boot_image", "any", "discard",
                  "-volid", "Ubuntu-Server 24.04.1 LTS amd64")
    assert_refused(run_build(base, tmp_path / "out.iso"), tmp_path / "out.iso",
                   "base ISO is not bootable as shipped")


def test_iso_without_efi_partition(replica_iso, tmp_path):
    base = replay(replica_iso, tmp_path / "no-esp.iso", "-boot_image", "any", "efi_path=",
                  "-boot_image", "grub", "partition_table=off")
    assert_refused(run_build(base, tmp_path / "out.iso"), tmp_path / "out.iso",
                   "lacks the GPT, EFI System Partition or UEFI El Torito entry")


def test_sha256_mismatch(replica_iso, tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(b'other').hexdigest()} *{replica_iso.name}\n")
    assert_refused(run_build(replica_iso, tmp_path / "out.iso", "--sha256sums", str(sums)),
                   tmp_path / "out.iso", f"{replica_iso.name} has sha256 {sha256(replica_iso)}",
                   "download it again")


def test_sha256sums_without_an_entry(replica_iso, tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{sha256(replica_iso)} *ubuntu-24.04.1-desktop-amd64.iso\n")
    assert_refused(run_build(replica_iso, tmp_path / "out.iso", "--sha256sums", str(sums)),
                   tmp_path / "out.iso", f"has no entry for {replica_iso.name}")


def test_matching_sha256sums_is_accepted(replica_iso, tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{sha256(replica_iso)} *{replica_iso.name}\n")
    run = run_build(replica_iso, tmp_path / "out.iso", "--sha256sums", str(sums))
    assert run.returncode == 0, run.stderr


def test_output_is_the_input(replica_iso):
    before = sha256(replica_iso)
    run = run_build(replica_iso, replica_iso)
    assert run.returncode != 0 and "is the base ISO itself" in run.stderr
    assert sha256(replica_iso) == before


def test_output_is_the_input_through_a_symlink(replica_iso, tmp_path):
    link = tmp_path / "link.iso"
    link.symlink_to(replica_iso)
    run = run_build(replica_iso, link)
    assert run.returncode != 0 and "is the base ISO itself" in run.stderr


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_not_enough_free_disk(replica_iso, small_disk):
    output = small_disk / "out.iso"
    assert_refused(run_build(replica_iso, output), output, "not enough free disk")


def test_malformed_release_source(replica_iso, tmp_path):
    run = run_build(replica_iso, tmp_path / "out.iso", "--release-source",
                    "oci://ghcr.io/Upper/Case")
    assert_refused(run, tmp_path / "out.iso", "/release_source", "oci://<registry>/<repository>")


def test_bad_options_file(replica_iso, tmp_path):
    options = tmp_path / "options.yaml"
    options.write_text("grub_timeout: soon\n")
    assert_refused(run_build(replica_iso, tmp_path / "out.iso", "--options", str(options)),
                   tmp_path / "out.iso", "/grub_timeout")
