"""A server VLAN without DHCP for the VM tier: the guest's second NIC on a tap device,
bridged (layer 2 only: the root namespace has no address on it) to a veth pair whose other
end is in a network namespace the test creates: "the admin's workstation", at WORKSTATION.
Nothing on it answers DHCP. The tests' own servers that the guest must reach (the OCI
registry holding host releases) listen in the root namespace at SERVERS, an address on the
bridge added only by `serve_from_host`.

The tap stays in the root namespace, where qemu attaches to it by name: a tap moved into
another namespace loses its carrier.
"""

import subprocess

from support.netlab import IP

# TEST-NET-2 (RFC 5737): never routed, so nothing outside the namespace can be reached.
PREFIX = 24
WORKSTATION = "198.51.100.1"
GATEWAY = "198.51.100.254"  # a router the site has; nothing answers there
SERVERS = "198.51.100.2"  # the host side of the LAN, for servers a test runs in-process


class SiteLan:
    def __init__(self, name: str = "algavmlan"):
        self.namespace = name
        self.tap, self.bridge = f"{name}0", f"{name}br"
        self._host_end, self._workstation_end = f"{name}h", f"{name}w"

    def __enter__(self):
        self._remove()  # what a killed run left
        _ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0")
        _ip("tuntap", "add", "dev", self.tap, "mode", "tap")
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self._host_end, "type", "veth", "peer", "name",
            self._workstation_end, "netns", self.namespace)
        for link in (self.tap, self._host_end):
            _ip("link", "set", link, "master", self.bridge, "up")
        _ip("link", "set", self.bridge, "up")
        _ip("-n", self.namespace, "addr", "add", f"{WORKSTATION}/{PREFIX}", "dev",
            self._workstation_end)
        _ip("-n", self.namespace, "link", "set", self._workstation_end, "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc_info):
        self._remove()

    def serve_from_host(self) -> str:
        """Give the root namespace SERVERS on the LAN (for servers that run in the test's own
        process, which cannot move into the workstation's namespace); SERVERS."""
        _ip("addr", "add", f"{SERVERS}/{PREFIX}", "dev", self.bridge)
        return SERVERS

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the workstation; output as text, exit status not checked."""
        return subprocess.run([IP, "netns", "exec", self.namespace, *argv], timeout=timeout,
                              capture_output=True, text=True, check=False)

    def _remove(self) -> None:
        for link in (self._host_end, self.tap, self.bridge):
            subprocess.run([IP, "link", "del", link], capture_output=True)
        subprocess.run([IP, "netns", "del", self.namespace], capture_output=True)


def _ip(*args: str) -> None:
    done = subprocess.run([IP, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
