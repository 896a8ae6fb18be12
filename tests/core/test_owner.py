"""The owner record of a running operation, against real processes: it is alive while its
process runs, and gone once it is killed, when its pid names a process started at another
time (a reused pid), or when it ran in another boot."""

import signal
import subprocess
from pathlib import Path

import pytest

from host.core import runlock


@pytest.fixture
def process():
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()


def test_a_running_process_is_alive_and_recorded_with_its_start_and_boot(process):
    record = runlock.owner(process.pid)
    assert record["pid"] == process.pid and record["pid_started"] > 0
    assert record["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert runlock.alive(record)
    assert runlock.alive(runlock.owner())  # this process


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_process_is_gone(process, signum):
    record = runlock.owner(process.pid)
    process.send_signal(signum)
    process.wait()
    assert not runlock.alive(record)


def test_a_killed_process_not_yet_reaped_is_gone(process):
    record = runlock.owner(process.pid)
    process.send_signal(signal.SIGKILL)
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z":
        pass  # until the kernel has made it a zombie: the pid exists, unreaped
    assert not runlock.alive(record)


def test_a_reused_pid_with_another_start_time_is_not_the_owner(process):
    record = runlock.owner(process.pid)
    assert not runlock.alive({**record, "pid_started": record["pid_started"] - 1})


def test_an_owner_from_another_boot_is_gone(process):
    record = runlock.owner(process.pid)
    assert not runlock.alive({**record, "boot_id": "00000000-0000-0000-0000-000000000000"})


def test_no_owner_recorded_names_nobody():
    assert not runlock.alive(None)


def test_a_process_whose_start_time_is_hidden_counts_by_its_pid(process, monkeypatch):
    """The web service runs with ProtectProc=invisible: root's /proc entries are hidden, but
    whether the pid exists is still known."""
    record = runlock.owner(process.pid)
    monkeypatch.setattr(runlock, "_stat", lambda pid: None)
    assert runlock.alive(record)
    process.kill()
    process.wait()
    assert not runlock.alive(record)


def test_the_start_time_is_read_past_a_command_with_spaces_and_parentheses(tmp_path):
    odd = tmp_path / "a) b (c"
    odd.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(odd), "60"])
    try:
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        assert runlock.start_time(child.pid) == int(stat.rsplit(") ", 1)[1].split()[19])
        assert runlock.alive(runlock.owner(child.pid))
    finally:
        child.kill()
        child.wait()
