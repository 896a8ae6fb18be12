"""Boot matrix: the appliance ISO under SeaBIOS and OVMF, from CD, disk and USB (qemu, TCG).

The replica's initrd prints the kernel command line and what it finds on the medium, so
each boot proves the autoinstall arguments arrive intact (the quoted `;` included) and
the seed and payload are readable from the booted medium. A plain pycdlib write is booted
too, from disk under SeaBIOS, where it must fail: that is what the hybrid rebuild fixes.
"""

import functools
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import pycdlib
import pytest
import qemu_boot

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
