"""Who holds a listening TCP port on this host, read from /proc (no ss/netstat needed)."""

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"


@dataclass(frozen=True)
class Holder:
    uid: int  # from the socket table: always readable
    command: str | None  # None when /proc/<pid>/fd of the holder is not ours to read


def _listening(port: int) -> dict[str, int]:
    """inode -> owner uid of the sockets listening on `port`."""
    sockets = {}
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, status, uid, inode = fields[1], fields[3], fields[7], fields[9]
            if status == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                sockets[inode] = int(uid)
    return sockets


def holder(port: int) -> Holder | None:
    """Who listens on `port`, or None when nothing does."""
    sockets = _listening(port)
    if not sockets:
        return None
    targets = {f"socket:[{inode}]": uid for inode, uid in sockets.items()}
    for process in PROC.iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                if fd.readlink().as_posix() in targets:
                    command = (process / "cmdline").read_bytes().replace(b"\0", b" ")
                    return Holder(targets[fd.readlink().as_posix()], command.decode().strip())
        except OSError:
            continue
    return Holder(next(iter(sockets.values())), None)
