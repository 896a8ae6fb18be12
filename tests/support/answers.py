"""Setup answers for tests about everything but the admin's credentials: every first setup
needs the admin password, so these add one (and a confirmation) when none is given and
none is stored."""

import subprocess
from pathlib import Path

from host.setup import inputs

ADMIN_PASSWORD = "river lamp orbit 42"
ADMIN = {"admin_password": ADMIN_PASSWORD, "admin_password_confirm": ADMIN_PASSWORD}
# What a spooled request carries instead (openssl passwd -6 -salt answerssalt0001).
SPOOLED_ADMIN = {"admin_password_hash":
                 "$6$answerssalt0001$HqUWey1V5YfWYsQH926iR0XiRulqbr6Qr8NIE/54k"
                                        "y1qyrIEPtQSDgotTu8raMEv83T5B.E2VS8Ra91/BwxNI0"}


def with_admin(answers: dict, stored: dict | None = None) -> dict:
    """`answers` with the admin password, unless they carry one or `stored` keeps one."""
    if "admin_password" in answers or inputs.admin_password_stored(stored):
        return answers
    return {**ADMIN, **answers}


def parse_with_admin(raw: dict, node_ip: str, stored: dict | None = None, **kwargs) -> dict:
    """parse_setup_inputs of `raw` with the admin password added as `with_admin` does."""
    return inputs.parse_setup_inputs(with_admin(raw, stored) if isinstance(raw, dict) else raw,
                                     node_ip, stored, **kwargs)


def hash_checks(password_hash: str, password: str) -> bool:
    """Whether the SHA-512 crypt `password_hash` is of `password` (openssl, as on the host)."""
    salt = password_hash.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
                           input=password + "\n", capture_output=True, text=True, check=True)
    return again.stdout.strip() == password_hash


def made_public_keys(directory: Path) -> list[tuple[str, str]]:
    """Two keys ssh-keygen makes in `directory`: each .pub line and its `ssh-keygen -l` line."""
    made = []
    for kind in ("ed25519", "ecdsa"):
        path = directory / f"id_{kind}"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"ops@{kind}", "-f",
                        str(path)], check=True)
        listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True,
                                capture_output=True, text=True).stdout.strip()
        made.append((Path(f"{path}.pub").read_text().strip(), listed))
    return made
