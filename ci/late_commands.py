#!/usr/bin/env python3
"""Run an autoinstall seed's late-commands against a root directory, as subiquity would.

In the installer the payload is at /cdrom/alga, the new system at /target, and
`curtin in-target --target /target --` runs a command chrooted into it. Here those become
a payload directory, a root directory and `chroot ROOT`, so the seed's own commands are
what installs the payload in the test tiers.
"""

import shlex
import subprocess
from pathlib import Path

import yaml

IN_TARGET = ["curtin", "in-target", "--target", "/target", "--"]


def translate(command: str, root: Path, payload: Path) -> list[str]:
    words = shlex.split(command)
    if words[:len(IN_TARGET)] == IN_TARGET:
        return ["chroot", str(root), *words[len(IN_TARGET):]]
    out = []
    for word in words:
        for prefix, replacement in (("/cdrom/alga", payload), ("/target", root)):
            if word == prefix or word.startswith(prefix + "/"):
                word = str(replacement) + word[len(prefix):]
        out.append(word)
    return out


def run_late_commands(user_data: bytes, root: Path, payload: Path) -> list[list[str]]:
    """Run every late-command; return them as run. Raises on the first that fails."""
    autoinstall = yaml.safe_load(user_data.decode())["autoinstall"]
    ran = []
    for command in autoinstall["late-commands"]:
        argv = translate(command, root, payload)
        subprocess.run(argv, check=True, capture_output=True, text=True)
        ran.append(argv)
    return ran


def replay_network_and_users(user_data: bytes, root: Path) -> None:
    """What the installer does with the seed besides late-commands, for a root that boots
    (the VM tier): subiquity writes `network` as the target's netplan file, and cloud-init
    creates the `user-data` users on first boot (home, groups, shell, a locked password,
    the sudo rule, authorized keys)."""
    autoinstall = yaml.safe_load(user_data.decode())["autoinstall"]
    netplan = root / "etc/netplan/50-cloud-init.yaml"
    netplan.parent.mkdir(parents=True, exist_ok=True)
    netplan.write_text(yaml.safe_dump({"network": autoinstall["network"]}))
    netplan.chmod(0o600)
    for user in autoinstall["user-data"]["users"]:
        _create_user(user, root)


def _create_user(user: dict, root: Path) -> None:
    name = user["name"]
    subprocess.run(["chroot", str(root), "useradd", "--create-home", "--comment", user["gecos"],
                    "--groups", ",".join(user["groups"]), "--shell", user["shell"], name],
                   check=True, capture_output=True, text=True)
    if user["lock_passwd"]:
        subprocess.run(["chroot", str(root), "passwd", "--lock", name], check=True,
                       capture_output=True, text=True)
    sudoers = root / "etc/sudoers.d/90-cloud-init-users"
    sudoers.parent.mkdir(parents=True, exist_ok=True)
    sudoers.write_text(f"{name} {user['sudo']}\n")
    sudoers.chmod(0o440)
    if user["ssh_authorized_keys"]:
        ssh = root / "home" / name / ".ssh"
        ssh.mkdir(mode=0o700)
        (ssh / "authorized_keys").write_text("".join(f"{k}\n" for k in user["ssh_authorized_keys"]))
        subprocess.run(["chroot", str(root), "chown", "-R", f"{name}:{name}", f"/home/{name}/.ssh"],
                       check=True)
