"""An Ubuntu release mirror over HTTPS on loopback, and the throwaway OpenPGP keys that sign
its SHA256SUMS (pytest plugin): fixtures `signing_key`, `other_key`, `ubuntu_mirror`;
classes `SigningKey`, `UbuntuMirror`.

isobuild trusts a test key only the way it trusts Canonical's: through the pin, here the
override variables `SigningKey.trust_env()` returns (isobuild/gpg.py)."""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from isobuild import gpg
from isobuild.download import ISO_NAME, SIGNATURE, SUMS
from support.netlab import HttpsServer, Route, TestCA


class SigningKey:
    """An ed25519 signing key without a passphrase in a throwaway GNUPGHOME; `public` and
    `secret` are its armored exports."""

    __test__ = False

    def __init__(self, directory: Path, name: str, email: str = ""):
        self.home = directory / "gnupg"
        self.home.mkdir(mode=0o700)
        self.gpg("--quick-gen-key", "--passphrase", "",
                 f"{name} <{email or name + '@isobuild.test'}>", "ed25519", "sign", "never")
        colons = self.gpg("--with-colons", "--list-keys").stdout.decode()
        self.fingerprint = next(line.split(":")[9] for line in colons.splitlines()
                                if line.startswith("fpr:"))
        self.public = directory / f"{name}.asc"
        self.public.write_bytes(self.gpg("--armor", "--export", self.fingerprint).stdout)
        self.secret = directory / f"{name}-secret.asc"
        self.secret.write_bytes(self.gpg("--pinentry-mode", "loopback", "--passphrase", "",
                                         "--armor", "--export-secret-keys",
                                         self.fingerprint).stdout)

    def gpg(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", *args],
                              input=data, capture_output=True, check=True)

    def sign(self, data: bytes) -> bytes:
        return self.gpg("--armor", "--detach-sign", data=data).stdout

    def trust_env(self) -> dict[str, str]:
        """The environment that makes isobuild trust this key instead of Canonical's."""
        return {gpg.KEY_ENV: str(self.public), gpg.FINGERPRINT_ENV: self.fingerprint}

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory):
    key = SigningKey(tmp_path_factory.mktemp("signing-key"), "isobuild-test")
    yield key
    key.close()


@pytest.fixture(scope="session")
def other_key(tmp_path_factory):
    """A key nobody pins: a mirror that re-signs with its own key."""
    key = SigningKey(tmp_path_factory.mktemp("other-key"), "someone-else")
    yield key
    key.close()


class UbuntuMirror(HttpsServer):
    """Ubuntu's two download locations on one loopback HTTPS server: `PRIMARY` stands for
    releases.ubuntu.com/<point>/, `FALLBACK` for old-releases.ubuntu.com/releases/<point>/."""

    PRIMARY = "/releases/24.04.4/"
    FALLBACK = "/old-releases/releases/24.04.4/"

    def __init__(self, ca: TestCA):
        super().__init__(ca, {})

    def publish(self, iso: Path | bytes, key: "SigningKey | None", at: str = PRIMARY) -> Route:
        """Serve the ISO as ISO_NAME, a SHA256SUMS naming it and, with `key`, the signature
        of that SHA256SUMS; the ISO's route, which answers Range requests."""
        body = iso if isinstance(iso, bytes) else iso.read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        sums = f"{'0' * 64} *ubuntu-24.04.4-desktop-amd64.iso\n{digest} *{ISO_NAME}\n".encode()
        self.routes[at + SUMS] = Route(body=sums)
        if key is not None:
            self.routes[at + SIGNATURE] = Route(body=key.sign(sums))
        iso_route = Route(body=body, ranges=True, headers={"ETag": f'"{digest[:16]}"'})
        self.routes[at + ISO_NAME] = iso_route
        return iso_route

    def environment(self, cache: Path, key: SigningKey) -> dict[str, str]:
        """isobuild's environment for this mirror: both locations, the test CA, a cache, and
        `key` pinned; no proxy from the caller's environment."""
        env = {name: value for name, value in os.environ.items()
               if name.lower() not in ("https_proxy", "http_proxy", "all_proxy", "no_proxy")}
        return {**env, **key.trust_env(),
                "ISOBUILD_UBUNTU_MIRROR": f"{self.url}{self.PRIMARY} {self.url}{self.FALLBACK}",
                "ISOBUILD_CA_BUNDLE": str(self.ca.ca_pem_path), "ISOBUILD_CACHE_DIR": str(cache)}

    def gets(self) -> list[str]:
        return [path for method, path, _ in self.requests if method == "GET"]


@pytest.fixture
def ubuntu_mirror(ca):
    with UbuntuMirror(ca) as mirror:
        yield mirror
