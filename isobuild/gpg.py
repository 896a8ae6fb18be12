"""OpenPGP signatures: checking Ubuntu's signed SHA256SUMS against a pinned key (Debian's
`gpgv`), and signing the appliance ISO's SHA256SUMS for customers (`gpg`).

The trust decision is a pin, not a keyring: a signature counts only when gpgv reports it
valid and its primary key has the pinned fingerprint. Canonical's CD image signing key is
the default pin; ISOBUILD_UBUNTU_SIGNING_KEY (an armored public key file) together with
ISOBUILD_UBUNTU_SIGNING_FINGERPRINT replaces it, for an internal mirror that re-signs, and
for the tests' throwaway key. Neither is set by default.
"""

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from host.core import host_release_format
from host.core.validation import DocumentInvalid, validate
from isobuild.errors import IsoBuildError

KEY_ENV = "ISOBUILD_UBUNTU_SIGNING_KEY"
FINGERPRINT_ENV = "ISOBUILD_UBUNTU_SIGNING_FINGERPRINT"
# Ubuntu CD Image Automatic Signing Key (2012) <cdimage@ubuntu.com>, checked against the
# key material of the file below.
UBUNTU_FINGERPRINT = "843938DF228D22F7B3742BC0D94AA3F0EFE21092"
UBUNTU_KEY = Path(__file__).parent / "keys" / "ubuntu-cdimage-signing-key.asc"
GPG_TIMEOUT = 120
INSTALL_HINT = "install it (apt-get install gpgv gnupg; ci/setup.sh does) and run again"


@dataclass(frozen=True)
class PinnedKey:
    path: Path
    fingerprint: str

    @property
    def is_ubuntu(self) -> bool:
        return self.fingerprint == UBUNTU_FINGERPRINT


def pinned_key() -> PinnedKey:
    """Canonical's key, or the one both override variables name."""
    path, fingerprint = os.environ.get(KEY_ENV), os.environ.get(FINGERPRINT_ENV)
    if path is None and fingerprint is None:
        return PinnedKey(UBUNTU_KEY, UBUNTU_FINGERPRINT)
    if not path or not fingerprint:
        raise IsoBuildError(f"only one of {KEY_ENV} and {FINGERPRINT_ENV} is set",
                            "set both (the key file and its fingerprint) to trust another "
                            "signing key, or neither to trust Canonical's")
    return PinnedKey(Path(path), fingerprint.replace(" ", "").upper())


def verify_signature(data: Path, signature: Path, key: PinnedKey) -> None:
    """Return if `signature` is a valid detached signature of `data` by `key`, else raise."""
    with tempfile.TemporaryDirectory(prefix="isobuild-gpgv-") as home:
        keyring = Path(home) / "pinned.gpg"
        keyring.write_bytes(_dearmor(key.path))
        output = _run(["gpgv", "--homedir", home, "--status-fd", "1", "--keyring", str(keyring),
                       str(signature), str(data)])
    statuses = [line.split()[1:] for line in output.stdout.splitlines()
                if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
    _judge(statuses, data, signature, key)


def _judge(statuses: list[list[str]], data: Path, signature: Path, key: PinnedKey) -> None:
    names = {status[0] for status in statuses}
    if "BADSIG" in names:
        raise IsoBuildError(f"{signature.name} does not match {data.name}: {data.name} was "
                            "altered after it was signed",
                            "the mirror or something between serves a tampered file: do not "
                            "use it; download from releases.ubuntu.com or another mirror")
    valid = {status[10] for status in statuses if status[0] == "VALIDSIG" and len(status) > 10}
    if key.fingerprint in valid:
        return
    signers = sorted(valid | {status[1] for status in statuses
                              if status[0] in ("ERRSIG", "NO_PUBKEY") and len(status) > 1})
    if signers:
        raise IsoBuildError(f"{signature.name} is signed by {', '.join(signers)}, not by the "
                            f"pinned key {key.fingerprint} ({key.path})",
                            "do not use these files: get the release from releases.ubuntu.com "
                            "or a mirror that serves Canonical's signed SHA256SUMS")
    raise IsoBuildError(f"{signature.name} is not an OpenPGP signature of {data.name}",
                        f"fetch {signature.name} again from the directory {data.name} came from")


def _dearmor(path: Path) -> bytes:
    """The binary key packets of an ASCII-armored key file: what gpgv reads as a keyring."""
    try:
        return host_release_format.dearmor(_read_key(path, f"point {KEY_ENV} at an ASCII-armored "
                                                    "public key"))
    except ValueError as exc:
        raise IsoBuildError(f"{path} is not an ASCII-armored OpenPGP public key",
                            f"export it with `gpg --armor --export` and point {KEY_ENV} at "
                            "it") from exc


def _read_key(path: Path, next_step: str) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise IsoBuildError(f"cannot read the signing key {path}: {exc}", next_step) from exc


def host_release_trust(key_files: tuple[str, ...], repository: str) -> dict | None:
    """The payload's host-release-trust.json for these public key files, or None without
    any: each file one armored public key, its fingerprint read by gpg, none twice."""
    if not key_files:
        return None
    keys = [_host_release_key(Path(name)) for name in key_files]
    fingerprints = [key["fingerprint"] for key in keys]
    if len(set(fingerprints)) != len(fingerprints):
        raise IsoBuildError(f"--host-release-key names the key {fingerprints[0]} twice",
                            "give the current key and, during a rotation, the next: two "
                            "different keys")
    document = {"repository": repository, "keys": keys}
    try:
        validate(document, "host-release-trust.schema.json", name="host release trust",
                 source="--host-release-key")
    except DocumentInvalid as exc:
        raise IsoBuildError(str(exc), "check the key files and --host-release-repository"
                            ) from exc
    return document


def _host_release_key(path: Path) -> dict:
    step = "export the public key with `gpg --armor --export KEYID > FILE` and pass that FILE"
    armored = _read_key(path, step)
    if "PRIVATE KEY BLOCK" in armored:
        raise IsoBuildError(f"{path} holds a secret key: it would be on every appliance",
                            step)
    try:
        host_release_format.dearmor(armored)
    except ValueError as exc:
        raise IsoBuildError(f"{path} is not an ASCII-armored OpenPGP public key", step) from exc
    with tempfile.TemporaryDirectory(prefix="isobuild-gpg-") as home:
        listing = _run(["gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys",
                        str(path)], what=f"reading the key {path}").stdout.splitlines()
    primaries = [i for i, line in enumerate(listing) if line.startswith("pub:")]
    if len(primaries) != 1:
        raise IsoBuildError(f"{path} holds {len(primaries)} public keys, not one", step)
    fingerprint = next(line.split(":")[9] for line in listing[primaries[0]:]
                       if line.startswith("fpr:"))
    begin, end = host_release_format.ARMOR_BEGIN, host_release_format.ARMOR_END
    block = armored[armored.index(begin):armored.index(end) + len(end)]
    return {"fingerprint": fingerprint.upper(), "armored": block + "\n"}


def sign_detached(data: Path, key: str, armor: bool = True) -> Path:
    """`data`.gpg, an armored detached signature made with `key` (or, not armored,
    `data`.sig, binary): a secret key file (imported into a throwaway home) or a key id in
    the user's own gpg keyring."""
    signature = data.with_name(data.name + (".gpg" if armor else ".sig"))
    command = ["--yes", *(["--armor"] if armor else []), "--detach-sign", "--output",
               str(signature), str(data)]
    if not Path(key).is_file():
        _run(["gpg", "--local-user", key, *command], what=f"signing with key {key}")
        return signature
    with tempfile.TemporaryDirectory(prefix="isobuild-gpg-") as home:
        try:
            _run(["gpg", "--homedir", home, "--batch", "--import", key],
                 what=f"importing the signing key {key}")
            _run(["gpg", "--homedir", home, "--batch", *command], what=f"signing with {key}")
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"],
                           capture_output=True, check=False)
    return signature


def check_signing_key(key: str) -> None:
    """Fail before the build when `key` can't sign: no such file and no such secret key."""
    if Path(key).is_file():
        return
    _run(["gpg", "--batch", "--list-secret-keys", key], what=f"looking up secret key {key}")


def _run(argv: list[str], what: str = "") -> subprocess.CompletedProcess:
    """Run gpg or gpgv; only gpg's own failures raise (gpgv's verdict is in its status)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=GPG_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise IsoBuildError(f"{argv[0]} is not installed", INSTALL_HINT) from exc
    except subprocess.TimeoutExpired as exc:
        raise IsoBuildError(f"{argv[0]} did not finish within {GPG_TIMEOUT} s",
                            "a passphrase prompt may be waiting: use gpg-agent with the "
                            "passphrase cached, then run again") from exc
    if what and done.returncode != 0:
        raise IsoBuildError(f"gpg failed {what}: {done.stderr.strip()[-500:]}",
                            "check --sign-key: a secret key id from `gpg --list-secret-keys` "
                            "or an exported secret key file")
    return done
