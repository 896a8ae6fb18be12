"""Shared fixtures: replica Ubuntu ISOs built from Debian packages, and appliance ISOs."""

import contextlib
import hashlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import waitress
from hypothesis import HealthCheck, settings

# Timing is measured by the benchmarks, not asserted here: on 2 loaded cores (a VM booting
# beside the tests) neither an example's run time nor data generation speed says anything.
settings.register_profile("loaded-ci", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("loaded-ci")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "ci"))

import qemu_boot  # noqa: E402  (ci/ is not a package)
import replica  # noqa: E402
from netlab import TestCA  # noqa: E402

from host.core import paths  # noqa: E402
from isobuild.build import build  # noqa: E402
from isobuild.options import BuildOptions  # noqa: E402
from isobuild.progress import Progress  # noqa: E402

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests tests@alga"
# Short menu timeout so boots are quick; everything else as a release engineer would pass.
TEST_OPTIONS = BuildOptions(ssh_authorized_keys=(SSH_KEY,), grub_timeout=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def make_host_root(base: Path, *extra: str) -> Path:
    """A root prefix with the appliance's config, state and log directories (and `extra`)."""
    for directory in (paths.CONFIG_DIR, paths.STATE_DIR, paths.LOG_DIR, *extra):
        (base / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return base


@pytest.fixture(scope="session")
def ca() -> TestCA:
    """One test CA for every HTTPS server the tests start."""
    return TestCA()


@contextlib.contextmanager
def serve_wsgi(app) -> Iterator[str]:
    """`app` on a real waitress server on 127.0.0.1; yields its base URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)

    def run():
        # Closing the server from this thread ends its poll loop with EBADF: expected.
        with contextlib.suppress(OSError, ValueError):
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(5)
