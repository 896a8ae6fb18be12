"""OpenSSH public key lines (`type base64 [comment]`, as ssh-keygen writes them): parsed,
checked and fingerprinted the way `ssh-keygen -l` shows them, without running it."""

import base64
import binascii
import hashlib
import struct
import unicodedata
from dataclasses import dataclass

# The key types the appliance accepts, with the name ssh-keygen -l shows for each.
KEY_TYPES = {
    "ssh-ed25519": "ED25519",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "ssh-rsa": "RSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}
MIN_RSA_BITS = 2048
MAX_LINE = 16 * 1024  # a 16384-bit RSA key is under 3 KiB
_ECDSA_BITS = {"nistp256": 256, "nistp384": 384, "nistp521": 521}


class BadKey(ValueError):
    """The line is not an acceptable public key; the message says why and what to give."""


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    bits: int
    comment: str

    @property
    def line(self) -> str:
        """The key as authorized_keys holds it: type, base64 and the comment, if any."""
        text = f"{self.type} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text

    @property
    def fingerprint(self) -> str:
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def describe(self) -> str:
        """As `ssh-keygen -l` prints it: bits, fingerprint, comment, (TYPE)."""
        comment = self.comment or "no comment"
        return f"{self.bits} {self.fingerprint} {comment} ({KEY_TYPES[self.type]})"


def parse(line: str) -> PublicKey:
    """`line` as a public key. Raises BadKey naming what is wrong."""
    if len(line) > MAX_LINE:
        raise BadKey(f"is longer than {MAX_LINE} characters: no public key is that long")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in line):
        raise BadKey("contains a control character or line break: give one key per line")
    parts = line.strip().split(maxsplit=2)
    if not parts or parts[0] not in KEY_TYPES:
        raise BadKey("does not start with a key type (" + ", ".join(KEY_TYPES) + "); give "
                     "the .pub file's line as it is, without options such as from= or "
                     "command=")
    if len(parts) < 2:
        raise BadKey(f"has the type {parts[0]} but no key after it")
    stated, encoded = parts[0], parts[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadKey("the key part is not valid base64: copy the whole line from the .pub "
                     "file") from exc
    bits = _bits(stated, blob)
    comment = parts[2].strip() if len(parts) > 2 else ""
    return PublicKey(stated, blob, bits, comment)


def _bits(stated: str, blob: bytes) -> int:
    """The key's size, after checking the blob is a whole key of the stated type."""
    reader = _Reader(blob)
    embedded = reader.string()
    if embedded != stated.encode():
        raise BadKey(f"says {stated} but the key inside is "
                     f"{embedded.decode('ascii', 'replace')!r}: copy the line again from "
                     "the .pub file")
    if stated in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        if len(reader.string()) != 32:
            raise BadKey("is not a whole ed25519 key (its key is not 32 bytes)")
        bits = 256
    elif stated == "ssh-rsa":
        reader.string()  # the public exponent
        bits = int.from_bytes(reader.string(), "big").bit_length()
        if bits < MIN_RSA_BITS:
            raise BadKey(f"is an RSA key of {bits} bits; use at least {MIN_RSA_BITS} bits "
                         "(ssh-keygen -t ed25519 makes a better key)")
    else:
        curve = reader.string().decode("ascii", "replace")
        if stated not in (f"ecdsa-sha2-{curve}", f"sk-ecdsa-sha2-{curve}@openssh.com"):
            raise BadKey(f"says {stated} but its curve is {curve!r}")
        reader.string()  # the point
        bits = _ECDSA_BITS[curve]
    if stated.startswith("sk-"):
        reader.string()  # the security key's application, usually ssh:
    if not reader.done():
        raise BadKey("has bytes after the key: copy the line again from the .pub file")
    return bits


class _Reader:
    """SSH wire strings (uint32 length, then the bytes), as the key blob holds them."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def string(self) -> bytes:
        if self.at + 4 > len(self.data):
            raise BadKey("is cut short: copy the whole line from the .pub file")
        (size,) = struct.unpack_from(">I", self.data, self.at)
        start, self.at = self.at + 4, self.at + 4 + size
        if self.at > len(self.data):
            raise BadKey("is cut short: copy the whole line from the .pub file")
        return self.data[start:self.at]

    def done(self) -> bool:
        return self.at == len(self.data)
