"""The setup lock: one setup phase or app update at a time, across processes."""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from host.core import paths


class Busy(Exception):
    """Another setup phase or update holds the lock; the message names it."""


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
            holder = fp.read().strip() or "unknown"
            raise Busy(f"another setup or update is running ({holder}); wait for it to "
                       "finish, then retry") from exc
        fp.seek(0)
        fp.truncate()
        fp.write(f"pid {os.getpid()}\n")
        fp.flush()
        yield
