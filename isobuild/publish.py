"""`isobuild host-release`: the appliance's own software as a signed host release
(host/releases/host_release_format.py has the format), written to a directory and pushed as an OCI
artifact to the repository the release engineer names.

The payload is the one `isobuild build` puts on the ISO (isobuild/payload.py, from the
same tree and options); only build-info.json differs, as it does between two ISO builds.
Pushing speaks the registry API directly (the distribution spec's monolithic upload), with
the credentials ISOBUILD_REGISTRY_USER and ISOBUILD_REGISTRY_TOKEN from the environment
(for GHCR: a GitHub user and a token with write:packages).
"""

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin

import requests

from host.core import host_release_format, state
from host.core.version import __version__, version_key
from isobuild import gpg, payload
from isobuild.errors import IsoBuildError
from isobuild.options import BuildOptions

USER_ENV = "ISOBUILD_REGISTRY_USER"
TOKEN_ENV = "ISOBUILD_REGISTRY_TOKEN"
# The oldest installed version a release built now can upgrade: the first with self-update.
# Raise it (--min-upgrade-from) when a release's state migrations no longer reach back.
OLDEST_UPGRADABLE = "0.1.0"
TIMEOUT = 120
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class HostRelease:
    version: str
    tarball: Path
    manifest: Path  # the exact bytes that are signed and pushed
    signature: Path  # binary, detached
    document: dict


def build_release(options: BuildOptions, output: Path, sign_key: str, notes: str,
                  min_upgrade_from: str) -> HostRelease:
    """Write the tarball, its manifest and the manifest's signature into `output`."""
    if version_key(min_upgrade_from) > version_key(__version__):
        raise IsoBuildError(f"--min-upgrade-from {min_upgrade_from} is newer than the release "
                            f"itself ({__version__})", "give a version no newer than "
                            f"{__version__} (host/core/version.py)")
    created = state.timestamp()
    build_info = {"version": __version__, "built_at": created,
                  "vendored": payload.vendored_versions()}
    trust = gpg.host_release_trust(options.host_release_keys, options.host_release_repository)
    files = payload.collect(build_info, options.release_source, options.admin_user, trust)
    tarball = host_release_format.pack(files)
    try:
        document = host_release_format.build_manifest(files, tarball, __version__, min_upgrade_from,
                                               notes, created)
    except host_release_format.Refused as exc:
        raise IsoBuildError(exc.reason, "this is an isobuild bug or a file the payload must "
                            "not carry; report it with this output") from exc
    output.mkdir(parents=True, exist_ok=True)
    stem = output / f"alga-appliance-host-{__version__}"
    tarball_path = stem.with_name(stem.name + ".tar.gz")
    manifest_path = stem.with_name(stem.name + ".manifest.json")
    written = (tarball_path, manifest_path, manifest_path.with_name(manifest_path.name + ".sig"))
    try:
        tarball_path.write_bytes(tarball)
        manifest_path.write_bytes(host_release_format.manifest_bytes(document))
        signature = gpg.sign_detached(manifest_path, sign_key, armor=False)
    except BaseException:  # no release without its signature, nor an old one beside it
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return HostRelease(__version__, tarball_path, manifest_path, signature, document)


def artifact(release: HostRelease) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The OCI image manifest's bytes and the blobs it names (media type, bytes)."""
    blobs = [(host_release_format.MANIFEST_TYPE, release.manifest.read_bytes()),
             (host_release_format.PAYLOAD_TYPE, release.tarball.read_bytes()),
             (host_release_format.SIGNATURE_TYPE, release.signature.read_bytes())]
    descriptors = [{"mediaType": kind, "digest": _digest(data), "size": len(data)}
                   for kind, data in blobs]
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": host_release_format.ARTIFACT_TYPE,
        "config": descriptors[0], "layers": descriptors[1:],
        "annotations": {host_release_format.VERSION_ANNOTATION: release.version,
                        host_release_format.NOTES_ANNOTATION: release.document["notes"],
                        host_release_format.CREATED_ANNOTATION: release.document["created"]},
    }
    return json.dumps(manifest, indent=2).encode(), blobs


def push(release: HostRelease, repository: str) -> str:
    """Push the release to <registry>/<repository>:<version>; its manifest digest. A version
    already there is refused: a published version never changes."""
    registry, _, name = repository.partition("/")
    base = f"https://{registry}"
    manifest, blobs = artifact(release)
    with requests.Session() as session:
        session.headers["Authorization"] = _authorization(session, base, name)
        tag_url = f"{base}/v2/{name}/manifests/{release.version}"
        existing = _request(session, "HEAD", tag_url, "looking for the tag",
                            headers={"Accept": OCI_MANIFEST}, ok=(200, 404))
        if existing.status_code == 200:
            raise IsoBuildError(f"{repository}:{release.version} already exists: a published "
                                "host release never changes",
                                "bump __version__ in host/core/version.py and build again")
        for _, data in blobs:
            _upload(session, base, name, data)
        _request(session, "PUT", tag_url, "putting the manifest", data=manifest,
                 headers={"Content-Type": OCI_MANIFEST}, ok=(201,))
    return _digest(manifest)


def _authorization(session: requests.Session, base: str, name: str) -> str:
    """A push token from the registry's token service, for the credentials in the
    environment."""
    user, token = os.environ.get(USER_ENV), os.environ.get(TOKEN_ENV)
    if not user or not token:
        raise IsoBuildError(f"{USER_ENV} and {TOKEN_ENV} are not both set",
                            "set them to a registry user and a token that may push (GHCR: "
                            "a GitHub token with write:packages)")
    answer = _request(session, "GET", f"{base}/v2/", "asking for the token service",
                      ok=(200, 401))
    scheme, _, rest = answer.headers.get("WWW-Authenticate", "").partition(" ")
    if answer.status_code == 200 or scheme.lower() == "basic":
        return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    params = dict(_CHALLENGE_PARAM.findall(rest))
    realm = params.pop("realm", "")
    if scheme.lower() != "bearer" or not realm:
        raise IsoBuildError(f"{base}/v2/ answered 401 without a token challenge",
                            "check the registry name in --repository")
    params["scope"] = f"repository:{name}:pull,push"
    granted = _request(session, "GET", realm, "getting a push token", params=params,
                       auth=(user, token), ok=(200,))
    try:
        document = granted.json()
        return f"Bearer {document.get('token') or document['access_token']}"
    except (ValueError, KeyError, AttributeError) as exc:
        raise IsoBuildError(f"the token service {realm} answered without a token",
                            "check the registry name in --repository") from exc


def _upload(session: requests.Session, base: str, name: str, data: bytes) -> None:
    digest = _digest(data)
    blob_url = f"{base}/v2/{name}/blobs/{digest}"
    if _request(session, "HEAD", blob_url, "looking for a blob", ok=(200, 404)
                ).status_code == 200:
        return
    started = _request(session, "POST", f"{base}/v2/{name}/blobs/uploads/",
                       "starting an upload", ok=(202,))
    location = urljoin(f"{base}/", started.headers.get("Location", ""))
    separator = "&" if "?" in location else "?"
    _request(session, "PUT", f"{location}{separator}{urlencode({'digest': digest})}",
             f"uploading {digest}", data=data,
             headers={"Content-Type": "application/octet-stream"}, ok=(201,))


def _request(session: requests.Session, method: str, url: str, what: str,
             ok: tuple[int, ...], **kwargs) -> requests.Response:
    try:
        answer = session.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise IsoBuildError(f"{what} at {url} failed: {exc}",
                            "check the network and the registry name in --repository") from exc
    if answer.status_code in ok:
        return answer
    if answer.status_code in (401, 403):
        raise IsoBuildError(f"the registry refused {what} ({answer.status_code}): "
                            f"{answer.text[:300]}", f"check {USER_ENV} and {TOKEN_ENV}: the "
                            "token must be allowed to push to the repository")
    raise IsoBuildError(f"{what} at {url} answered {answer.status_code}: {answer.text[:300]}",
                        "retry; if it persists, check the registry's status")


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
