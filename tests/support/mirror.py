"""An Ubuntu mirror over HTTPS on loopback with its own CA (pytest plugin): fixture
`certificates` (a throwaway CA and a server certificate for 127.0.0.1), class Mirror."""

import http.server
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from isobuild.download import ISO_NAME
from support.base import sha256


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=isobuild test CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
            cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return d


class Mirror:
    def __init__(self, root: Path, certificates: Path):
        self.root, self.requests = root, []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/ubuntu/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, iso: Path, sums_digest: str | None = None) -> None:
        folder = self.root / "ubuntu"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(iso, folder / ISO_NAME)
        digest = sums_digest or sha256(iso)
        (folder / "SHA256SUMS").write_text(
            f"{'0' * 64} *ubuntu-24.04.4-desktop-amd64.iso\n{digest} *{ISO_NAME}\n")
