"""The host release format (issue 23): what `isobuild host-release` builds and the
appliance checks, declared once for both (isobuild may import only host.core).

A host release is the ISO's payload tree (isobuild/payload.py, the bytes the ISO carries
under /alga) packed as a gzip tarball with every file at ./<path>, plus a JSON manifest
(schemas/host-release-manifest.schema.json) listing every file's hash, size and mode, and a
detached binary OpenPGP signature over the manifest's exact bytes, checked with gpgv against
a keyring of the pinned keys only. The artifact's media types and annotations are here too;
fetching and staging one is host/releases/host_release.py's.
"""

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

from host.core import state
from host.core.validation import DocumentInvalid, validate

FORMAT = 1
MANIFEST_SCHEMA = "host-release-manifest.schema.json"
ARTIFACT_TYPE = "application/vnd.alga.appliance.host-release.v1"
MANIFEST_TYPE = "application/vnd.alga.appliance.host-release.manifest.v1+json"
PAYLOAD_TYPE = "application/vnd.alga.appliance.host-release.payload.v1.tar+gzip"
SIGNATURE_TYPE = "application/vnd.alga.appliance.host-release.signature.v1"
VERSION_ANNOTATION = "org.opencontainers.image.version"
NOTES_ANNOTATION = "org.opencontainers.image.description"
CREATED_ANNOTATION = "org.opencontainers.image.created"
MAX_MANIFEST_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 64 << 10
MAX_PAYLOAD_BYTES = 256 << 20  # the schema's bound on payload.size
MAX_TREE_BYTES = 512 << 20  # all files unpacked: a gzip bomb stops here
GPGV_TIMEOUT = 60
ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
RETRY = "retry; if it persists, send the support bundle to support"
NOT_GENUINE = ("do not install it: ask the release engineers which version is genuine, and "
               "send the support bundle to support")


class Refused(Exception):
    """A host release not offered, downloaded or staged: `reason` names the cause and the
    next step. Nothing was changed."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# --- the format: manifest, tarball -------------------------------------------------------

def pack(files) -> bytes:
    """The payload files (isobuild.payload.PayloadFile: path, data, mode) as the release's
    tarball: ./<path>, regular files only, owners and times zeroed, in path order, so the
    same tree always gives the same bytes."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(f"./{item.path}")
            info.size, info.mode = len(item.data), item.mode
            tar.addfile(info, io.BytesIO(item.data))
    return gzip.compress(archive.getvalue(), mtime=0)


def build_manifest(files, tarball: bytes, version: str, min_upgrade_from: str, notes: str,
                   created: str) -> dict:
    manifest = {
        "format": FORMAT, "version": version, "created": created,
        "min_upgrade_from": min_upgrade_from,
        "schemas": {f.filename: f.schema_version for f in state.STATE_FILES},
        "payload": {"sha256": hashlib.sha256(tarball).hexdigest(), "size": len(tarball)},
        "files": [{"path": f.path, "sha256": hashlib.sha256(f.data).hexdigest(),
                   "size": len(f.data), "mode": f.mode}
                  for f in sorted(files, key=lambda f: f.path)],
        "notes": notes,
    }
    check_manifest(manifest, "the host release manifest being built")
    return manifest


def manifest_bytes(manifest: dict) -> bytes:
    """The one serialisation: what is signed, pushed as the config blob and digested."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def check_manifest(manifest: object, source: str) -> dict:
    """`manifest` if it is a host release manifest this code can stage, else Refused."""
    try:
        validate(manifest, MANIFEST_SCHEMA, name="host release manifest", source=source)
    except DocumentInvalid as exc:
        raise Refused(f"{exc}: it is not a host release this appliance can read; "
                      f"{NOT_GENUINE}") from exc
    paths = [entry["path"] for entry in manifest["files"]]
    if len(set(paths)) != len(paths):
        twice = sorted({p for p in paths if paths.count(p) > 1})
        raise Refused(f"the host release manifest ({source}) lists {twice[0]} more than once; "
                      f"{NOT_GENUINE}")
    if sum(entry["size"] for entry in manifest["files"]) > MAX_TREE_BYTES:
        raise Refused(f"the host release manifest ({source}) lists more than "
                      f"{MAX_TREE_BYTES >> 20} MiB of files; {NOT_GENUINE}")
    return manifest


def parse_manifest(data: bytes, source: str) -> dict:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise Refused(f"the host release manifest ({source}) is not JSON ({exc}); "
                      f"{NOT_GENUINE}") from exc
    return check_manifest(document, source)


def extract(tarball: bytes, manifest: dict, into: Path) -> None:
    """Write the tarball's files into the empty directory `into`, refusing the tarball if it
    is not the one the manifest names, and any member that is not a regular file listed in
    the manifest with the same hash, size and mode (a path outside `into` is never listed:
    the schema admits no '..' and no absolute path). Files listed but absent are refused too.
    The caller removes `into` on Refused."""
    check_payload(tarball, manifest)
    listed = {f"./{entry['path']}": entry for entry in manifest["files"]}
    written: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            while (member := tar.next()) is not None:
                entry = _listed_member(member, listed, written)
                _write_member(tar, member, entry, into)
                written.add(member.name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise Refused(f"the host release tarball is damaged ({exc}); {RETRY}") from exc
    missing = sorted(set(listed) - written)
    if missing:
        raise Refused(f"the host release tarball lacks {missing[0].removeprefix('./')} (and "
                      f"{len(missing) - 1} more files) that its manifest lists; {NOT_GENUINE}")


def check_payload(tarball: bytes, manifest: dict) -> None:
    payload = manifest["payload"]
    digest = hashlib.sha256(tarball).hexdigest()
    if len(tarball) != payload["size"] or digest != payload["sha256"]:
        raise Refused(f"the host release tarball ({len(tarball)} bytes, sha256 {digest}) is not "
                      f"the one its signed manifest names ({payload['size']} bytes, sha256 "
                      f"{payload['sha256']}): it was cut short or altered; {RETRY}")


def _listed_member(member: tarfile.TarInfo, listed: dict, written: set) -> dict:
    shown = member.name.removeprefix("./")
    if member.name not in listed:
        raise Refused(f"the host release tarball holds {member.name!r}, which its signed "
                      f"manifest does not list; {NOT_GENUINE}")
    if not member.isreg():
        kind = "a symbolic link" if member.issym() else "a hard link" if member.islnk() else \
            "a directory" if member.isdir() else "a special file"
        raise Refused(f"the host release tarball holds {shown} as {kind}, not a regular "
                      f"file; {NOT_GENUINE}")
    if member.name in written:
        raise Refused(f"the host release tarball holds {shown} twice; {NOT_GENUINE}")
    entry = listed[member.name]
    if member.size != entry["size"] or member.mode & 0o7777 != entry["mode"]:
        raise Refused(f"{shown} in the host release tarball has size {member.size} and mode "
                      f"{member.mode & 0o7777:o}, its signed manifest says {entry['size']} and "
                      f"{entry['mode']:o}; {NOT_GENUINE}")
    return entry


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: dict,
                  into: Path) -> None:
    data = tar.extractfile(member).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise Refused(f"{entry['path']} in the host release tarball hashes to {digest}, its "
                      f"signed manifest says {entry['sha256']}; {NOT_GENUINE}")
    target = into / entry["path"]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Only this function creates anything under `into`, and only directories and
        # regular files: there is no link to follow; O_NOFOLLOW and O_EXCL say so anyway.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     entry["mode"])
    except OSError as exc:  # a file where the path needs a directory, or the reverse
        raise Refused(f"{entry['path']} of the host release cannot be written into "
                      f"{into} ({exc.strerror}); {NOT_GENUINE}") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        os.fchmod(out.fileno(), entry["mode"])  # not narrowed by the umask


# --- signatures --------------------------------------------------------------------------

def dearmor(text: str) -> bytes:
    """The binary key packets of an ASCII-armored public key: what gpgv reads as a keyring.
    ValueError if `text` is not one."""
    lines = text.strip().splitlines()
    start, end = lines.index(ARMOR_BEGIN), lines.index(ARMOR_END)
    body = lines[start + 1:end]
    body = body[body.index("") + 1:]  # the armor headers end at the first blank line
    return base64.b64decode("".join(line for line in body if not line.startswith("=")),
                            validate=True)


def verify_signature(data: bytes, signature: bytes, keys: list[dict]) -> str:
    """The fingerprint of the pinned key (trust file `keys`) whose valid signature
    `signature` is over `data`, else Refused."""
    with tempfile.TemporaryDirectory(prefix="alga-host-release-gpgv-") as home:
        keyring, signed, detached = (Path(home) / name for name in ("pinned.gpg", "data", "sig"))
        try:
            keyring.write_bytes(b"".join(dearmor(key["armored"]) for key in keys))
        except ValueError as exc:
            raise Refused("a key in host-release-trust.json is not an ASCII-armored OpenPGP "
                          "public key; self-updates are refused: send the support bundle to "
                          "support") from exc
        signed.write_bytes(data)
        detached.write_bytes(signature)
        statuses = _gpgv(home, keyring, detached, signed)
    names = {status[0] for status in statuses}
    valid = {status[10] for status in statuses if status[0] == "VALIDSIG" and len(status) > 10}
    pinned = {key["fingerprint"] for key in keys}
    if "GOODSIG" in names and valid & pinned:
        return sorted(valid & pinned)[0]
    if "BADSIG" in names:
        raise Refused(f"the host release manifest does not match its signature: it was "
                      f"altered after it was signed; {NOT_GENUINE}")
    # ERRSIG names the issuer's fingerprint when the signature carries it, else its key id.
    signers = sorted(valid | {status[7] if len(status) > 7 and status[7] != "-" else status[1]
                              for status in statuses if status[0] == "ERRSIG" and len(status) > 1})
    if signers:
        raise Refused(f"the host release is signed by {', '.join(signers)}, not by a key this "
                      f"appliance pins ({', '.join(sorted(pinned))}); {NOT_GENUINE}")
    raise Refused(f"the host release's signature is not a valid OpenPGP signature of its "
                  f"manifest (it is unsigned or the signature is damaged); {NOT_GENUINE}")


def _gpgv(home: str, keyring: Path, signature: Path, data: Path) -> list[list[str]]:
    """gpgv's status lines, split; its verdict is in them, not in its exit code."""
    try:
        done = subprocess.run(["gpgv", "--homedir", home, "--status-fd", "1", "--keyring",
                               str(keyring), str(signature), str(data)],
                              capture_output=True, text=True, errors="replace",
                              timeout=GPGV_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise Refused("gpgv is not installed, so no host release can be verified: install "
                      "it (sudo apt-get install gpgv) and try again") from exc
    except subprocess.TimeoutExpired as exc:
        raise Refused(f"gpgv did not finish within {GPGV_TIMEOUT} s; {RETRY}") from exc
    return [line.split()[1:] for line in done.stdout.splitlines()
            if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
