"""The admin password's hash: SHA-512 crypt (`$6$...`), what /etc/shadow holds, made by
`openssl passwd -6` with the password on its standard input (never in its arguments,
which any local user can read)."""

import re

from host.core import hostcmd

# What `crypt(3)` reads as SHA-512 crypt: $6$, an optional rounds=N$, a salt of up to 16
# characters, then the 86-character hash.
SHA512_CRYPT = re.compile(r"^\$6\$(rounds=[0-9]{4,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}$")


class HashFailed(Exception):
    """The hash could not be made; the message names the cause (never the password)."""


def sha512_crypt(password: str) -> str:
    """`password` hashed with a fresh random salt."""
    try:
        hashed = hostcmd.run(["openssl", "passwd", "-6", "-stdin"], stdin=password + "\n")
    except hostcmd.CommandFailed as exc:
        raise HashFailed(f"could not hash the password with openssl ({exc}); check that "
                         "the openssl package is installed") from exc
    hashed = hashed.strip()
    if not SHA512_CRYPT.match(hashed):
        raise HashFailed("openssl passwd -6 did not print a SHA-512 crypt hash; check the "
                         "openssl package")
    return hashed
