"""The status snapshot's host facts (host/status.py `_host`): disk use of the data paths
against the warning threshold, memory, time sync, k3s; read with the real commands and
files where the machine has them (free, df, /proc/meminfo), the stand-ins where it cannot
(timedatectl, systemctl), and odd or missing answers never break the snapshot."""

import os
import shutil
import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.base import FAKES, make_host_root
from support.scenarios import assert_next_step_is_ours, collect, healthy, installed_with_app

from host import status
from host.core import paths
from host.core.validation import validate


@pytest.fixture
def lab(tmp_path, fake_cluster):
    make_host_root(tmp_path)
    with installed_with_app(tmp_path):
        yield tmp_path


def test_memory_and_disk_are_what_free_and_df_say(lab):
    host = collect(lab, healthy())["host"]
    total = int(subprocess.run(["free", "-b"], capture_output=True, text=True, check=True)
                .stdout.splitlines()[1].split()[1])
    assert host["memory"]["total_bytes"] == total
    assert 0 < host["memory"]["available_bytes"] <= total
    for disk in host["disk"]:
        measured = paths.on_host(disk["path"], lab)
        while not measured.exists():  # not made yet: the file system it will be on
            measured = measured.parent
        df = subprocess.run(["df", "--output=size,avail", "-B1", str(measured)],
                            capture_output=True, text=True, check=True).stdout.split()
        assert disk["total_bytes"] == int(df[2])
        assert abs(disk["used_percent"] - 100 * (1 - disk["free_bytes"] / disk["total_bytes"])) \
            < 0.1
    assert host["disk_warn_percent"] == status.DISK_WARN_PERCENT


def test_a_data_path_over_the_threshold_is_a_warning_blocker_with_a_next_step(
        lab, monkeypatch):
    monkeypatch.setattr(status, "DISK_WARN_PERCENT", 100)  # no disk is fuller than full
    calm = collect(lab, healthy())
    assert calm["rollup"]["state"] == "fully_healthy"
    assert not [b for b in calm["blockers"] if b["layer"] == "host"]
    monkeypatch.setattr(status, "DISK_WARN_PERCENT", 0)  # every disk in use is over it
    snapshot = collect(lab, healthy())
    disks = [b for b in snapshot["blockers"] if b["component"].startswith("disk ")]
    assert [b["component"] for b in disks] == ["disk /var/lib/rancher",
                                              "disk /var/lib/alga-appliance"]
    for blocker in disks:
        assert (blocker["severity"], blocker["layer"], blocker["blocks_login"]) == (
            "warning", "host", False)
        assert "% full (warning above 0 %)" in blocker["reason"]
        assert "support bundle" in blocker["next_action"]
        assert_next_step_is_ours(blocker["next_action"])
    # A warning: login and the rollup stand as they were.
    assert snapshot["rollup"]["state"] == "fully_healthy"
    assert all(tier["state"] == "ready" for tier in snapshot["tiers"].values())


@pytest.mark.parametrize(("knobs", "shown"), [
    ({"FAKE_NTP_SYNCHRONIZED": "yes"}, "synchronized"),
    ({"FAKE_NTP_SYNCHRONIZED": "no"}, "not synchronized"),
    ({"FAKE_NTP_SYNCHRONIZED": "maybe?"}, "unknown"),  # an answer it never gives
    ({"FAKE_TIMEDATECTL_FAIL": "1"}, "unknown"),  # no systemd on the bus
])
def test_time_sync_is_what_timedatectl_says_or_unknown(lab, monkeypatch, knobs, shown):
    for name, value in knobs.items():
        monkeypatch.setenv(name, value)
    assert collect(lab, healthy())["host"]["time_sync"] == shown


def test_missing_commands_and_proc_files_leave_a_valid_snapshot(lab, monkeypatch, tmp_path):
    bare = tmp_path / "bin"  # kubectl and k3s's stand-ins only: no timedatectl, no systemctl
    bare.mkdir()
    for name in ("kubectl", "k3s"):
        os.symlink(FAKES / name, bare / name)
    monkeypatch.setenv("PATH", f"{bare}:{os.path.dirname(shutil.which('sh'))}")
    monkeypatch.setattr(paths, "MEMINFO", str(tmp_path / "no-such-meminfo"))
    snapshot = collect(lab, healthy())
    host = snapshot["host"]
    assert (host["time_sync"], host["memory"]) == ("unknown", None)
    validate(snapshot, "status.schema.json", name="status", source="test")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=40),
    st.builds(lambda name, value, unit: f"{name}:{value} {unit}",
              st.sampled_from(["MemTotal", "MemAvailable", "MemFree"]),
              st.one_of(st.integers(-5, 10**12).map(str), st.text(max_size=6)),
              st.sampled_from(["kB", "MB", "", "kB extra"]))), max_size=8))
@example(lines=["MemTotal:² kB", "MemAvailable:1 kB"])  # a digit to isdigit(), not to int()
def test_any_meminfo_gives_both_numbers_or_none(tmp_path_factory, lines):
    meminfo = tmp_path_factory.mktemp("proc") / "meminfo"
    meminfo.write_text("\n".join(lines))
    original = paths.MEMINFO
    paths.MEMINFO = str(meminfo)
    try:
        found = status.memory()
    finally:
        paths.MEMINFO = original
    if found is not None:
        assert set(found) == {"total_bytes", "available_bytes"}
        assert all(isinstance(v, int) and v >= 0 for v in found.values())
