"""isobuild build on the replica: the output, the manifest, reproducibility, idempotency."""

import json
import os
import pty
import subprocess
import sys

from support.base import sha256
from support.images import SSH_KEY, TEST_OPTIONS

from host.core.validation import validate
from host.core.version import __version__
from isobuild import disklayout as dl
from isobuild import grubcfg, seed
from isobuild.build import MANIFEST_SCHEMA
from isobuild.image import IsoImage
from isobuild.layout import describe, read_layout
from isobuild.options import BuildOptions
from isobuild.verify import verify

ISOBUILD = [sys.executable, "-m", "isobuild"]


def test_output_verifies_in_full_and_manifest_describes_it(appliance, replica_iso):
    report = verify(appliance.output)  # every md5sum.txt entry, not just the edited ones
    assert report["ok"], report
    manifest = appliance.manifest
    validate(manifest, MANIFEST_SCHEMA, name="manifest", source="test")
    assert manifest["output"]["sha256"] == sha256(appliance.output)
    assert manifest["output"]["size"] == appliance.output.stat().st_size
    assert manifest["base_iso"] == {"name": replica_iso.name, "sha256": sha256(replica_iso)}
    assert manifest["kernel_arguments"] == ["autoinstall", "ds=nocloud;s=/cdrom/nocloud/"]
    assert appliance.manifest_path.name == "alga.iso.manifest.json"
    assert {"/nocloud/user-data", "/nocloud/meta-data", "/boot/grub/grub.cfg",
            "/boot/grub/loopback.cfg", "/md5sum.txt", "/alga/VERSION",
            "/alga/host/cli.py"} <= set(manifest["files_added"])


def test_seed_payload_and_untouched_parts(appliance, replica_iso):
    with IsoImage(appliance.output) as iso, IsoImage(replica_iso) as base:
        autoinstall = seed.parse_user_data(iso.read("/nocloud/user-data"))
        assert autoinstall["user-data"]["users"][0]["ssh_authorized_keys"] == [SSH_KEY]
        assert iso.read("/nocloud/meta-data") == seed.META_DATA
        assert iso.read("/alga/VERSION") == f"{__version__}\n".encode()
        assert iso.read("/alga/vendor/click/__init__.py") is not None
        assert iso.read("/alga/schemas/external/subiquity-autoinstall-24.04.json") is not None
        wrapper = iso.record("/alga/bin/alga-appliance")
        assert wrapper.rock_ridge.get_file_mode() & 0o777 == 0o755
        assert iso.read("/alga/host/__pycache__/cli.cpython-311.pyc") is None
        # What the build must not touch: /.disk/info, the casper files, the ubuntu symlink.
        for path in ("/.disk/info", "/casper/vmlinuz", "/casper/initrd",
                     "/EFI/boot/bootx64.efi"):
            assert iso.read(path) == base.read(path), path
        assert iso.record("/ubuntu").rock_ridge.symlink_path() == b"."
        # The ESP is carried over byte for byte.
        new, old = read_layout(iso), read_layout(base)
        assert (dl.read_at(iso.fp, new.esp.first_lba * 512, new.esp.sectors * 512)
                == dl.read_at(base.fp, old.esp.first_lba * 512, old.esp.sectors * 512))
        config = iso.read("/boot/grub/grub.cfg").decode()
        assert "set timeout=1\n" in config
        assert len(grubcfg.casper_kernel_lines(config)) == 2  # default and HWE entries


def test_base_iso_is_never_modified(replica_iso, build_appliance):
    before, mtime = sha256(replica_iso), replica_iso.stat().st_mtime_ns
    build_appliance(replica_iso, name="again.iso")
    assert sha256(replica_iso) == before and replica_iso.stat().st_mtime_ns == mtime


def test_same_inputs_give_a_byte_identical_iso(replica_iso, build_appliance, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    first = build_appliance(replica_iso, name="first.iso")
    monkeypatch.setenv("TZ", "America/New_York")  # local time must not leak into the image
    second = build_appliance(replica_iso, name="second.iso")
    assert first.output.read_bytes() == second.output.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225601")
    third = build_appliance(replica_iso, name="third.iso")
    assert third.manifest["output"]["sha256"] != first.manifest["output"]["sha256"]


def test_rebuilding_the_output_adds_the_arguments_once(appliance, build_appliance):
    again = build_appliance(appliance.output, name="rebuilt.iso")
    assert verify(again.output)["ok"]
    info = describe(again.output)
    for lines in info["casper_entries"].values():
        for line in lines:
            assert line["before"].count("autoinstall") == 1
            assert sum(a.startswith("ds=nocloud") for a in line["before"]) == 1
    # The ESP and padding are re-appended, not carried along twice.
    assert abs(again.output.stat().st_size - appliance.output.stat().st_size) < 64 * 2048


def test_base_without_joliet_or_recognisable_boot_info_table(replica_iso, build_appliance,
                                                            tmp_path):
    # An xorriso replay of Ubuntu's layout, Joliet off: pycdlib does not recognise its
    # boot info table (it names the session's PVD), so the rebuild must write it whole.
    base = tmp_path / "no-joliet.iso"
    subprocess.run(["xorriso", "-indev", str(replica_iso), "-outdev", str(base), "-joliet",
                    "off", "-boot_image", "any", "replay", "-commit"], check=True,
                   capture_output=True)
    with IsoImage(base) as iso:
        assert not iso.has_joliet
    result = build_appliance(base, name="from-no-joliet.iso")
    assert verify(result.output)["ok"]


def test_serial_console_build(replica_iso, build_appliance):
    result = build_appliance(replica_iso, BuildOptions(serial_console=True), name="serial.iso")
    assert verify(result.output)["ok"]
    with IsoImage(result.output) as iso:
        config = iso.read("/boot/grub/grub.cfg").decode()
    assert "serial --unit=0 --speed=115200\n" in config
    assert all(line.after == ["console=ttyS0,115200"]
               for line in grubcfg.casper_kernel_lines(config))
    assert result.manifest["kernel_arguments"][-1] == "console=ttyS0,115200"


def test_inspect_names_the_alga_build(appliance, replica_iso):
    info = describe(appliance.output)
    assert info["release"] == "24.04.1" and info["arch"] == "amd64"
    assert info["alga_appliance"]["version"] == __version__
    assert describe(replica_iso)["alga_appliance"] is None
    out = subprocess.run([*ISOBUILD, "inspect", str(appliance.output)], capture_output=True,
                         text=True, check=True).stdout
    assert f"appliance ISO, version {__version__}" in out
    assert "Ubuntu-Server 24.04.1 LTS amd64" in out


def test_cli_prints_only_a_summary_when_not_on_a_terminal(replica_iso, tmp_path):
    output = tmp_path / "cli.iso"
    release_source = "https://github.com/Nine-Minds/alga-psa"
    run = subprocess.run([*ISOBUILD, "build", "--base-iso", str(replica_iso), "--output",
                          str(output), "--ssh-key", SSH_KEY, "--release-source", release_source],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and "\r" not in run.stdout
    assert run.stdout.startswith(f"built {output} (")
    assert f"  releases {release_source}\n" in run.stdout
    assert f"manifest {output}.manifest.json" in run.stdout
    with IsoImage(output) as iso:
        assert json.loads(iso.read("/alga/release-source.json")) == {
            "release_source": release_source}


def test_cli_shows_byte_progress_on_a_terminal(replica_iso, tmp_path):
    output = tmp_path / "tty.iso"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [*ISOBUILD, "build", "--base-iso", str(replica_iso),
                                  "--output", str(output)])
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    screen = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert f"Writing {output.name}: " in screen and " MiB (100%)" in screen
    assert "Verifying the written image" in screen


def test_default_options_build(replica_iso, build_appliance):
    result = build_appliance(replica_iso, BuildOptions(), name="defaults.iso")
    assert result.manifest["options"] == BuildOptions().as_document()
    assert result.manifest["options"] != TEST_OPTIONS.as_document()
