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
