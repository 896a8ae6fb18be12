"""The setup lock: one setup phase or app update at a time, across processes; and the owner
record of a running operation, which says, even where the lock cannot be tried (the
unprivileged web service), whether the process behind it is still there."""

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from host.core import paths

BOOT_ID = "/proc/sys/kernel/random/boot_id"


class Busy(Exception):
    """Another setup phase or update holds the lock; the message names it, `holder` is what
    it wrote there (its pid)."""

    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(f"another setup or update is running ({holder}); wait for it to "
                         "finish, then retry")


@contextlib.contextmanager
def held(root: Path | None = None) -> Iterator[None]:
    """Hold the lock for the block, or raise Busy at once."""
    path = paths.on_host(paths.SETUP_LOCK, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fp:
        try:
            fcntl.flock(fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fp.seek(0)
            raise Busy(fp.read().strip() or "unknown") from exc
        fp.seek(0)
        fp.truncate()
        fp.write(f"pid {os.getpid()}\n")
        fp.flush()
        yield


def boot_id() -> str:
    with open(BOOT_ID, encoding="ascii") as fp:
        return fp.read().strip()


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 on, or None when it cannot be read (gone, or hidden
    from us by ProtectProc=)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fp:
            stat = fp.read()
    except OSError:
        return None
    # Field 2, the command, is in parentheses and may itself hold spaces and ')'.
    return stat[stat.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (field 22), or None when unknown."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def owner(pid: int | None = None) -> dict:
    """The owner record of process `pid` (default: this one) for a state file."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "pid_started": start_time(pid), "boot_id": boot_id()}


def alive(record: dict | None) -> bool:
    """Whether the process an owner record names still runs: same boot, the pid exists
    and, where its start time can be read, started when the record says (not a reused
    pid). A missing record (written before owners were recorded) names nobody."""
    if not record or record["boot_id"] != boot_id():
        return False
    try:
        os.kill(record["pid"], 0)  # signal 0: only asks whether the pid exists
    except OSError as exc:
        if exc.errno != errno.EPERM:  # EPERM: it exists, but is not ours to signal
            return False
    fields = _stat(record["pid"])
    if fields is None:  # hidden from us: its existence is all we can know
        return True
    if fields[0] in ("Z", "X"):  # it has exited; only its parent has not reaped it yet
        return False
    return record["pid_started"] is None or int(fields[19]) == record["pid_started"]
