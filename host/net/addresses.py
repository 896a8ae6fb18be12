"""This node's IPv4 addresses, read without running commands or sending packets."""

import fcntl
import socket
import struct
from pathlib import Path

SIOCGIFADDR = 0x8915
# k3s's and containers' own interfaces: nobody reaches the appliance through them.
VIRTUAL_INTERFACES = ("lo", "cni", "flannel", "veth", "docker", "kube", "cali", "vxlan")


def default_interface(route_table: Path = Path("/proc/net/route")) -> str | None:
    for line in route_table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":  # destination 0.0.0.0: the default
            return fields[0]
    return None


def interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(raw[20:24])


def node_ip() -> str:
    """The default route's interface address; loopback when there is no network yet."""
    interface = default_interface()
    return (interface_ipv4(interface) if interface else None) or "127.0.0.1"


def node_addresses() -> list[str]:
    """IPv4 addresses of the node's own interfaces, in interface order."""
    found = []
    for _, name in socket.if_nameindex():
        if not name.startswith(VIRTUAL_INTERFACES):
            address = interface_ipv4(name)
            if address and address not in found:
                found.append(address)
    return found
