"""Host releases: the appliance's own software as a signed OCI artifact (issue 23), as
the appliance finds and stages them; the format itself is host/core/host_release_format.py.
`isobuild host-release` builds, signs and pushes one; the appliance trusts only the
repository and keys the ISO pinned (host-release-trust.json in the payload,
state.HOST_RELEASE_TRUST).

The artifact, at <registry>/<repository>:<version>: an OCI image manifest whose config is the
manifest JSON and whose layers are the tarball and the signature, with the version, the
notes and the creation time as annotations. The appliance lists the versions from the tags
and the annotations alone, and stages one: the signature is checked (gpgv, against a keyring
of the pinned keys only) before the manifest is believed, the tarball against the manifest
before anything is extracted, and every member before it is written; on any refusal nothing
is left staged.
"""

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from host.core import state
from host.core.host_release_format import (
    ARTIFACT_TYPE,
    CREATED_ANNOTATION,
    MANIFEST_SCHEMA,
    MANIFEST_TYPE,
    MAX_MANIFEST_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_SIGNATURE_BYTES,
    NOT_GENUINE,
    NOTES_ANNOTATION,
    PAYLOAD_TYPE,
    RETRY,
    SIGNATURE_TYPE,
    VERSION_ANNOTATION,
    Refused,
    extract,
    parse_manifest,
    verify_signature,
)
from host.core.validation import load_schema
from host.core.version import version_key
from host.net import endpoints, https
from host.net.https import FetchError
from host.releases.oci_source import Registry, split_repository

TIMEOUT = 60.0
NO_TRUST = ("this ISO was built without a host-release key, so the appliance cannot tell a "
            "genuine host release from any other: self-updates are refused; install from an "
            "ISO built with `isobuild build --host-release-key`")


@dataclass(frozen=True)
class Available:
    """A version the pinned repository offers, from its tag's annotations."""

    version: str
    notes: str
    created: str


@dataclass(frozen=True)
class Staged:
    version: str
    manifest: dict  # validated, and signed by `signer`
    directory: Path  # the payload tree, every file checked, ready to install
    signer: str  # the fingerprint of the pinned key that signed the manifest


# --- the pinned repository ---------------------------------------------------------------

def trust(root: Path | None) -> dict | None:
    """The pinned trust file, validated; None if the ISO was built without a key (no file,
    or one that pins no key)."""
    try:
        pinned = state.read(state.HOST_RELEASE_TRUST, root)
    except state.StateFileInvalid as exc:
        raise Refused(f"{exc}; self-updates are refused until it is fixed") from exc
    return pinned if pinned and pinned["keys"] else None


def available(root: Path | None) -> list[Available]:
    """The host release versions the pinned repository offers, newest first. Tags that
    are no version, or name something other than a host release, are not offered."""
    pinned = _pinned(root)
    registry, repository = _registry(root, pinned)
    with _fetching(pinned):
        tags = [tag for tag in registry.tags(repository, TIMEOUT) if _is_version(tag)]
        offered = []
        for tag in tags:
            artifact, _ = registry.manifest(repository, tag, TIMEOUT,
                                            f"the host release {pinned['repository']}:{tag}")
            annotations = artifact.get("annotations") or {}
            if artifact.get("artifactType") == ARTIFACT_TYPE and \
                    annotations.get(VERSION_ANNOTATION) == tag:
                offered.append(Available(tag, str(annotations.get(NOTES_ANNOTATION, "")),
                                         str(annotations.get(CREATED_ANNOTATION, ""))))
    return sorted(offered, key=lambda release: version_key(release.version), reverse=True)


def stage(root: Path | None, version: str, into: Path) -> Staged:
    """Download host release `version` from the pinned repository, verify its signature
    against the pinned keys and every file against the signed manifest, and extract it into
    `into` (which must not exist yet, or be empty). On Refused, `into` is as it was."""
    pinned = _pinned(root)
    if not _is_version(version):
        raise Refused(f"{version!r} is not a host release version (like 1.4.0): name one the "
                      "self-update check lists")
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise Refused(f"{into} already exists and is not empty: remove it, then try again")
    registry, repository = _registry(root, pinned)
    where = f"{pinned['repository']}:{version}"
    with _fetching(pinned):
        registry.authorize(repository, version, TIMEOUT)
        artifact, _ = registry.manifest(repository, version, TIMEOUT, f"the host release {where}")
        layers = _layers(artifact, where)
        data, _ = registry.blob(repository, artifact["config"]["digest"], TIMEOUT,
                                f"the manifest of host release {where}", MAX_MANIFEST_BYTES)
        signature, _ = registry.blob(repository, layers[SIGNATURE_TYPE]["digest"], TIMEOUT,
                                     f"the signature of host release {where}",
                                     MAX_SIGNATURE_BYTES)
        signer = verify_signature(data, signature, pinned["keys"])
        manifest = parse_manifest(data, where)
        if manifest["version"] != version:
            raise Refused(f"the host release tagged {where} is signed as version "
                          f"{manifest['version']}: the tag was moved; {NOT_GENUINE}")
        tarball, _ = registry.blob(repository, layers[PAYLOAD_TYPE]["digest"], TIMEOUT,
                                   f"the payload of host release {where}", MAX_PAYLOAD_BYTES)
    _extract_whole(tarball, manifest, into)
    return Staged(version, manifest, into, signer)


def _extract_whole(tarball: bytes, manifest: dict, into: Path) -> None:
    """Extract beside `into`, then rename: `into` holds the whole tree or nothing."""
    into.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{into.name}.partial-", dir=into.parent))
    try:
        # First: mkdtemp's directory inherits the setgid bit of STATE_DIR, and so would every
        # directory extracted into it, which installing into /opt then fails to copy under
        # the request unit's RestrictSUIDSGID= (EPERM).
        os.chmod(partial, 0o755)
        extract(tarball, manifest, partial)
        os.replace(partial, into)  # replaces an empty directory; anything else fails
    except OSError as exc:  # `into` appeared meanwhile, or is a link
        raise Refused(f"the host release cannot be put at {into} ({exc.strerror}): remove "
                      "it, then try again") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _layers(artifact: dict, where: str) -> dict[str, dict]:
    """The payload's and the signature's descriptors, by media type."""
    if artifact.get("artifactType") != ARTIFACT_TYPE or \
            artifact["config"]["mediaType"] != MANIFEST_TYPE:
        raise Refused(f"{where} is not a host release artifact (artifactType "
                      f"{artifact.get('artifactType')}, config {artifact['config']['mediaType']})"
                      "; check the repository in host-release-trust.json with the release "
                      "engineers")
    layers = {layer["mediaType"]: layer for layer in artifact.get("layers", [])}
    if SIGNATURE_TYPE not in layers:
        raise Refused(f"the host release {where} is unsigned (it has no signature layer); "
                      f"{NOT_GENUINE}")
    if PAYLOAD_TYPE not in layers:
        raise Refused(f"the host release {where} has no payload layer; {NOT_GENUINE}")
    return layers


def _pinned(root: Path | None) -> dict:
    pinned = trust(root)
    if pinned is None:
        raise Refused(NO_TRUST)
    return pinned


def _registry(root: Path | None, pinned: dict) -> tuple[Registry, str]:
    """The pinned registry over the proxy and CA setup chose, as the release source uses
    them; the repository in it."""
    try:
        inputs = state.read(state.SETUP_INPUTS, root) or {"proxy": None}
        site = endpoints.load(root)
    except state.StateFileInvalid as exc:
        raise Refused(f"{exc}; the proxy and CA to reach {pinned['repository']} are unknown "
                      "until it is fixed") from exc
    host, repository = split_repository(pinned["repository"])
    return Registry(https.session(inputs, site), host), repository


def _is_version(text: str) -> bool:
    """The schema's version grammar, the one owner of it: also what a tag must be."""
    grammar = load_schema(MANIFEST_SCHEMA)["$defs"]["version"]["pattern"]
    return re.fullmatch(grammar, text) is not None


@contextlib.contextmanager
def _fetching(pinned: dict):
    """A failed request becomes Refused, with the network's own next step if it has one."""
    try:
        yield
    except FetchError as exc:
        step = exc.next_step if exc.category == "network" and exc.next_step else (
            f"check that {pinned['repository']} (host-release-trust.json) is reachable and "
            f"holds the version; {RETRY}")
        raise Refused(f"{exc}; {step}") from exc
