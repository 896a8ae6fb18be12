"""OCI artifacts as bytes, built without a network: the appliance's release artifact and the
config bundle `flux push artifact` makes, and the static registry layout the VM tier's mirror
(tests/fakes/mirror) serves them from. Same input, same bytes, same digests."""

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
IMAGE_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
IMAGE_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
RELEASE_ARTIFACT_TYPE = "application/vnd.alga.appliance.release.v1"
RELEASE_CONFIG_MEDIA_TYPE = "application/vnd.alga.appliance.release.config.v1+json"
# OCI 1.1's empty descriptor: the one layer of an artifact whose content is all in its config.
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
# What `flux push artifact` writes (fluxcd/pkg oci: CanonicalConfigMediaType and
# CanonicalContentMediaType; the annotations from its --source and --revision flags).
FLUX_CONFIG_MEDIA_TYPE = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT_MEDIA_TYPE = "application/vnd.cncf.flux.content.v1.tar+gzip"
CREATED = "org.opencontainers.image.created"
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
# A fixed creation time, so a bundle's digest depends on its files alone.
BUNDLE_CREATED = "2024-01-01T00:00:00Z"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Blob:
    """Content a manifest points at by digest."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Artifact:
    """A manifest's bytes and the blobs it names (config first)."""

    manifest: bytes
    media_type: str
    blobs: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def config(self) -> Blob:
        return self.blobs[0]


def image_manifest(config: Blob, layers: list[Blob], artifact_type: str | None = None,
                   annotations: dict[str, str] | None = None) -> Artifact:
    """An OCI image manifest over `config` and `layers`, serialised once: its bytes are what the
    registry stores and digests."""
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE}
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    manifest["config"] = config.descriptor()
    manifest["layers"] = [layer.descriptor() for layer in layers]
    if annotations:
        manifest["annotations"] = annotations
    body = json.dumps(manifest, indent=2).encode()
    return Artifact(body, MANIFEST_MEDIA_TYPE, (config, *layers))


def platform_image(platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
                   ) -> tuple[Artifact, list[Artifact]]:
    """A multi-platform image as Docker Hub and GHCR serve one: an OCI index naming one image
    manifest (a config and one layer) per platform; the index and the images."""
    images, entries = [], []
    for platform in platforms:
        os_name, architecture = platform.split("/")
        config = Blob(IMAGE_CONFIG_MEDIA_TYPE, json.dumps({
            "architecture": architecture, "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": []}}).encode())
        layer = Blob(IMAGE_LAYER_MEDIA_TYPE, tar_gz({"pause": platform.encode()}))
        image = image_manifest(config, [layer])
        images.append(image)
        entries.append({"mediaType": image.media_type, "digest": image.digest,
                        "size": len(image.manifest),
                        "platform": {"architecture": architecture, "os": os_name}})
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
                        "manifests": entries}).encode()
    return Artifact(index, INDEX_MEDIA_TYPE, ()), images


def release_artifact(config: dict | bytes) -> Artifact:
    """The appliance's release: its manifest JSON is the config blob (bytes are taken as they
    are, so a test can publish one that is not JSON) and the one layer is the empty descriptor,
    as OCI 1.1 asks of artifacts that carry nothing else."""
    data = config if isinstance(config, bytes) else json.dumps(config, indent=2).encode()
    return image_manifest(Blob(RELEASE_CONFIG_MEDIA_TYPE, data),
                          [Blob(EMPTY_MEDIA_TYPE, EMPTY_JSON)],
                          artifact_type=RELEASE_ARTIFACT_TYPE)


def config_bundle(files: dict[str, bytes], source: str = "https://github.test/alga/appliance",
                  revision: str = "main@sha1:0000000000000000000000000000000000000000",
                  created: str = BUNDLE_CREATED) -> Artifact:
    """What `flux push artifact --path DIR --source S --revision R` pushes for these files
    (paths relative to DIR): one tar.gz layer under Flux's config and content media types."""
    layer = Blob(FLUX_CONTENT_MEDIA_TYPE, tar_gz(files))
    return image_manifest(Blob(FLUX_CONFIG_MEDIA_TYPE, EMPTY_JSON), [layer],
                          annotations={CREATED: created, SOURCE: source, REVISION: revision})


def tar_gz(files: dict[str, bytes]) -> bytes:
    """The files as a gzipped tar with every timestamp and owner zeroed, in name order."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(archive.getvalue(), mtime=0)


def untar_gz(data: bytes) -> dict[str, bytes]:
    """The files of a tar.gz: what a consumer of a bundle unpacks."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()
                if member.isfile()}


def layout(repositories: dict[str, list[tuple[Artifact, tuple[str, ...]]]]) -> dict[str, bytes]:
    """The static registry tree tests/fakes/mirror serves, by path under its DOCROOT:
    `/v2/REPO/manifests/DIGEST` (the manifest's bytes; its media type is its own `mediaType`),
    `/v2/REPO/tags/TAG` (the digest the tag points at) and `/v2/REPO/blobs/DIGEST`."""
    files = {}
    for repository, artifacts in repositories.items():
        base = f"/v2/{repository}"
        for artifact, tags in artifacts:
            files[f"{base}/manifests/{artifact.digest}"] = artifact.manifest
            files |= {f"{base}/tags/{tag}": artifact.digest.encode() for tag in tags}
            files |= {f"{base}/blobs/{blob.digest}": blob.data for blob in artifact.blobs}
    return files
