"""Which resolvers this host uses, and resolving names through them: the one answer for
preflight, the install phases' HTTPS, the support bundle, the web wizard and the console.

System DNS means the resolvers DHCP or netplan gave the node. systemd-resolved keeps them
in its upstream file (its /etc/resolv.conf names only its 127.0.0.53 stub, which k3s cannot
use); without systemd-resolved, /etc/resolv.conf has them. Custom DNS means the admin's
resolvers, which are not the host's until the DNS phase applies them.
"""

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import urllib3.util.connection

from host.core import paths
from host.net import dnsquery

RESOLVED_STUB = "127.0.0.53"
QUERY_TYPES = ("A", "AAAA")


def nameservers(resolv_conf: Path) -> list[str]:
    """The `nameserver` addresses in a resolv.conf-format file."""
    lines = resolv_conf.read_text().splitlines()
    return [line.split()[1] for line in lines
            if line.startswith("nameserver ") and len(line.split()) > 1]


def system(root: Path | None = None) -> list[str]:
    """The resolvers DHCP or netplan gave this node ([] when none can be read)."""
    for candidate in (paths.RESOLVED_UPSTREAM, paths.RESOLV_CONF):
        with contextlib.suppress(OSError):
            if servers := nameservers(paths.on_host(candidate, root)):
                return servers
    return []


def custom(inputs: dict) -> list[str] | None:
    """The admin's resolvers, or None with system DNS."""
    return inputs["dns"]["servers"] if inputs["dns"]["mode"] == "custom" else None


def for_setup(inputs: dict, root: Path | None = None) -> list[str]:
    """The resolvers setup uses: the admin's, or the system's."""
    return custom(inputs) or system(root)


def resolve(name: str, servers: list[str], timeout: float) -> tuple[str, list[str]]:
    """(the server that answered, the addresses of `name`), trying each server for A then
    AAAA; dnsquery.DnsError naming every attempt when none answers."""
    errors, no_route, answered = [], bool(servers), not servers
    for server in servers:
        for qtype in QUERY_TYPES:
            try:
                return server, dnsquery.resolve(name, server, qtype, timeout)
            except dnsquery.DnsError as exc:
                errors.append(f"{server} {qtype}: {exc}")
                no_route, answered = no_route and exc.no_route, answered or exc.answered
    raise dnsquery.DnsError("; ".join(errors) or "no resolvers are configured", no_route,
                            answered)


@contextlib.contextmanager
def resolving_through(servers: list[str] | None, timeout: float = 3.0) -> Iterator[None]:
    """Make HTTPS in this process resolve names through `servers` (custom DNS before the
    DNS phase applied it). None: the system resolver, as usual."""
    if not servers:
        yield
        return
    system_connect = urllib3.util.connection.create_connection

    def connect(address, *args, **kwargs):
        host, port = address
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                host = resolve(host, servers, timeout)[1][0]
            except dnsquery.DnsError as exc:  # a name error, as getaddrinfo's would be
                raise socket.gaierror(socket.EAI_NONAME, f"not through the custom DNS "
                                      f"servers: {exc}") from exc
        return system_connect((host, port), *args, **kwargs)

    # urllib3 looks create_connection up at each connection, so this reaches requests.
    urllib3.util.connection.create_connection = connect
    try:
        yield
    finally:
        urllib3.util.connection.create_connection = system_connect
