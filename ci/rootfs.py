#!/usr/bin/env python3
"""A Debian 12 root file system for the real-systemd test tier, built once and cached.

Debian 12's python3-jsonschema is 4.10 like Ubuntu 24.04's, so the appliance code runs
there on the distro packages it will have on the appliance. The tarball is cached outside
the repository, keyed by everything that goes into it.

    python3 ci/rootfs.py            # prints the cached tarball's path, building it if needed
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-yaml", "python3-requests",
            "python3-jsonschema", "iproute2", "procps", "ca-certificates", "ufw", "passwd",
            "openssl")
CACHE = Path(os.environ.get("ALGA_TEST_CACHE", "/var/cache/alga-appliance-tests"))


def rootfs_tarball(extra_packages: tuple[str, ...] = ()) -> Path:
    """The tarball of PACKAGES plus `extra_packages` (the VM tier adds a few)."""
    packages = PACKAGES + extra_packages
    key = hashlib.sha256(f"{SUITE} {' '.join(packages)} minbase v1".encode()).hexdigest()[:16]
    tarball = CACHE / f"debian-{SUITE}-{key}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                        f"--include={','.join(packages)}", SUITE, str(partial)], check=True)
        partial.rename(tarball)
    return tarball


if __name__ == "__main__":
    print(rootfs_tarball())
    sys.exit(0)
