"""The VM tier's in-guest release sources (fakes/mirror) answer as GHCR does: a static
registry tree (support/oci.py's `layout`) behind a token challenge and a blob redirect to
another name, all on one address. Run here on a loopback address and free ports, with a plain
client that resolves the names through the mirror's own DNS."""

import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dnslib import DNSRecord
from support.base import FAKES
from support.netlab import free_loopback_address
from support.oci import MANIFEST_MEDIA_TYPE, digest_of, layout, platform_image, release_artifact
from support.registry import MANIFEST_ACCEPT, challenge, pull

from host.core import pins
from host.net import https
from host.net.endpoints import Endpoints
from host.releases import oci_source

REGISTRY_NAME = "ghcr.test"
BLOB_HOST = "pkg-containers.test"
REPOSITORY = "alga/appliance-release"
RELEASE = release_artifact({"version": "1.4.0", "channel": "stable"})
STARTUP_SECONDS = 10


class Mirror:
    """fakes/mirror running in a process of its own, on `address`."""

    def __init__(self, address: str, https_port: int, dns_port: int, ca_pem: str,
                 hold_file: Path):
        self.address = address
        self.https_port = https_port
        self.dns_port = dns_port
        self.ca_pem = ca_pem  # what clients trust
        self.hold_file = hold_file

    def url(self, name: str) -> str:
        return f"https://{name}:{self.https_port}"

    def lookup(self, name: str) -> list[str]:
        reply = DNSRecord.parse(DNSRecord.question(name).send(self.address, self.dns_port,
                                                              timeout=5))
        return [str(record.rdata) for record in reply.rr]


@pytest.fixture
def mirror(ca, tmp_path, monkeypatch) -> Mirror:
    docroot = tmp_path / "docroot"
    repository, _, tag = pins.K3S_PAUSE_IMAGE.rpartition(":")
    index, platforms = platform_image()
    files = layout({REPOSITORY: [(RELEASE, ("stable", "1.4.0"))],
                    repository: [(index, (tag,)), *((image, ()) for image in platforms)]})
    files["/k3s/README"] = b"a release file, served as before\n"
    for path, data in files.items():
        (docroot / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (docroot / path.lstrip("/")).write_bytes(data)
    cert, key = ca.write_server_files(tmp_path, REGISTRY_NAME, BLOB_HOST)
    address, https_port, dns_port = free_loopback_address(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(FAKES / "mirror"), str(docroot), str(cert), str(key), REGISTRY_NAME,
         "--blob-host", BLOB_HOST, "--address", address, "--https-port", str(https_port),
         "--dns-port", str(dns_port), "--hold-file", str(tmp_path / "hold")],
        stderr=subprocess.PIPE, text=True)
    try:
        wait_until_listening(process, address, https_port)
        served = Mirror(address, https_port, dns_port, str(ca.ca_pem_path), tmp_path / "hold")
        resolve_through(monkeypatch, served)
        yield served
    finally:
        process.terminate()
        process.communicate(timeout=10)


def free_port() -> int:
    """A port free for both TCP and UDP (DNS listens on both) on this machine."""
    while True:
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with contextlib.suppress(OSError):
                udp.bind(("127.0.0.1", port))
                return port


def wait_until_listening(process: subprocess.Popen, address: str, port: int):
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.02)
    process.terminate()
    raise RuntimeError(f"the mirror did not start:\n{process.communicate(timeout=10)[1]}")


def resolve_through(monkeypatch, mirror: Mirror):
    """Make this process find the mirror's names where its DNS says they are, as the guest
    does with the mirror as its resolver."""
    addresses = {name: mirror.lookup(name)[0] for name in (REGISTRY_NAME, BLOB_HOST)}
    system_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        return system_lookup(addresses.get(host, host), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)


def get(mirror: Mirror, url: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Accept": MANIFEST_ACCEPT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(url, headers=headers, verify=mirror.ca_pem, timeout=10, **kwargs)


def pull_token(mirror: Mirror, repository: str) -> str:
    answer = get(mirror, f"{mirror.url(REGISTRY_NAME)}/token",
                 params={"service": REGISTRY_NAME, "scope": f"repository:{repository}:pull"})
    return answer.json()["token"]


def test_its_dns_answers_the_registry_and_the_blob_host_and_nothing_else(mirror):
    assert mirror.lookup(REGISTRY_NAME) == [mirror.address]
    assert mirror.lookup(BLOB_HOST) == [mirror.address]
    assert mirror.lookup("ghcr.io") == []


def test_a_tag_resolves_through_the_challenge_token_and_blob_redirect(mirror):
    manifest, config = pull(mirror.url(REGISTRY_NAME), REPOSITORY, "stable", mirror.ca_pem)

    assert manifest == json.loads(RELEASE.manifest)
    assert config == RELEASE.config.data


def test_the_challenge_names_the_realm_on_the_name_asked(mirror):
    registry = mirror.url(REGISTRY_NAME)

    manifest = get(mirror, f"{registry}/v2/{REPOSITORY}/manifests/stable")
    base = get(mirror, f"{registry}/v2/")

    assert manifest.status_code == base.status_code == 401
    assert challenge(manifest) == {"realm": f"{registry}/token", "service": REGISTRY_NAME,
                                   "scope": f"repository:{REPOSITORY}:pull"}
    assert challenge(base) == {"realm": f"{registry}/token", "service": REGISTRY_NAME}


def test_a_token_pulls_only_the_repository_it_was_given_for(mirror):
    token = pull_token(mirror, "someone/else")

    answer = get(mirror, f"{mirror.url(REGISTRY_NAME)}/v2/{REPOSITORY}/manifests/stable", token)

    assert answer.status_code == 401


def test_a_manifest_by_tag_and_by_digest_with_its_media_type_and_digest(mirror):
    token = pull_token(mirror, REPOSITORY)
    base = f"{mirror.url(REGISTRY_NAME)}/v2/{REPOSITORY}/manifests"

    by_tag = get(mirror, f"{base}/1.4.0", token)
    by_digest = get(mirror, f"{base}/{RELEASE.digest}", token)
    head = requests.head(f"{base}/stable", headers={"Authorization": f"Bearer {token}"},
                         verify=mirror.ca_pem, timeout=10)

    assert by_tag.content == by_digest.content == RELEASE.manifest
    for answer in (by_tag, by_digest, head):
        assert answer.headers["Content-Type"] == MANIFEST_MEDIA_TYPE
        assert answer.headers["Docker-Content-Digest"] == RELEASE.digest
    assert get(mirror, f"{base}/withdrawn", token).status_code == 404


def test_a_blob_get_redirects_to_the_blob_host_and_a_head_does_not(mirror):
    token = pull_token(mirror, REPOSITORY)
    url = f"{mirror.url(REGISTRY_NAME)}/v2/{REPOSITORY}/blobs/{RELEASE.config.digest}"

    redirect = get(mirror, url, token, allow_redirects=False)
    head = requests.head(url, headers={"Authorization": f"Bearer {token}"},
                         verify=mirror.ca_pem, timeout=10)
    served = requests.get(redirect.headers["Location"], verify=mirror.ca_pem, timeout=10)

    assert redirect.status_code == 307
    assert redirect.headers["Location"] == (
        f"{mirror.url(BLOB_HOST)}/blobs/{REPOSITORY}/{RELEASE.config.digest}")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == RELEASE.config.digest
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert digest_of(served.content) == RELEASE.config.digest


def test_the_blob_host_is_not_the_registry(mirror):
    answer = get(mirror, f"{mirror.url(BLOB_HOST)}/v2/{REPOSITORY}/manifests/stable")

    assert answer.status_code == 404


def test_the_release_files_are_served_as_before(mirror):
    answer = get(mirror, f"{mirror.url(REGISTRY_NAME)}/k3s/README")

    assert answer.content == b"a release file, served as before\n"


def test_a_held_download_trickles_until_its_hold_file_is_gone(mirror):
    """What the VM tier reboots in the middle of: the k3s download, held."""
    mirror.hold_file.write_text("/k3s/README\n")
    with get(mirror, f"{mirror.url(REGISTRY_NAME)}/k3s/README", stream=True) as answer:
        assert answer.status_code == 200
        assert answer.raw.read(1) == b"a"
        started = time.monotonic()
        assert answer.raw.read(1) == b" "  # the next byte comes seconds later
        assert time.monotonic() - started > 2
        mirror.hold_file.unlink()
        assert b"a " + answer.raw.read() == b"a release file, served as before\n"


def test_an_image_index_pulls_as_preflight_pulls_it(mirror):
    """The VM tier's preflight pulls k3s's pause image from the mirror: the index, the
    linux/amd64 manifest, its config from the blob host."""
    session = https.session({"proxy": None}, Endpoints(ca_bundle=mirror.ca_pem))
    registry = oci_source.Registry(session, f"{REGISTRY_NAME}:{mirror.https_port}")
    repository, _, tag = pins.K3S_PAUSE_IMAGE.rpartition(":")
    registry.authorize(repository, tag, 10)
    manifest = registry.platform_manifest(repository, tag, 10, "the pause image")
    config, host = registry.blob(repository, manifest["config"]["digest"], 10, "its config",
                                 1 << 20)
    assert json.loads(config)["architecture"] == "amd64"
    assert host == f"{BLOB_HOST}:{mirror.https_port}"
