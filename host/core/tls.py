"""The web service's HTTPS certificate: a self-signed one made on first boot, or the
customer's own, and its SHA-256 fingerprint (shown on the console banner, so the admin can
check what the browser is shown before trusting it).

Python's ssl module cannot make a certificate, so the `openssl` command does; whether a
pair is usable is asked of the same OpenSSL the service loads it with.
"""

import datetime
import grp
import hashlib
import os
import re
import socket
import ssl
import tempfile
from pathlib import Path

from host.core import hostcmd, paths, state

SELF_SIGNED_DAYS = 3650  # an appliance's own certificate must not expire under it
PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
PEM_KEY = re.compile(rb"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----")
MAX_PEM_BYTES = 1 << 20  # a long chain is a few KiB: a larger file is not a certificate
NEXT_STEP = "on the host run: sudo alga-appliance ensure-tls"


class CertificateProblem(Exception):
    """A certificate or key that cannot serve HTTPS; the message names the file, what is
    wrong and the next step."""


def cert_path(root: Path | None = None) -> Path:
    return paths.on_host(paths.TLS_CERT, root)


def key_path(root: Path | None = None) -> Path:
    return paths.on_host(paths.TLS_KEY, root)


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint of the first certificate (the server's own, before any
    chain), as browsers show it: colon-separated upper-case hex."""
    der = ssl.PEM_cert_to_DER_cert(_first_certificate(cert_pem).decode("ascii"))
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The TLS context the service serves with: TLS 1.2 at least, Python's default ciphers.
    CertificateProblem when the pair cannot be used."""
    check_pair(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key, password=_no_password)
    return context


def check_pair(cert: Path, key: Path, next_step: str = NEXT_STEP) -> None:
    """CertificateProblem unless `cert` and `key` are readable PEM files, the key not
    encrypted (the service starts unattended) and the one the certificate was made for;
    `next_step` is what to do about a missing or empty file."""
    cert_pem, key_pem = _read_pem(cert, next_step), _read_pem(key, next_step)
    if not PEM_CERTIFICATE.search(cert_pem):
        raise CertificateProblem(f"{cert} is not a PEM certificate (a '-----BEGIN "
                                 f"CERTIFICATE-----' block); convert it with: openssl x509 "
                                 f"-in FILE -out cert.pem")
    if b"ENCRYPTED" in key_pem:
        raise CertificateProblem(f"{key} is encrypted with a passphrase, which the service "
                                 f"cannot type at boot; decrypt it with: openssl pkey -in "
                                 f"FILE -out key.pem")
    if not PEM_KEY.search(key_pem):
        raise CertificateProblem(f"{key} is not a PEM private key (a '-----BEGIN PRIVATE "
                                 f"KEY-----' block); convert it with: openssl pkey -in FILE "
                                 f"-out key.pem")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key,
                                                                password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise CertificateProblem(f"{key} is not the key of the certificate {cert}; give "
                                     f"the key the certificate was issued for") from None
        raise CertificateProblem(f"OpenSSL cannot load {cert} with {key} ({exc.reason or exc}"
                                 f"); check both are the PEM files your CA issued") from None


def expires(cert: Path) -> datetime.datetime:
    """When the (first) certificate in `cert` stops being valid, in UTC."""
    try:
        end = hostcmd.run(["openssl", "x509", "-in", str(cert), "-noout", "-enddate"])
    except hostcmd.CommandFailed as exc:
        raise CertificateProblem(f"{cert}: {exc}; check it is a PEM certificate") from None
    seconds = ssl.cert_time_to_seconds(end.strip().removeprefix("notAfter="))
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def ensure(root: Path | None = None, group: str = paths.SERVICE_USER) -> str | None:
    """Keep a usable pair as it is (the customer's or ours), else write a new self-signed
    one; what was wrong with the old one, or None when it was kept."""
    try:
        check_pair(cert_path(root), key_path(root))
        return None
    except CertificateProblem as exc:
        problem = str(exc).removesuffix(f"; {NEXT_STEP}")  # the step being taken now
    with tempfile.TemporaryDirectory() as work:
        cert, key = Path(work, "cert.pem"), Path(work, "key.pem")
        name = socket.gethostname() or "alga-appliance"
        # P-256: made in milliseconds on a small VM, accepted by every current browser.
        hostcmd.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-days", str(SELF_SIGNED_DAYS),
                     "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                     "-keyout", str(key), "-out", str(cert)])
        _write_pair(cert.read_bytes(), key.read_bytes(), root, group)
    return problem


def install(cert: Path, key: Path, root: Path | None = None,
            group: str = paths.SERVICE_USER) -> str:
    """Check the customer's pair and make it the service's; its fingerprint. An expired
    certificate is refused: every browser would refuse it too."""
    check_pair(cert, key, "give the files your certificate authority issued")
    end = expires(cert)
    if end <= datetime.datetime.now(datetime.UTC):
        raise CertificateProblem(f"{cert} expired on {end:%Y-%m-%d}; ask your CA for a "
                                 f"renewed certificate and install that")
    cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
    _write_pair(cert_pem, key_pem, root, group)
    return fingerprint(cert_pem)


def _write_pair(cert_pem: bytes, key_pem: bytes, root: Path | None, group: str) -> None:
    """The key first: until the certificate follows, a restart sees a mismatch and repairs
    it, never a key readable by anyone but root and the service's group."""
    directory = paths.on_host(paths.TLS_DIR, root)
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise CertificateProblem(f"the group {group} does not exist, so this is not an "
                                 f"installed appliance; run this on the appliance") from None
    directory.mkdir(mode=0o750, exist_ok=True)  # in the installer's config directory
    os.chown(directory, 0 if os.geteuid() == 0 else -1, gid)
    state.write_atomically(key_path(root), key_pem, 0o640)
    os.chown(key_path(root), -1, gid)
    state.write_atomically(cert_path(root), cert_pem, 0o644)


def _read_pem(path: Path, next_step: str) -> bytes:
    try:
        with open(path, "rb") as fp:
            data = fp.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise CertificateProblem(f"{path} does not exist; {next_step}") from None
    except IsADirectoryError:
        raise CertificateProblem(f"{path} is a directory, not a PEM file") from None
    if not data.strip():
        raise CertificateProblem(f"{path} is empty; {next_step}")
    if len(data) > MAX_PEM_BYTES:
        raise CertificateProblem(f"{path} is larger than {MAX_PEM_BYTES} bytes: not a "
                                 f"certificate or key")
    return data


def _first_certificate(cert_pem: bytes) -> bytes:
    found = PEM_CERTIFICATE.search(cert_pem)
    if not found:
        raise CertificateProblem("no PEM certificate in the file; " + NEXT_STEP)
    return found.group(0)


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise CertificateProblem("the key is encrypted with a passphrase")
