"""A server VLAN without DHCP for the VM tier: a tap device for the guest's second NIC, in a
network namespace the test creates, whose only other member is "the admin's workstation"
(the namespace itself, at WORKSTATION). Nothing on it answers DHCP.

qemu attaches to the tap by name in the root namespace, so the tap is made before qemu
starts and moved into the namespace after (`connect`); the guest's NIC keeps working.
"""

import subprocess

from support.netlab import IP

# TEST-NET-2 (RFC 5737): never routed, so nothing outside the namespace can be reached.
PREFIX = 24
WORKSTATION = "198.51.100.1"
GATEWAY = "198.51.100.254"  # a router the site has; nothing answers there


class SiteLan:
    def __init__(self, name: str = "algavmlan"):
        self.namespace = name
        self.tap = f"{name}0"

    def __enter__(self):
        self._remove()  # a namespace left by a killed run
        _ip("tuntap", "add", "dev", self.tap, "mode", "tap")
        _ip("netns", "add", self.namespace)
        return self

    def __exit__(self, *exc_info):
        self._remove()

    def connect(self) -> None:
        """Move the tap (qemu holds it open) into the namespace, with the workstation's
        address on it."""
        _ip("link", "set", self.tap, "netns", self.namespace)
        _ip("-n", self.namespace, "addr", "add", f"{WORKSTATION}/{PREFIX}", "dev", self.tap)
        _ip("-n", self.namespace, "link", "set", self.tap, "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the workstation; output as text, exit status not checked."""
        return subprocess.run([IP, "netns", "exec", self.namespace, *argv], timeout=timeout,
                              capture_output=True, text=True, check=False)

    def _remove(self) -> None:
        subprocess.run([IP, "netns", "del", self.namespace], capture_output=True)
        subprocess.run([IP, "link", "del", self.tap], capture_output=True)


def _ip(*args: str) -> None:
    done = subprocess.run([IP, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
