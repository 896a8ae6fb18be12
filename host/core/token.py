"""The setup token: 128+ random bits, created once, readable by the service user only."""

import hmac
import os
import pwd
import secrets
from pathlib import Path

from host.core import paths, state

TOKEN_BYTES = 24  # 192 bits


def token_path(root: Path | None = None) -> Path:
    return paths.on_host(paths.TOKEN_FILE, root)


def ensure_token(root: Path | None = None, owner: str = paths.SERVICE_USER) -> str:
    """The token, creating it (0600, owned by `owner`) if it does not exist yet."""
    path = token_path(root)
    if not path.exists():
        state.write_atomically(path, (secrets.token_urlsafe(TOKEN_BYTES) + "\n").encode(),
                               0o600)
        account = pwd.getpwnam(owner)
        os.chown(path, account.pw_uid, account.pw_gid)
    return read_token(root)


def rotate_token(root: Path | None = None, owner: str = paths.SERVICE_USER) -> str:
    """Replace the token with a new one; the old one stops working at once."""
    token_path(root).unlink(missing_ok=True)
    return ensure_token(root, owner)


def read_token(root: Path | None = None) -> str:
    return token_path(root).read_text(encoding="utf-8").strip()


def matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())
