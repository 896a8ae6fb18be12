#!/usr/bin/env python3
"""A bootable Debian 12 root for the VM tier: the cached rootfs tarball (ci/rootfs.py) plus
what a real machine needs that a container does not: udev and the host kernel's modules
(virtio-net, virtio-console), netplan over systemd-networkd, and a serial console. The
seed's own network and users are put in by the caller (late_commands.py), as the installer
would.

The guest boots this machine's Debian kernel and initramfs directly (qemu -kernel), so no
boot loader is installed. The caller fills the root (payload, test units) between
`prepare_root` and `make_image`, which packs it into an ext4 image with `mkfs.ext4 -d`.

    python3 ci/vm_image.py ROOT IMAGE   # an image of the bare guest, to try it by hand
"""

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import rootfs

# udev loads the virtio modules and names the agent's port; dnslib serves the guest's DNS;
# netplan renders the seed's network (and the console's changes to it) for networkd;
# openssh-server as the seed installs it (ssh: install-server), whose sshd setup configures.
GUEST_PACKAGES = ("udev", "kmod", "python3-dnslib", "netplan.io", "openssh-server")
AGENT = Path(__file__).resolve().parent / "vm_agent.py"
AGENT_PORT = "alga.agent"
AGENT_UNIT = f"""[Unit]
Description=Test agent on the virtio port {AGENT_PORT} (VM test tier only)
StartLimitIntervalSec=0
[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/alga-test/vm_agent.py /dev/virtio-ports/{AGENT_PORT}
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Kernel:
    vmlinuz: Path
    initrd: Path
    modules: Path


def host_kernel() -> Kernel:
    """The newest kernel in /boot with its initramfs and modules (ci/setup.sh --test)."""
    for vmlinuz in sorted(Path("/boot").glob("vmlinuz-*"), reverse=True):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        kernel = Kernel(vmlinuz, Path(f"/boot/initrd.img-{version}"),
                        Path(f"/lib/modules/{version}"))
        if kernel.initrd.exists() and kernel.modules.is_dir():
            return kernel
    raise FileNotFoundError("no kernel with initramfs and modules in /boot (ci/setup.sh --test)")


def prepare_root(root: Path, kernel: Kernel, hostname: str = "alga-vm") -> None:
    """Unpack the guest into the empty directory `root` and make it bootable."""
    tarball = rootfs.rootfs_tarball(GUEST_PACKAGES)
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)
    shutil.copytree(kernel.modules, root / "lib/modules" / kernel.modules.name, symlinks=True)
    (root / "etc/hostname").write_text(f"{hostname}\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw 0 1\n")
    agent = root / "usr/local/lib/alga-test/vm_agent.py"
    agent.parent.mkdir(parents=True)
    shutil.copy(AGENT, agent)
    (root / "etc/systemd/system/alga-test-agent.service").write_text(AGENT_UNIT)
    subprocess.run(["chroot", str(root), "systemctl", "enable", "--quiet",
                    "systemd-networkd.service", "alga-test-agent.service"], check=True)
    # No resolver at all until a test starts one: the guest must never ask qemu's forwarder.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")


def make_image(root: Path, image: Path, size: str = "20G") -> Path:
    """`root` as a raw ext4 image of `size` (sparse: only what is written takes space).
    20G because preflight fails with less than 15 GiB free for /var/lib/rancher."""
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "alga-vm", "-d", str(root), str(image), size],
                   check=True)
    return image


if __name__ == "__main__":
    root, image = Path(sys.argv[1]), Path(sys.argv[2])
    root.mkdir(parents=True)
    prepare_root(root, host_kernel())
    print(make_image(root, image))
