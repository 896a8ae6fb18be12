"""Host releases (host/releases/host_release.py) for tests: a host root that pins a key and
the test registry's repository, and releases made from any files (well formed or not),
signed by any key, pushed as the OCI artifact `isobuild host-release` pushes. No pytest in
here."""

from dataclasses import dataclass
from pathlib import Path

from host.core import host_release_format as release_format
from host.core import paths, state
from host.releases import host_release as hr
from support.base import make_host_root
from support.oci import Blob, image_manifest

REPOSITORY = "alga/appliance-host"
CREATED = "2026-12-01T10:00:00Z"


@dataclass(frozen=True)
class File:
    """What isobuild.payload.PayloadFile is to pack() and build_manifest()."""

    path: str
    data: bytes
    mode: int = 0o644


def small_tree(version: str) -> list[File]:
    """A few files shaped like the payload: a package, an executable, the version."""
    return [File("VERSION", f"{version}\n".encode()),
            File("bin/alga-appliance", b"#!/bin/bash\nexec true\n", 0o755),
            File("host/__init__.py", b""),
            File("host/core/version.py", f'__version__ = "{version}"\n'.encode())]


def trust_document(registry, *keys) -> dict:
    return {"repository": f"{registry.host}/{REPOSITORY}",
            "keys": [{"fingerprint": key.fingerprint, "armored": key.public.read_text()}
                     for key in keys]}


def host_root(base: Path, ca, registry, *keys) -> Path:
    """A host root reaching `registry` with the test CA, pinning `keys` (none: no trust
    file, as an ISO built without --host-release-key)."""
    root = make_host_root(base, paths.CURRENT_DIR)
    state.write(state.ENDPOINTS, {"ca_bundle": str(ca.ca_pem_path)}, root)
    if keys:
        state.write(state.HOST_RELEASE_TRUST, trust_document(registry, *keys), root)
    return root


def signed(key, data: bytes) -> bytes:
    """A detached binary signature, as gpg.sign_detached(armor=False) makes it."""
    return key.gpg("--detach-sign", data=data).stdout


@dataclass(frozen=True)
class Release:
    manifest: dict
    manifest_bytes: bytes
    tarball: bytes
    signature: bytes | None


def make_release(contents, version: str, key, notes: str = "", tarball: bytes | None = None,
                 manifest_files=None, **manifest_changes) -> Release:
    """A release of the files `contents`, signed by `key` (None: unsigned). `tarball`
    replaces the packed files (the manifest names the tarball given); `manifest_files` are
    what the manifest lists (default: `contents`); `manifest_changes` replace its fields
    after it is built (so they need not be valid)."""
    packed = tarball if tarball is not None else release_format.pack(contents)
    manifest = release_format.build_manifest(manifest_files or contents, packed, version,
                                             "0.1.0", notes, CREATED)
    manifest |= manifest_changes
    data = release_format.manifest_bytes(manifest)
    return Release(manifest, data, packed, signed(key, data) if key else None)


def publish(registry, release: Release, tag: str | None = None, layers: tuple | None = None,
            annotations: dict | None = None) -> str:
    """Push the release as its OCI artifact under `tag` (default: its version); `layers`
    replaces the [payload, signature] layers. The artifact's digest."""
    version = release.manifest["version"]
    if layers is None:
        layers = (Blob(hr.PAYLOAD_TYPE, release.tarball),
                  *([Blob(hr.SIGNATURE_TYPE, release.signature)] if release.signature else []))
    notes = {hr.VERSION_ANNOTATION: version, hr.NOTES_ANNOTATION: release.manifest["notes"],
             hr.CREATED_ANNOTATION: release.manifest["created"]}
    artifact = image_manifest(Blob(hr.MANIFEST_TYPE, release.manifest_bytes), list(layers),
                              artifact_type=hr.ARTIFACT_TYPE,
                              annotations=notes if annotations is None else annotations)
    return registry.push(REPOSITORY, artifact, tag or version)


def tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`: its bytes and mode, by '/'-separated path."""
    return {path.relative_to(directory).as_posix(): (path.read_bytes(),
                                                     path.stat().st_mode & 0o7777)
            for path in sorted(directory.rglob("*")) if path.is_file()}
