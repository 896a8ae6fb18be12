"""Where things are, and the small helpers every tier uses: a host root, a WSGI app on
loopback, a file's digest."""

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

from host.core import paths

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
FAKES = TESTS / "fakes"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def altered_copies(directory: Path) -> list[str]:
    """The files of `directory` that differ from its SHA256SUMS, the sums recorded when
    they were copied from their upstream (and any file the sums do not list)."""
    recorded = dict(reversed(line.split()) for line in
                    (directory / "SHA256SUMS").read_text().splitlines())
    present = {p.name for p in directory.iterdir()} - {"SHA256SUMS", "README.md"}
    return sorted(name for name in present | set(recorded)
                  if name not in recorded or not (directory / name).is_file()
                  or sha256(directory / name) != recorded[name])


def make_host_root(base: Path, *extra: str) -> Path:
    """A root prefix with the appliance's config, state and log directories (and `extra`)."""
    for directory in (paths.CONFIG_DIR, paths.STATE_DIR, paths.LOG_DIR, *extra):
        (base / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return base


@contextlib.contextmanager
def serve_wsgi(app) -> Iterator[str]:
    """`app` on the service's real waitress server on 127.0.0.1; yields its base URL."""
    with serve_https(app, None) as (url, _):
        yield url


@contextlib.contextmanager
def serve_https(app, root: Path | None, request_deadline: float | None = None
                ) -> Iterator[tuple[str, str | None]]:
    """`app` on the service's real server on 127.0.0.1, and with a host `root` over HTTPS
    too, with a certificate ensure-tls's code makes there; yields both base URLs (the
    second None without `root`)."""
    import grp
    import os

    from host import web_server  # imports the web app: only for the tiers that serve it
    from host.core import tls

    server = web_server.create_server(app, "127.0.0.1", 0, **(
        {"request_deadline": request_deadline} if request_deadline else {}))
    front = None
    if root is not None:
        tls.ensure(root, group=grp.getgrgid(os.getgid()).gr_name)
        front = web_server.start_https(server, "127.0.0.1", 0, root)

    def run():
        # Closing the server from this thread ends its poll loop with EBADF: expected.
        with contextlib.suppress(OSError, ValueError):
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield (f"http://127.0.0.1:{server.effective_port}",
               f"https://127.0.0.1:{front.port}" if front else None)
    finally:
        if front:
            front.close()
        server.close()
        thread.join(5)
