"""The setup token: 192 random bits, created once, readable by the service user only.

A token file that holds anything else (empty, whitespace, too short, not base64url, not
UTF-8) is no token at all: the web service refuses every request (fail closed) and
`ensure-token` replaces it.
"""

import hmac
import os
import pwd
import re
import secrets
from pathlib import Path

from host.core import paths, state

TOKEN_BYTES = 24  # 192 bits
# What secrets.token_urlsafe(TOKEN_BYTES) writes: base64url without padding, 32 characters.
# Longer is as good (more entropy); the upper bound only stops a stray file being read whole.
MIN_TOKEN_LENGTH = -(-TOKEN_BYTES * 4 // 3)
MAX_TOKEN_LENGTH = 256
MAX_FILE_BYTES = MAX_TOKEN_LENGTH + 64  # room for whitespace around it
VALID_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{MIN_TOKEN_LENGTH},{MAX_TOKEN_LENGTH}}}")
NEXT_STEP = "on the host run: sudo alga-appliance ensure-token"


class NoValidToken(Exception):
    """The token file is missing or holds no valid token; the message names the file, what
    is wrong with it and the next step."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"no valid setup token: {path} {problem}; {NEXT_STEP}")


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
    """Replace the token with a new one; the old one stops working at once."""
    path = token_path(root)
    state.write_atomically(path, (secrets.token_urlsafe(TOKEN_BYTES) + "\n").encode(), 0o600)
    account = pwd.getpwnam(owner)
    os.chown(path, account.pw_uid, account.pw_gid)
    return read_token(root)


def read_token(root: Path | None = None) -> str:
    """The token; NoValidToken when there is none. Any other OSError (the file cannot be
    read by this user) is raised as it is."""
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
    if not VALID_TOKEN.fullmatch(text):
        raise NoValidToken(path, f"does not hold a token of {MIN_TOKEN_LENGTH} to "
                                 f"{MAX_TOKEN_LENGTH} base64url characters")
    return text


def matches(presented: str, expected: str) -> bool:
    """Constant-time, so the time taken tells a guesser nothing."""
    return hmac.compare_digest(presented.encode(), expected.encode())
