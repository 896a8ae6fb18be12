"""The OCI registry the release source is tested against (support/registry.py), checked with a
plain HTTP client: the real registry's token challenge, GHCR's blob redirect, and the knobs
tests turn (corrupt blobs, a blob host that is down, withdrawn and moved tags)."""

import contextlib
import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
import requests
from support import registry as registry_module
from support.netlab import free_loopback_address
from support.oci import (
    FLUX_CONFIG_MEDIA_TYPE,
    FLUX_CONTENT_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    RELEASE_ARTIFACT_TYPE,
    RELEASE_CONFIG_MEDIA_TYPE,
    config_bundle,
    release_artifact,
    untar_gz,
)
from support.registry import MANIFEST_ACCEPT, PUSHER, Registry, challenge, pull

REPOSITORY = "alga/appliance-release"
RELEASE = {"version": "1.4.0", "channel": "stable"}


def get(registry: Registry, url: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Accept": MANIFEST_ACCEPT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(url, headers=headers, verify=registry.ca.ca_pem_path, timeout=10,
                        **kwargs)


def token_for(registry: Registry, scope: str, auth=None) -> str:
    answer = requests.get(registry.realm, params={"service": registry.service, "scope": scope},
                          auth=auth, verify=registry.ca.ca_pem_path, timeout=10)
    answer.raise_for_status()
    return answer.json()["token"]


def resolve(registry: Registry, repository: str, reference: str) -> tuple[dict, bytes]:
    return pull(registry.url, repository, reference, str(registry.ca.ca_pem_path))


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_an_anonymous_manifest_request_is_challenged_with_the_realm_service_and_scope(registry):
    registry.push(REPOSITORY, release_artifact(RELEASE), "stable")

    answer = get(registry, f"{registry.url}/v2/{REPOSITORY}/manifests/stable")

    assert answer.status_code == 401
    assert challenge(answer) == {"realm": registry.realm, "service": registry.service,
                                 "scope": f"repository:{REPOSITORY}:pull"}


def test_a_tag_resolves_to_the_release_manifest_in_the_config_blob(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")

    manifest, config = resolve(registry, REPOSITORY, "stable")

    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert manifest["artifactType"] == RELEASE_ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == RELEASE_CONFIG_MEDIA_TYPE
    assert sha256(config) == manifest["config"]["digest"]
    assert json.loads(config) == RELEASE


def test_a_full_anonymous_resolution_takes_five_requests(registry):
    """The count a benchmark of the release source compares against."""
    registry.push(REPOSITORY, release_artifact(RELEASE), "stable")
    registry.requests.reset()

    resolve(registry, REPOSITORY, "stable")

    assert [(request.role, request.method) for request in registry.requests] == [
        ("registry", "GET"), ("token", "GET"), ("registry", "GET"), ("registry", "GET"),
        ("blob", "GET")]


def test_an_anonymous_token_pulls_but_cannot_push(registry):
    registry.push(REPOSITORY, release_artifact(RELEASE), "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull,push")
    headers = {"Authorization": f"Bearer {token}"}

    pulled = get(registry, f"{registry.url}/v2/{REPOSITORY}/manifests/stable", token)
    pushed = requests.post(f"{registry.url}/v2/{REPOSITORY}/blobs/uploads/", headers=headers,
                           verify=registry.ca.ca_pem_path, timeout=10)

    assert pulled.status_code == 200
    assert pushed.status_code == 401
    assert challenge(pushed)["error"] == "insufficient_scope"


def test_the_pushers_credentials_get_a_token_that_pushes(registry):
    token = token_for(registry, f"repository:{REPOSITORY}:pull,push", auth=PUSHER)

    started = requests.post(f"{registry.url}/v2/{REPOSITORY}/blobs/uploads/",
                            headers={"Authorization": f"Bearer {token}"},
                            verify=registry.ca.ca_pem_path, timeout=10)

    assert started.status_code == 202
    assert started.headers["Location"].startswith(f"{registry.url}/v2/{REPOSITORY}/blobs/")


def test_wrong_credentials_get_no_token(registry):
    answer = requests.get(registry.realm, auth=(PUSHER[0], "wrong"),
                          params={"service": registry.service}, verify=registry.ca.ca_pem_path,
                          timeout=10)

    assert answer.status_code == 401


def test_a_token_service_may_answer_with_access_token_alone(ca):
    with Registry(ca, token_fields=("access_token",)) as registry:
        answer = requests.get(registry.realm, params={"service": registry.service},
                              verify=ca.ca_pem_path, timeout=10).json()

    assert "token" not in answer
    assert {"access_token", "expires_in", "issued_at"} <= answer.keys()


def test_a_manifest_by_tag_and_by_digest_are_the_same_bytes(registry):
    artifact = release_artifact(RELEASE)
    digest = registry.push(REPOSITORY, artifact, "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")

    by_tag = get(registry, f"{registry.url}/v2/{REPOSITORY}/manifests/stable", token)
    by_digest = get(registry, f"{registry.url}/v2/{REPOSITORY}/manifests/{digest}", token)

    assert by_tag.content == by_digest.content == artifact.manifest
    assert by_tag.headers["Docker-Content-Digest"] == digest == sha256(artifact.manifest)
    assert by_digest.headers["Docker-Content-Digest"] == digest
    assert by_tag.headers["Content-Type"] == MANIFEST_MEDIA_TYPE


def test_a_manifest_asked_for_without_oci_in_accept_is_unknown(registry):
    """Distribution 2.8 hides OCI manifests from clients that do not accept them."""
    digest = registry.push(REPOSITORY, release_artifact(RELEASE), "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")

    answer = requests.get(f"{registry.url}/v2/{REPOSITORY}/manifests/{digest}",
                          headers={"Authorization": f"Bearer {token}"},
                          verify=registry.ca.ca_pem_path, timeout=10)

    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_a_blob_get_redirects_to_the_blob_host_which_wants_no_token(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")
    url = f"{registry.url}/v2/{REPOSITORY}/blobs/{artifact.config.digest}"

    redirect = get(registry, url, token, allow_redirects=False)
    registry.requests.reset()
    served = get(registry, url, token)  # requests drops Authorization for another host

    assert redirect.status_code == 307
    assert redirect.headers["Location"].startswith(f"{registry.blob_url}/")
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert sha256(served.content) == artifact.config.digest
    blob_request = registry.requests.of("blob")[0]
    assert blob_request.headers["Host"] == registry.blob_host
    assert "Authorization" not in blob_request.headers


def test_a_blob_head_is_answered_by_the_registry_itself(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")

    answer = requests.head(f"{registry.url}/v2/{REPOSITORY}/blobs/{artifact.config.digest}",
                           headers={"Authorization": f"Bearer {token}"},
                           verify=registry.ca.ca_pem_path, timeout=10)

    assert answer.status_code == 200
    assert answer.headers["Docker-Content-Digest"] == artifact.config.digest


def test_a_blob_get_without_a_token_is_challenged_not_redirected(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")

    answer = get(registry, f"{registry.url}/v2/{REPOSITORY}/blobs/{artifact.config.digest}",
                 allow_redirects=False)

    assert answer.status_code == 401
    assert challenge(answer)["scope"] == f"repository:{REPOSITORY}:pull"


def test_an_unknown_blob_is_not_found_not_redirected(registry):
    registry.push(REPOSITORY, release_artifact(RELEASE), "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")

    answer = get(registry, f"{registry.url}/v2/{REPOSITORY}/blobs/{sha256(b'absent')}", token,
                 allow_redirects=False)

    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_the_blob_host_refuses_paths_it_did_not_sign(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")

    answer = requests.get(f"{registry.blob_url}/{REPOSITORY}/blobs/{artifact.config.digest}",
                          verify=registry.ca.ca_pem_path, timeout=10)

    assert answer.status_code == 403


def test_a_blob_host_that_is_down_refuses_connections(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")
    url = f"{registry.url}/v2/{REPOSITORY}/blobs/{artifact.config.digest}"

    with registry.blob_host_down(), pytest.raises(requests.ConnectionError):
        get(registry, url, token)
    assert get(registry, url, token).content == artifact.config.data


def test_a_corrupt_blob_is_served_under_its_digest(registry):
    artifact = release_artifact(RELEASE)
    registry.push(REPOSITORY, artifact, "stable")
    registry.corrupt_blob(artifact.config.digest, b'{"version": "6.6.6"}')

    _, config = resolve(registry, REPOSITORY, "stable")

    assert config == b'{"version": "6.6.6"}'
    assert sha256(config) != artifact.config.digest


def test_a_release_of_bytes_that_are_not_json_is_published_as_they_are(registry):
    artifact = release_artifact(b"not json")
    registry.push(REPOSITORY, artifact, "broken")

    _, config = resolve(registry, REPOSITORY, "broken")

    assert config == b"not json"


def test_a_withdrawn_manifest_is_not_found_by_digest_or_tag(registry):
    digest = registry.push(REPOSITORY, release_artifact(RELEASE), "stable")
    token = token_for(registry, f"repository:{REPOSITORY}:pull")

    registry.delete(REPOSITORY, digest)

    for reference in (digest, "stable"):
        answer = get(registry, f"{registry.url}/v2/{REPOSITORY}/manifests/{reference}", token)
        assert answer.status_code == 404


def test_a_tag_moves_to_another_release(registry):
    older = registry.push(REPOSITORY, release_artifact(RELEASE), "1.4.0", "stable")
    newer = registry.push(REPOSITORY, release_artifact({**RELEASE, "version": "1.5.0"}), "1.5.0")

    registry.tag(REPOSITORY, "1.5.0", "stable")

    token = token_for(registry, f"repository:{REPOSITORY}:pull")
    stable = get(registry, f"{registry.url}/v2/{REPOSITORY}/manifests/stable", token)
    assert stable.headers["Docker-Content-Digest"] == newer != older
    assert resolve(registry, REPOSITORY, "1.4.0")[1] == release_artifact(RELEASE).config.data


def test_a_config_bundle_is_what_flux_push_artifact_makes(registry):
    files = {"apps/kustomization.yaml": b"resources: []\n", "apps/values.yaml": b"a: 1\n"}
    artifact = config_bundle(files, revision="1.4.0@sha1:abc")
    registry.push("alga/config", artifact, "1.4.0")
    token = token_for(registry, "repository:alga/config:pull")

    manifest, config = resolve(registry, "alga/config", "1.4.0")
    (layer,) = manifest["layers"]
    content = get(registry, f"{registry.url}/v2/alga/config/blobs/{layer['digest']}", token)

    assert manifest["config"]["mediaType"] == FLUX_CONFIG_MEDIA_TYPE
    assert config == b"{}"
    assert layer["mediaType"] == FLUX_CONTENT_MEDIA_TYPE
    assert manifest["annotations"]["org.opencontainers.image.revision"] == "1.4.0@sha1:abc"
    assert {"org.opencontainers.image.created", "org.opencontainers.image.source"} \
        <= manifest["annotations"].keys()
    assert untar_gz(content.content) == files


def test_the_same_files_make_the_same_bundle():
    files = {"b.yaml": b"b\n", "a.yaml": b"a\n"}

    assert config_bundle(files).digest == config_bundle(dict(reversed(files.items()))).digest


def test_a_registry_on_a_given_address_with_extra_names(ca):
    address = free_loopback_address()
    with Registry(ca, address=address, hostnames=("ghcr.test",)) as registry:
        registry.push(REPOSITORY, release_artifact(RELEASE), "stable")

        assert registry.url.startswith(f"https://{address}:")
        assert resolve(registry, REPOSITORY, "stable")[1] == release_artifact(RELEASE).config.data


def test_nothing_is_left_once_the_registry_has_stopped(ca):
    with Registry(ca) as registry:
        url = f"{registry.url}/v2/"
        assert "docker-registry" in child_processes()

    assert "docker-registry" not in child_processes()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, verify=ca.ca_pem_path, timeout=10)


def child_processes() -> list[str]:
    """The executables of this process's children, zombies included."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                children.append(stat.with_name("comm").read_text().strip())
    return children


def test_a_registry_that_cannot_start_says_why_and_leaves_nothing(ca, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(registry_module, "_free_port", lambda address: taken.getsockname()[1])

        with pytest.raises(RuntimeError, match="address already in use"):
            Registry(ca).__enter__()

    assert "docker-registry" not in child_processes()
