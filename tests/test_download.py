"""Without --base-iso, isobuild fetches the pinned ISO and SHA256SUMS from a mirror into a
cache and verifies them: tested against a real HTTPS server on loopback with its own CA."""

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import sha256

from isobuild.download import ISO_NAME

ISOBUILD = [sys.executable, "-m", "isobuild"]


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


@pytest.fixture
def mirror(tmp_path, certificates):
    root = tmp_path / "www"
    root.mkdir()
    served = Mirror(root, certificates)
    yield served
    served.server.shutdown()


def build_from_mirror(mirror, tmp_path, certificates, output, ca=True):
    env = {**os.environ, "ISOBUILD_UBUNTU_MIRROR": mirror.url,
           "ISOBUILD_CACHE_DIR": str(tmp_path / "cache")}
    if ca:
        env["ISOBUILD_CA_BUNDLE"] = str(certificates / "ca.pem")
    return subprocess.run([*ISOBUILD, "build", "--output", str(output)], env=env,
                          capture_output=True, text=True)


def test_downloads_verifies_caches_and_builds(mirror, replica_iso, tmp_path, certificates):
    mirror.publish(replica_iso)
    first = build_from_mirror(mirror, tmp_path, certificates, tmp_path / "a.iso")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "cache" / ISO_NAME).read_bytes() == replica_iso.read_bytes()
    assert mirror.requests == ["/ubuntu/SHA256SUMS", f"/ubuntu/{ISO_NAME}"]
    assert f"base     {ISO_NAME} {sha256(replica_iso)}" in first.stdout

    second = build_from_mirror(mirror, tmp_path, certificates, tmp_path / "b.iso")
    assert second.returncode == 0, second.stderr
    assert mirror.requests[2:] == ["/ubuntu/SHA256SUMS"]  # the verified ISO is reused
    assert (tmp_path / "a.iso").read_bytes() == (tmp_path / "b.iso").read_bytes()


def test_corrupt_download_is_refused_and_not_cached(mirror, replica_iso, tmp_path,
                                                    certificates):
    mirror.publish(replica_iso, sums_digest="f" * 64)
    run = build_from_mirror(mirror, tmp_path, certificates, tmp_path / "out.iso")
    assert run.returncode != 0
    assert f"downloaded {ISO_NAME} has sha256 {sha256(replica_iso)}" in run.stderr
    assert "fix: " in run.stderr
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["SHA256SUMS"]
    assert not (tmp_path / "out.iso").exists()


def test_untrusted_mirror_certificate_is_refused(mirror, replica_iso, tmp_path, certificates):
    mirror.publish(replica_iso)
    run = build_from_mirror(mirror, tmp_path, certificates, tmp_path / "out.iso", ca=False)
    assert run.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in run.stderr and "ISOBUILD_UBUNTU_MIRROR" in run.stderr
    assert mirror.requests == []


def test_missing_file_on_mirror_is_explained(mirror, tmp_path, certificates):
    run = build_from_mirror(mirror, tmp_path, certificates, tmp_path / "out.iso")
    assert run.returncode != 0 and "404" in run.stderr and "SHA256SUMS" in run.stderr
