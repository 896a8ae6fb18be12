"""systemd units: `systemd-analyze verify` on every unit, in a throw-away root laid out as
the ISO's late-commands lay out the appliance."""

import shutil
import subprocess
from pathlib import Path

import pytest
from support.base import ROOT

from host.core import paths

UNITS = sorted(p for p in (ROOT / "units").iterdir()
               if p.suffix in (".service", ".target", ".path", ".timer", ".socket"))
DROP_INS = sorted((ROOT / "units").glob("*.d/*.conf"))


@pytest.fixture(scope="module")
def appliance_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    # systemd's own units (sysinit.target, network-online.target, ...) that ours order on.
    shutil.copytree(Path("/usr/lib/systemd/system"), root / "usr/lib/systemd/system",
                    symlinks=True)
    unit_dir = root / paths.SYSTEMD_UNIT_DIR.lstrip("/")
    unit_dir.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, unit_dir / unit.name)
    for drop_in in DROP_INS:
        (unit_dir / drop_in.parent.name).mkdir(exist_ok=True)
        shutil.copy(drop_in, unit_dir / drop_in.parent.name / drop_in.name)
    cli = root / paths.CLI_LINK.lstrip("/")
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    for directory in (paths.STATE_DIR, paths.LOG_DIR, paths.CONFIG_DIR):
        (root / directory.lstrip("/")).mkdir(parents=True)
    return root


def test_there_are_units():
    assert {u.name for u in UNITS} >= {"alga-appliance-setup.target",
                                       "alga-appliance-phase-preflight.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies(appliance_root, unit):
    unit_dir = appliance_root / paths.SYSTEMD_UNIT_DIR.lstrip("/")
    name = unit.name
    if name.endswith("@.service"):  # a template verifies as the instance enabled (tty1)
        name = name.replace("@.", "@tty1.")
        (unit_dir / name).unlink(missing_ok=True)
        (unit_dir / name).symlink_to(unit.name)
    run = subprocess.run(["systemd-analyze", "verify", f"--root={appliance_root}",
                          str(unit_dir / name)], capture_output=True, text=True)
    problems = [line for line in run.stderr.splitlines()
                if "alga-appliance" in line or unit.name in line]
    assert run.returncode == 0 and not problems, run.stderr


@pytest.mark.parametrize("drop_in", DROP_INS, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_drop_in_verifies_with_the_unit_it_changes(appliance_root, drop_in):
    unit = drop_in.parent.name.removesuffix(".d")
    for line in drop_in.read_text().splitlines():  # the programs it runs, from this host
        if line.startswith("ExecStart=/"):
            program = line.removeprefix("ExecStart=").split()[0]
            (appliance_root / program.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(program, appliance_root / program.lstrip("/"))
    # verify reads the drop-in: a program it names that is missing fails it.
    run = subprocess.run(["systemd-analyze", "verify", f"--root={appliance_root}", unit],
                         capture_output=True, text=True)
    problems = [line for line in run.stderr.splitlines() if unit in line]
    assert run.returncode == 0 and not problems, run.stderr
