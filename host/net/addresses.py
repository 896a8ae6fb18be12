"""This node's primary IPv4 address, read without running commands or sending packets."""

import contextlib
import fcntl
import socket
import struct
from pathlib import Path

SIOCGIFADDR = 0x8915


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


def nameservers(resolv_conf: Path) -> list[str]:
    """The `nameserver` addresses in a resolv.conf-format file."""
    lines = resolv_conf.read_text().splitlines()
    return [line.split()[1] for line in lines
            if line.startswith("nameserver ") and len(line.split()) > 1]


def system_resolvers(root: Path) -> list[str]:
    """The resolvers DHCP or netplan gave this node: systemd-resolved's upstream servers
    when it runs (its /etc/resolv.conf only names the 127.0.0.53 stub), else resolv.conf."""
    for candidate in ("run/systemd/resolve/resolv.conf", "etc/resolv.conf"):
        with contextlib.suppress(OSError):
            if servers := nameservers(root / candidate):
                return servers
    return []
