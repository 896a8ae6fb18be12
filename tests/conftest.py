"""The suite's setup: the hypothesis profile, ci/ on sys.path, and the fixtures of
tests/support registered as plugins (tests/README.md maps them)."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Timing is measured by the benchmarks, not asserted here: on 2 loaded cores (a VM booting
# beside the tests) neither an example's run time nor data generation speed says anything.
settings.register_profile("loaded-ci", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("loaded-ci")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "ci"))  # ci/ is not a package: qemu_boot, replica, rootfs, ...

pytest_plugins = [
    "support.servers",
    "support.images",
    "support.cluster",
    "support.preflight_lab",
    "support.updates",
    "support.browser",
    "support.mirror",
    "support.apiserver",
    "support.flux_site",
]


@pytest.fixture(autouse=True)
def _root_prefix_restored():
    """The CLI's --root sets $ALGA_APPLIANCE_ROOT for the processes it starts; run in this
    process (CliRunner) it must not outlive the test, or a later test's host paths move."""
    from host.core.paths import ROOT_ENV
    before = os.environ.get(ROOT_ENV)
    yield
    if before is None:
        os.environ.pop(ROOT_ENV, None)
    else:
        os.environ[ROOT_ENV] = before
