"""Boot matrix: the appliance ISO under SeaBIOS and OVMF, from CD, disk and USB (qemu, TCG).

The replica's initrd prints the kernel command line and what it finds on the medium, so
each boot proves the autoinstall arguments arrive intact (the quoted `;` included) and
the seed and payload are readable from the booted medium. A plain pycdlib write is booted
too, from disk under SeaBIOS, where it must fail: that is what the hybrid rebuild fixes.

The reinstall guard is booted from CD with a machine disk behind it (ci/installed_disk.py):
with the install marker, the menu boots that disk; without it, the same disk is passed by
and the countdown starts the install.
"""

import functools
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pycdlib
import pytest
import qemu_boot
from installed_disk import INSTALLED_LINE, build_installed_disk
from support.images import TEST_OPTIONS

from isobuild import grubcfg
from isobuild.image import IsoImage

pytestmark = pytest.mark.boot

MATRIX = [(firmware, medium) for firmware in ("bios", "uefi") for medium in ("cd", "disk", "usb")]
EXPECTED_DEVICE = {"cd": "/dev/sr0", "disk": "/dev/sda", "usb": "/dev/sda"}


@pytest.fixture(scope="module")
def unrepaired_iso(replica_iso, tmp_path_factory):
    iso = pycdlib.PyCdlib()
    iso.open(str(replica_iso))
    data = b"#cloud-config\n"
    iso.add_fp(io.BytesIO(data), len(data), "/SEED.;1", rr_name="seed", joliet_path="/seed")
    path = tmp_path_factory.mktemp("unrepaired") / "pycdlib-only.iso"
    iso.write(str(path))
    iso.close()
    return path


@pytest.fixture(scope="module")
def boots(appliance_boot, unrepaired_iso):
    """Every boot of the matrix plus the negative control, two at a time (2 cores)."""
    jobs = {key: functools.partial(appliance_boot, *key) for key in MATRIX}
    # SeaBIOS gives up on it within seconds, then waits forever: a short timeout suffices.
    jobs["unrepaired"] = functools.partial(qemu_boot.boot, unrepaired_iso, firmware="bios",
                                           medium="disk", timeout=40)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize(("firmware", "medium"), MATRIX)
def test_boot_reaches_the_installer_kernel_with_the_seed(boots, appliance, firmware, medium):
    result = boots[(firmware, medium)]
    assert result.done, result.log[-3000:]
    arguments = result.cmdline.split()
    cut = arguments.index("---")
    assert arguments[cut - 2:cut] == ["autoinstall", "ds=nocloud;s=/cdrom/nocloud/"]
    assert arguments[0] == "BOOT_IMAGE=/casper/vmlinuz"
    assert result.medium == EXPECTED_DEVICE[medium]
    assert (result.seed, result.payload) == ("present", "present")
    with IsoImage(appliance.output) as iso:
        user_data = iso.read("/nocloud/user-data")
    assert result.userdata_sha256 == hashlib.sha256(user_data).hexdigest()


def test_plain_pycdlib_write_does_not_boot_from_disk_under_bios(boots):
    result = boots["unrepaired"]
    assert "Boot failed: not a bootable disk" in result.log
    assert result.cmdline is None and not result.done


# --- the reinstall guard -----------------------------------------------------------------

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen_text(log: str) -> str:
    """The serial log without terminal escapes, which SeaBIOS puts even inside words."""
    return ESCAPE.sub("", log)


@pytest.fixture(scope="module")
def serial_appliance(replica_iso, build_appliance):
    """The appliance ISO with GRUB on the serial port too, so the log shows the menu."""
    return build_appliance(replica_iso, replace(TEST_OPTIONS, serial_console=True),
                           name="alga-serial.iso")


@pytest.fixture(scope="module")
def machine_disks(tmp_path_factory):
    """An installed appliance's disk, and the same disk without the marker: bootable too, so
    booting it by mistake would show."""
    work = tmp_path_factory.mktemp("machine-disks")
    return {"installed": build_installed_disk(work / "installed.img"),
            "unmarked": build_installed_disk(work / "unmarked.img", marked=False)}


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_a_machine_without_the_marker_counts_down_to_the_install(serial_appliance,
                                                                  machine_disks, firmware):
    result = qemu_boot.boot(serial_appliance.output, firmware=firmware, medium="cd",
                            disk=machine_disks["unmarked"], timeout=240)
    screen = screen_text(result.log)
    assert result.done, screen[-3000:]
    assert "autoinstall" in result.cmdline.split()
    assert f"*{grubcfg.INSTALL_TITLE}" in screen  # GRUB's * marks the highlighted default
    assert "The highlighted entry will be executed automatically in 1s." in screen
    assert f"Booting `{grubcfg.INSTALL_TITLE}'" in screen
    assert grubcfg.INSTALLED_TITLE not in screen and INSTALLED_LINE not in screen


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_a_machine_with_the_marker_boots_its_disk_not_the_installer(serial_appliance,
                                                                     machine_disks, firmware):
    result = qemu_boot.boot(serial_appliance.output, firmware=firmware, medium="cd",
                            disk=machine_disks["installed"], timeout=240)
    screen = screen_text(result.log)
    # The ISO's menu ran (the medium boots first), offered the install, defaulted to the disk.
    assert f"*{grubcfg.INSTALLED_TITLE}" in screen, screen[-3000:]
    assert f" {grubcfg.INSTALL_TITLE}" in screen
    # No closing quote: under SeaBIOS the disk's code may take over before it is drawn.
    assert f"Booting `{grubcfg.INSTALLED_TITLE}" in screen, screen[-3000:]
    assert INSTALLED_LINE in screen
    assert result.cmdline is None and not result.done  # the installer kernel never ran
