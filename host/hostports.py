"""Who holds a listening TCP port on this host, read from /proc (no ss/netstat needed)."""

from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, status, inode = fields[1], fields[3], fields[9]
            if status == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def holder(port: int) -> str | None:
    """The command line of the process listening on `port`, "unknown" if that cannot be
    read, or None when nothing listens."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for process in PROC.iterdir():
        if not process.name.isdigit():
            continue
        try:
            if any(fd.readlink().as_posix() in targets for fd in (process / "fd").iterdir()):
                return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return "unknown"
