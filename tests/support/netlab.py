"""A small network lab for tests that need real servers: DNS, HTTPS with a test CA, an HTTP proxy,
and a network namespace that can only reach that proxy.

Every server is a context manager: it binds on __enter__, serves from background threads, and on
__exit__ stops accepting, cuts open connections and joins every thread it started, so nothing
outlives the `with` block. No pytest in here, so any test or script can use it.

Traffic stays on the machine: servers bind loopback (or a namespace's veth address) and the proxy
never resolves names through DNS nor connects anywhere but loopback.
"""

import base64
import contextlib
import ipaddress
import itertools
import json
import os
import re
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import trustme
from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

# How often idle loops (serve_forever, tunnels) look at the stop flag: bounds how long stop takes.
POLL_SECONDS = 0.05
# The ip(8) binary by absolute path, so NetNamespace.run works with an env that has no PATH.
IP = shutil.which("ip") or "/usr/sbin/ip"


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _url(scheme: str, address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}"


# Distinct on each call until it wraps after 250; starting where the process id says keeps test
# processes running side by side from probing the same addresses at the same moment.
_loopback_hosts = itertools.cycle((os.getpid() + step) % 250 + 1 for step in range(250))


def free_loopback_address() -> str:
    """A 127.0.53.N address whose port 53 is free, a different one on each call.

    Linux routes all of 127/8 to lo, so each can be bound without adding it to an interface.
    """
    for _ in range(250):
        address = f"127.0.53.{next(_loopback_hosts)}"
        if _port_53_free(address):
            return address
    raise RuntimeError("every 127.0.53.N address has port 53 in use")


def _port_53_free(address: str) -> bool:
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind((address, 53))
    except OSError:
        return False
    return True


class TestCA:
    """A throwaway certificate authority; its PEM file lives until the object is collected."""

    __test__ = False  # a helper, not a pytest test class, despite the name

    def __init__(self):
        self._ca = trustme.CA()
        directory = Path(tempfile.mkdtemp(prefix="netlab-ca-"))
        weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self.ca_pem_path = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_pem_path))

    def server_context(self, *hostnames_or_ips: str) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for these names, signed by this CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert(*hostnames_or_ips).configure_cert(context)
        return context

    def write_server_files(self, directory: Path, *hostnames_or_ips: str) -> tuple[Path, Path]:
        """A certificate for these names (with its chain) and its key, as PEM files in
        `directory`, for servers that read them from disk."""
        leaf = self._ca.issue_cert(*hostnames_or_ips)
        cert, key = directory / "server.pem", directory / "server-key.pem"
        cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key

    def write_client_files(self, directory: Path, user: str, group: str) -> tuple[Path, Path]:
        """A client certificate for `user` in `group` (subject CN and O: how the Kubernetes API
        server reads a user and its group off a certificate) and its key, as PEM files."""
        leaf = self._ca.issue_cert(user, common_name=user, organization_name=group)
        cert, key = directory / f"{user}.pem", directory / f"{user}-key.pem"
        cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key


class _LabServer:
    """What every lab socketserver shares: its lab object, the stop flag, an address family
    picked from the address, and silence about clients that go away mid-conversation."""

    def __init__(self, address: tuple[str, int], handler, lab: "_Background"):
        self.address_family = _family(address[0])
        self.lab = lab
        self.stopping = lab._stopping
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        # Resets, timeouts and failed handshakes are what tests provoke; anything else is a bug.
        if not isinstance(sys.exception(), OSError):
            super().handle_error(request, client_address)

    def close_connections(self):
        """Nothing to cut for datagram servers."""


class _UDPServer(_LabServer, socketserver.UDPServer):
    pass


class _TCPServer(_LabServer, socketserver.ThreadingTCPServer):
    """Threaded TCP server that remembers its open connections so stopping can cut them,
    which unblocks handler threads waiting on a client instead of waiting out a timeout."""

    allow_reuse_address = True  # rebinding a fixed port (DNS :53) right after a previous test
    tls: ssl.SSLContext | None = None

    def __init__(self, address, handler, lab):
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler, lab)

    def get_request(self):
        connection, client_address = super().get_request()
        if self.tls is not None:
            # The handshake is left to the handler thread, so a slow client can't stall accept().
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, client_address

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        # Under the lock, so close_connections never touches a file descriptor already reused.
        with self._connections_lock:
            self._connections.discard(request)
            super().shutdown_request(request)

    def close_connections(self):
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown, not SSLSocket's, which would also drop the TLS
                    # state that the handler thread is still using.
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)


class _Background:
    """Binds servers on __enter__ and serves them from threads until __exit__."""

    def __init__(self):
        self._stopping = threading.Event()
        self._servers: list[_LabServer] = []
        self._threads: list[threading.Thread] = []

    def _bind(self) -> list[_LabServer]:
        raise NotImplementedError

    def __enter__(self):
        self._stopping.clear()
        self._servers = self._bind()
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                args=(POLL_SECONDS,),
                name=f"netlab-{type(self).__name__}",
                daemon=True,
            )
            for server in self._servers
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
        for server in self._servers:
            server.close_connections()
            server.server_close()  # also joins the handler threads
        for thread in self._threads:
            thread.join()


class _DnsDatagramHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = self.server.lab.reply_to(data)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _DnsStreamHandler(socketserver.BaseRequestHandler):
    """DNS over TCP: each message is preceded by its length in two bytes."""

    def handle(self):
        while (data := self._read_message()) is not None:
            reply = self.server.lab.reply_to(data)
            if reply is None:
                self.server.stopping.wait()  # "drop": keep the client waiting until the lab stops
                return
            self.request.sendall(len(reply).to_bytes(2, "big") + reply)

    def _read_message(self) -> bytes | None:
        length = self._read_exactly(2)
        return None if length is None else self._read_exactly(int.from_bytes(length, "big"))

    def _read_exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data


DNS_BEHAVIOURS = ("answer", "servfail", "drop")
DNS_TTL = 60


class DnsServer(_Background):
    """An authoritative-looking DNS server on UDP and TCP port 53 of `address`.

    `records` maps names to addresses; IPv4 ones answer A queries, IPv6 ones AAAA. Other names get
    NXDOMAIN, a known name without an address of the asked type gets an empty NOERROR answer.
    `behaviour` "servfail" answers SERVFAIL to everything; "drop" never answers.
    """

    def __init__(self, address: str, records: dict[str, list[str]], behaviour: str = "answer"):
        if behaviour not in DNS_BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {DNS_BEHAVIOURS}, not {behaviour!r}")
        super().__init__()
        self.address = address
        self.records = {_dns_key(name): addresses for name, addresses in records.items()}
        self.behaviour = behaviour
        self.queries: list[tuple[str, str]] = []

    def _bind(self):
        udp = _UDPServer((self.address, 53), _DnsDatagramHandler, self)
        try:
            tcp = _TCPServer((self.address, 53), _DnsStreamHandler, self)
        except BaseException:
            udp.server_close()
            raise
        return [udp, tcp]

    def reply_to(self, data: bytes) -> bytes | None:
        """The wire-format reply to a query, or None when the query is to be dropped."""
        query = DNSRecord.parse(data)
        name = str(query.q.qname).rstrip(".")
        self.queries.append((name, QTYPE.get(query.q.qtype)))
        if self.behaviour == "drop":
            return None
        reply = query.reply()
        if self.behaviour == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
        elif _dns_key(name) not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            for record in self._answers(query.q.qname, query.q.qtype):
                reply.add_answer(record)
        return reply.pack()

    def _answers(self, qname, qtype: int) -> list[RR]:
        answers = []
        for address in self.records[_dns_key(str(qname))]:
            version = ipaddress.ip_address(address).version
            if qtype == QTYPE.A and version == 4:
                answers.append(RR(qname, QTYPE.A, rdata=A(address), ttl=DNS_TTL))
            elif qtype == QTYPE.AAAA and version == 6:
                answers.append(RR(qname, QTYPE.AAAA, rdata=AAAA(address), ttl=DNS_TTL))
        return answers


def _dns_key(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass
class Route:
    """How HttpsServer answers one path."""

    status: int = 200
    body: bytes | str | dict = b""  # a dict is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering, to make clients time out
    ranges: bool = False  # answer `Range: bytes=N-` with 206 (unless If-Range names another ETag)
    cut_after: int | None = None  # send this many body bytes, then close the connection...
    cuts: int = 0  # ...on this many responses (counted down), as a flaky link would

    def encoded_body(self) -> tuple[bytes, str]:
        """The body as bytes, with the content type that fits it."""
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


NOT_FOUND = Route(status=404, body="not found")


class _QuietHandler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default, restated because it matters): one request per connection, so no
    # idle keep-alive connections are left for the lab to cut when it stops.
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):
        """Tests read the servers' logs as lists, not from stderr."""


class _RouteHandler(_QuietHandler):
    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def do_GET(self):
        self._answer(with_body=True)

    def do_HEAD(self):
        self._answer(with_body=False)

    def _answer(self, with_body: bool):
        lab = self.server.lab
        lab.requests.append((self.command, self.path, dict(self.headers)))
        route = lab.routes.get(urlsplit(self.path).path, NOT_FOUND)
        if self.server.stopping.wait(route.delay):
            return  # the lab is stopping: don't hold it up
        body, content_type = route.encoded_body()
        status, extra, body = _ranged(route, body, self.headers)
        # Like send_response(), but a route may set its own Date (a server with a wrong clock).
        self.send_response_only(status)
        headers = {"Server": self.version_string(), "Date": self.date_time_string(),
                   **_with_defaults(route.headers | extra, content_type, len(body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body[:route.cut_after] if _take_cut(route) else body)


def _ranged(route: Route, body: bytes, request_headers) -> tuple[int, dict[str, str], bytes]:
    """The status, extra headers and body for a request that may ask for a byte range."""
    if not route.ranges or route.status != 200:
        return route.status, {}, body
    match = re.fullmatch(r"bytes=(\d+)-", request_headers.get("Range", "").strip())
    if_range = request_headers.get("If-Range")
    if match is None or (if_range is not None and if_range != route.headers.get("ETag")):
        return route.status, {}, body
    start = int(match[1])
    if start >= len(body):
        return 416, {"Content-Range": f"bytes */{len(body)}"}, b""
    return 206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}, body[start:]


_cut_lock = threading.Lock()


def _take_cut(route: Route) -> bool:
    """Whether this response is cut short; counts the route's remaining cuts down."""
    with _cut_lock:
        if route.cut_after is None or route.cuts <= 0:
            return False
        route.cuts -= 1
        return True


def _with_defaults(headers: dict[str, str], content_type: str, length: int) -> dict[str, str]:
    """A route's headers plus Content-Type and Content-Length unless it sets them itself."""
    defaults = {"Content-Type": content_type, "Content-Length": str(length)}
    given = {name.lower() for name in headers}
    return {name: value for name, value in defaults.items() if name.lower() not in given} | headers


class HttpsServer(_Background):
    """An HTTPS server (plain HTTP when `ca` is None) answering `routes` by path; unknown paths
    get 404. The certificate names `address` and `hostnames`. On `port`, else a free one."""

    def __init__(
        self,
        ca: TestCA | None,
        routes: dict[str, Route],
        address: str = "127.0.0.1",
        hostnames: tuple[str, ...] = (),
        port: int = 0,
    ):
        super().__init__()
        self.ca = ca
        self.routes = routes
        self.address = address
        self._port = port
        self.hostnames = hostnames
        self.requests: list[tuple[str, str, dict]] = []

    def _bind(self):
        server = _TCPServer((self.address, self._port), _RouteHandler, self)
        if self.ca is not None:
            server.tls = self.ca.server_context(self.address, *self.hostnames)
        return [server]

    @property
    def port(self) -> int:
        return self._servers[0].server_address[1]

    @property
    def url(self) -> str:
        return _url("http" if self.ca is None else "https", self.address, self.port)


# Headers about one hop, which a proxy must not pass on.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
UPSTREAM_CONNECT_TIMEOUT = 5


class _ProxyHandler(_QuietHandler):
    def do_CONNECT(self):
        target = urlsplit(f"//{self.path}")
        self.server.lab.tunnels.append((target.hostname, target.port))
        upstream = self._open_upstream(target.hostname, target.port)
        if upstream is None:
            return
        with upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            # Clients wait for that 200 before sending, so nothing is left unread in self.rfile.
            _splice(self.connection, upstream, self.server.stopping)

    def do_GET(self):
        self._forward()

    def do_HEAD(self):
        self._forward()

    def _forward(self):
        """Pass a plain-HTTP request on (absolute URI in, origin-form out) and stream the
        answer back as it comes."""
        target = urlsplit(self.path)
        if target.scheme != "http" or target.hostname is None:
            self._refuse(400)
            return
        self.server.lab.forwarded.append(self.path)
        upstream = self._open_upstream(target.hostname, target.port or 80)
        if upstream is None:
            return
        with upstream:
            upstream.sendall(self._request_head(target))
            _splice(self.connection, upstream, self.server.stopping)

    def _request_head(self, target) -> bytes:
        path = urlunsplit(("", "", target.path or "/", target.query, ""))
        lines = [f"{self.command} {path} HTTP/1.0"]
        lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        lines.append("Connection: close")  # so the origin's EOF ends the splice
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _open_upstream(self, host: str, port: int) -> socket.socket | None:
        """A connection to the target, or None once the client has been told why not."""
        lab = self.server.lab
        if not lab.authorized(self.headers.get("Proxy-Authorization")):
            self._refuse(407, {"Proxy-Authenticate": 'Basic realm="netlab"'})
            return None
        if not lab.allow(host, port):
            self._refuse(403)
            return None
        address = lab.loopback_address_of(host)
        if address is None:
            self._refuse(502)
            return None
        try:
            return socket.create_connection((address, port), timeout=UPSTREAM_CONNECT_TIMEOUT)
        except OSError:
            self._refuse(502)
            return None

    def _refuse(self, status: int, headers: dict[str, str] | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _splice(client: socket.socket, upstream: socket.socket, stopping: threading.Event):
    """Copy bytes both ways until either side closes or the lab stops."""
    peer = {client: upstream, upstream: client}
    while not stopping.is_set():
        readable, _, _ = select.select(list(peer), [], [], POLL_SECONDS)
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peer[sock].sendall(data)


class ConnectProxy(_Background):
    """An HTTP proxy: CONNECT tunnels (what HTTPS through a proxy uses) and absolute-URI GET/HEAD
    forwarding.

    `credentials` makes it demand Proxy-Authorization: Basic (else 407); `allow(host, port)`
    returning False gets 403. It never asks DNS: a target must be a loopback address or a name
    in `hosts` (name -> loopback address), anything else gets 502.
    """

    def __init__(
        self,
        address: str = "127.0.0.1",
        credentials: tuple[str, str] | None = None,
        allow: Callable[[str, int], bool] | None = None,
        hosts: dict[str, str] | None = None,
    ):
        super().__init__()
        self.address = address
        self.credentials = credentials
        self.allow = allow or (lambda host, port: True)
        self.hosts = {name.lower(): address for name, address in (hosts or {}).items()}
        self.tunnels: list[tuple[str, int]] = []  # every CONNECT target, refused ones included
        self.forwarded: list[str] = []  # every absolute URI asked for with GET/HEAD

    def _bind(self):
        return [_TCPServer((self.address, 0), _ProxyHandler, self)]

    @property
    def url(self) -> str:
        return _url("http", self.address, self._servers[0].server_address[1])

    def authorized(self, header: str | None) -> bool:
        if self.credentials is None:
            return True
        token = base64.b64encode(":".join(self.credentials).encode()).decode()
        return header == f"Basic {token}"

    def loopback_address_of(self, host: str) -> str | None:
        address = self.hosts.get(host.lower(), host)
        try:
            is_loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            return None
        return address if is_loopback else None


NETNS_PREFIX = "netlab-"
NETNS_SLOTS = 256  # one per third octet of 10.213.x.0/30


class NetNamespace:
    """A network namespace (a "node") whose only link is a veth pair to the root namespace.

    The node is `node_address`, the root side `host_address`, in 10.213.x.0/30, with no default
    route: from inside, only what listens on `host_address` in the root namespace is reachable
    (put a ConnectProxy there). Servers on 127.0.0.1 in the root namespace are not, since the
    node's 127.0.0.1 is its own loopback. Anything bound to 0.0.0.0 in the root namespace is.
    """

    def __init__(self):
        self.name = ""
        self.host_address = ""
        self.node_address = ""
        self._host_link = ""

    def __enter__(self):
        slot = self._reserve()
        self.host_address = f"10.213.{slot}.1"
        self.node_address = f"10.213.{slot}.2"
        self._host_link = f"netlab{slot}h"
        try:
            self._wire(node_link=f"netlab{slot}n")
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc_info):
        self._remove()

    def _reserve(self) -> int:
        """The first free slot, taken by creating its namespace: `ip netns add` fails on an
        existing name, so concurrent test processes can't get the same subnet."""
        for slot in range(NETNS_SLOTS):
            self.name = f"{NETNS_PREFIX}{slot}"
            added = subprocess.run([IP, "netns", "add", self.name], capture_output=True, text=True)
            if added.returncode == 0:
                return slot
            if "File exists" not in added.stderr:
                raise RuntimeError(f"ip netns add {self.name}: {added.stderr.strip()}")
        raise RuntimeError(f"all {NETNS_SLOTS} {NETNS_PREFIX}N namespaces exist")

    def _wire(self, node_link: str):
        host_link = self._host_link
        _ip("link", "add", host_link, "type", "veth", "peer", "name", node_link, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", host_link)
        _ip("link", "set", host_link, "up")
        _ip("-n", self.name, "addr", "add", f"{self.node_address}/30", "dev", node_link)
        _ip("-n", self.name, "link", "set", node_link, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def _remove(self):
        # Deleting our end removes both ends now; deleting only the namespace would leave the
        # pair (and its route) to the kernel's asynchronous namespace cleanup for a while.
        subprocess.run([IP, "link", "del", self._host_link], capture_output=True)
        subprocess.run([IP, "netns", "del", self.name], capture_output=True)

    def add_host_addresses(self, count: int) -> list[str]:
        """`count` more addresses on the root side of the link, in 10.214.x.0/24 (x the
        node's slot), routed from the node: clients with many source addresses."""
        subnet = self.host_address.replace("10.213.", "10.214.").rsplit(".", 1)[0]
        added = [f"{subnet}.{n}" for n in range(1, count + 1)]
        commands = "".join(f"addr add {address}/32 dev {self._host_link}\n"
                           for address in added)
        batch = subprocess.run([IP, "-batch", "-"], input=commands, capture_output=True,
                               text=True)
        if batch.returncode != 0:
            raise RuntimeError(f"ip -batch (addr add): {batch.stderr.strip()}")
        _ip("-n", self.name, "route", "add", f"{subnet}.0/24", "via", self.host_address)
        return added

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run a command inside the namespace; output captured as text, exit status not checked.
        As with subprocess.run, `env` replaces the environment rather than adding to it."""
        return subprocess.run(
            [IP, "netns", "exec", self.name, *argv],
            env=env,
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )


def _ip(*args: str):
    done = subprocess.run([IP, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
