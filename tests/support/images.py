"""Fixtures that build images (pytest plugin): replica Ubuntu ISOs built from Debian
packages, appliance ISOs built from them, and their qemu boots; through the helpers in ci/."""

from pathlib import Path

import pytest
import qemu_boot  # ci/ (tests/conftest.py puts it on sys.path)
import replica

from isobuild.build import build
from isobuild.options import BuildOptions
from isobuild.progress import Progress

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests tests@alga"
# Short menu timeout so boots are quick; everything else as a release engineer would pass.
TEST_OPTIONS = BuildOptions(ssh_authorized_keys=(SSH_KEY,), grub_timeout=1)


class QuietProgress(Progress):
    def __init__(self):
        super().__init__(interactive=False)

    def summary(self, lines):
        pass


@pytest.fixture(scope="session")
def replica_iso(tmp_path_factory) -> Path:
    """A 24.04.1 live-server replica (HWE entry included), ~20 MB."""
    path = tmp_path_factory.mktemp("replica") / "ubuntu-24.04.1-live-server-amd64.iso"
    return replica.build_replica(path, hwe=True)


@pytest.fixture(scope="session")
def build_appliance(tmp_path_factory):
    def make(base: Path, options: BuildOptions = TEST_OPTIONS, name: str = "alga.iso",
             sha256sums: Path | None = None):
        output = tmp_path_factory.mktemp("appliance") / name
        return build(base, output, sha256sums, options, QuietProgress())
    return make


@pytest.fixture(scope="session")
def appliance(replica_iso, build_appliance):
    """The appliance ISO built from the replica, with its BuildResult."""
    return build_appliance(replica_iso)


@pytest.fixture(scope="session")
def appliance_boot(appliance):
    """boot(firmware, medium) -> qemu_boot.BootResult of the appliance ISO, each booted
    once per session: the boot matrix and the VM tier look at the same boots."""
    results: dict[tuple[str, str], qemu_boot.BootResult] = {}

    def boot(firmware: str, medium: str) -> qemu_boot.BootResult:
        if (firmware, medium) not in results:
            results[firmware, medium] = qemu_boot.boot(appliance.output, firmware=firmware,
                                                       medium=medium, timeout=180)
        return results[firmware, medium]
    return boot
