"""A minimal DNS client: ask one resolver for a name's A or AAAA records over UDP.

Preflight must test resolution through exactly the resolvers setup will use (the
system's, or the admin's custom ones), which getaddrinfo cannot be pointed at, and
Ubuntu Server ships no DNS library for Python.
"""

import errno
import ipaddress
import secrets
import socket
import struct

QTYPES = {"A": 1, "AAAA": 28}
NO_ROUTE = (errno.ENETUNREACH, errno.EHOSTUNREACH)
RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsError(Exception):
    """The resolver did not answer (`answered` false), or answered with an error.
    `no_route`: this machine has no route to the resolver, so the network, not DNS, is at
    fault."""

    def __init__(self, message: str, no_route: bool = False, answered: bool = True):
        self.no_route, self.answered = no_route, answered
        super().__init__(message)


def resolve(name: str, server: str, qtype: str = "A", timeout: float = 3.0) -> list[str]:
    """Addresses for `name` from `server` (port 53), or DnsError."""
    query_id = secrets.randbelow(1 << 16)
    family = socket.AF_INET6 if ipaddress.ip_address(server).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(_query(query_id, name, QTYPES[qtype]), (server, 53))
            while True:
                reply, _ = sock.recvfrom(4096)
                if len(reply) >= 2 and struct.unpack_from("!H", reply)[0] == query_id:
                    return _answers(reply, QTYPES[qtype])
        except TimeoutError as exc:
            raise DnsError(f"no answer from {server} within {timeout:g} s",
                           answered=False) from exc
        except OSError as exc:
            raise DnsError(f"cannot reach {server}: {exc.strerror or exc}",
                           exc.errno in NO_ROUTE, answered=False) from exc


def _query(query_id: int, name: str, qtype: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired
    labels = b"".join(bytes([len(p)]) + p.encode("idna") for p in name.rstrip(".").split("."))
    return header + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def _answers(message: bytes, qtype: int) -> list[str]:
    try:
        flags, questions, answers = struct.unpack_from("!HHH", message, 2)
        rcode = flags & 0xF
        if rcode:
            raise DnsError(RCODES.get(rcode, f"rcode {rcode}"))
        offset = 12
        for _ in range(questions):
            offset = _skip_name(message, offset) + 4
        found = []
        for _ in range(answers):
            offset = _skip_name(message, offset)
            rtype, _, _, length = struct.unpack_from("!HHIH", message, offset)
            offset += 10
            if rtype == qtype:
                found.append(str(ipaddress.ip_address(message[offset:offset + length])))
            offset += length
    except (IndexError, struct.error, ValueError) as exc:
        raise DnsError(f"malformed answer ({exc})") from exc
    if not found:
        raise DnsError(f"no {'A' if qtype == 1 else 'AAAA'} records")
    return found
