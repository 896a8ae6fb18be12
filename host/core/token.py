"""The setup token: 140 random bits that a person copies by eye from a VM console.

It is 28 characters of Crockford's base32 alphabet (digits and capitals without I, L, O and
U, so nothing looks like something else), stored and shown grouped by 4 with dashes
(`for_people`). What a person presents is accepted in any case, with or without the dashes
or spaces, and with Crockford's decoding of the look-alikes (O is 0; I and L are 1)
(`normalised`); it is then compared in constant time.

A token file that holds anything else (empty, whitespace, the base64url token of older
appliances, not UTF-8) is no token at all: the web service refuses every request (fail
closed) and `ensure-token` replaces it. The file lives in a directory of its own, owned by
the service user, so that the unprivileged web service can replace it atomically (rotate).
"""

import hmac
import os
import pwd
import secrets
from pathlib import Path

from host.core import paths, state

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: 5 bits a character
TOKEN_CHARACTERS = 28  # 140 bits
GROUP = 4
# Crockford's decoding: what a person reading O, I or L off a screen meant.
LOOK_ALIKES = str.maketrans("OIL", "011")
SEPARATORS = str.maketrans("", "", "- ")
# Longer than any way of writing a token (one space or dash between every character):
# a bound on the work a presented value costs, and on how much of a stray file is read.
MAX_PRESENTED = 2 * TOKEN_CHARACTERS + 8
MAX_FILE_BYTES = MAX_PRESENTED + 64  # room for whitespace around it
NEXT_STEP = "on the host run: sudo alga-appliance ensure-token"


class NoValidToken(Exception):
    """The token file is missing or holds no valid token; the message names the file, what
    is wrong with it and the next step."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"no valid setup token: {path} {problem}; {NEXT_STEP}")


def for_people(setup_token: str) -> str:
    """The token as it is stored and shown: groups of 4 joined by dashes."""
    return "-".join(setup_token[i:i + GROUP] for i in range(0, len(setup_token), GROUP))


def normalised(presented: str) -> str | None:
    """The token `presented` spells (28 characters of ALPHABET), or None when it spells
    none. ASCII only, and checked before changing case: str.upper() turns some non-ASCII
    letters (the dotless i U+0131, the long s U+017F) into ASCII ones, and fullwidth
    digits are no digits a console shows."""
    if len(presented) > MAX_PRESENTED or not presented.isascii():
        return None
    compact = presented.translate(SEPARATORS).upper().translate(LOOK_ALIKES)
    if len(compact) != TOKEN_CHARACTERS or not all(c in ALPHABET for c in compact):
        return None
    return compact


def token_path(root: Path | None = None) -> Path:
    return paths.on_host(paths.TOKEN_FILE, root)


def ensure_token(root: Path | None = None, owner: str = paths.SERVICE_USER) -> str:
    """The token, writing a new one (0600, owned by `owner`) when the file is missing or
    holds no valid token."""
    try:
        return read_token(root)
    except NoValidToken:
        return rotate_token(root, owner)


def rotate_token(root: Path | None = None, owner: str = paths.SERVICE_USER) -> str:
    """Replace the token with a new one; the old one stops working at once (every request
    reads the file). Its directory is made, owned by `owner`, when missing (root only)."""
    path = token_path(root)
    made = not path.parent.is_dir()
    if made:
        path.parent.mkdir(mode=0o700)
    new = "".join(secrets.choice(ALPHABET) for _ in range(TOKEN_CHARACTERS))
    state.write_atomically(path, (for_people(new) + "\n").encode(), 0o600)
    account = pwd.getpwnam(owner)
    for owned in [path.parent, path] if made else [path]:
        os.chown(owned, account.pw_uid, account.pw_gid)
    return read_token(root)


def read_token(root: Path | None = None) -> str:
    """The token (28 characters, without dashes); NoValidToken when there is none. Any other
    OSError (the file cannot be read by this user) is raised as it is."""
    path = token_path(root)
    try:
        with open(path, "rb") as fp:
            data = fp.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise NoValidToken(path, "does not exist") from None
    if len(data) > MAX_FILE_BYTES:
        raise NoValidToken(path, f"is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise NoValidToken(path, "is not UTF-8 text") from None
    if not text:
        raise NoValidToken(path, "is empty")
    found = normalised(text)
    if found is None:
        raise NoValidToken(path, f"does not hold a setup token ({TOKEN_CHARACTERS} letters "
                                 "and digits, grouped by 4; an older appliance's token "
                                 "counts as none)")
    return found


def matches(presented: str, expected: str) -> bool:
    """Whether `presented` spells the token `expected`; constant-time over the normalised
    values, so the time taken tells a guesser nothing about how close it came."""
    return hmac.compare_digest((normalised(presented) or "").encode(), expected.encode())
