"""Without --base-iso, isobuild fetches the pinned ISO and SHA256SUMS from a mirror into a
cache and verifies them: tested against a real HTTPS server on loopback with its own CA."""

import os
import subprocess
import sys

import pytest
from support.base import sha256
from support.mirror import Mirror

from isobuild.download import ISO_NAME

ISOBUILD = [sys.executable, "-m", "isobuild"]


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
