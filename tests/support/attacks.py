"""Attacks on the :8080 service, for its tests, the nspawn tier's security tests and
`ci/bench/web_attack.py`: a real `alga-appliance serve` on loopback (HTTPS too, if asked),
slowloris clients (of requests, or of TLS handshakes), an admin polling through them, large
uploads without a token, raw requests, and what can be measured of the server from outside
while they run."""

import concurrent.futures
import contextlib
import getpass
import grp
import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import requests

from host.core import tls, token

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp
POLL_TIMEOUT = 10.0  # an admin's request that takes longer than this counts as failed
# The start of a request with a long header, sent a byte at a time: never complete.
SLOW_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: appliance\r\nX-Padding: " + b"a" * 60000
# A TLS handshake record announcing 16 KiB, sent a byte at a time: never complete.
SLOW_HANDSHAKE = b"\x16\x03\x01\x40\x00" + b"\x01" * 16384


@dataclass
class Service:
    """A running `alga-appliance serve` and what can be measured of it from outside: `pid`
    as this machine's /proc numbers it (a container's service too)."""

    host: str
    port: int
    pid: int
    bearer: str
    https_url: str | None = None  # with HTTPS: its base URL

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise KeyError("VmRSS")

    def client_connections(self) -> int:
        """The clients' TCP connections the server holds open (not its listening socket,
        nor the journal's stream a unit's output goes to)."""
        clients = self._client_socket_inodes()
        return sum(target in clients for target in self._fd_targets())

    def _client_socket_inodes(self) -> set[str]:
        """`socket:[inode]` of every TCP socket on the service's port but the listening one,
        from the server's own network namespace's tables."""
        inodes = set()
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(FileNotFoundError):  # no IPv6
                rows = Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]
                for fields in (row.split() for row in rows):
                    local_port, tcp_state, inode = int(fields[1].split(":")[1], 16), fields[3], \
                        fields[9]
                    if local_port == self.port and tcp_state != TCP_LISTEN:
                        inodes.add(f"socket:[{inode}]")
        return inodes

    def temporary_files(self) -> list[str]:
        """Files the server holds open that were deleted: waitress's spooled bodies."""
        return [target for target in self._fd_targets() if target.endswith("(deleted)")]

    def _fd_targets(self) -> list[str]:
        targets = []
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed while listed
                targets.append(os.readlink(fd))
        return targets


@contextlib.contextmanager
def running_service(root: Path, https: bool = False) -> Iterator[Service]:
    """`alga-appliance serve` on 127.0.0.1 with a token in `root` (a host root), and with
    `https` a certificate from ensure-tls's code (without, HTTPS is off: no certificate)."""
    bearer = token.ensure_token(root, owner=getpass.getuser())
    port, tls_port = free_port(), free_port()
    if https:
        tls.ensure(root, group=grp.getgrgid(os.getgid()).gr_name)
    with open(root / "server.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "host", "--root", str(root), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--tls-port", str(tls_port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
    service = Service("127.0.0.1", port, server.pid, bearer,
                      f"https://127.0.0.1:{tls_port}" if https else None)
    try:
        _wait_until_up(service.url, server)
        yield service
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"alga-appliance serve exited with {server.returncode}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"alga-appliance serve did not answer {url}/healthz within 20 s")


class SlowClients:
    """`count` connections to `host`:`port` from `sources` in turn, each sending one more
    byte of a request every `interval` seconds and opening again when the server closes it,
    as slowloris does (in a thread: start(), stop())."""

    def __init__(self, host: str, port: int, sources: list[str], count: int, interval: float,
                 payload: bytes = SLOW_REQUEST):
        self.host, self.port, self.sources = host, port, sources
        self.count, self.interval, self.payload = count, interval, payload
        self.connects = self.refused = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "SlowClients":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)

    def _run(self) -> None:
        slots = [None] * self.count  # [socket, bytes sent] or None
        while not self.stopping.is_set():
            for index in range(self.count):
                if self.stopping.wait(self.interval / self.count):
                    break
                slots[index] = self._step(slots[index], self.sources[index % len(self.sources)])
        for slot in slots:
            if slot:
                slot[0].close()

    def _step(self, slot: list | None, source: str) -> list | None:
        """One more byte on this connection, or a new connection if it was closed."""
        if slot is not None and not closed(slot[0]):
            with contextlib.suppress(OSError):
                slot[0].send(self.payload[slot[1]:slot[1] + 1])
                slot[1] += 1
                return slot
        if slot is not None:
            slot[0].close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5,
                                            source_address=(source, 0))
        except OSError:
            self.refused += 1
            return None
        self.connects += 1
        sock.send(self.payload[:1])
        return [sock, 1]


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed `sock`, seen without waiting."""
    timeout = sock.gettimeout()
    sock.settimeout(0)  # with a timeout, recv would wait for data first
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


@dataclass
class Polls:
    """What an admin polling the service saw: each request's latency, and what failed."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def poll_as_admin(service: Service, seconds: float, pause: float = 0.1,
                  url: str | None = None) -> Polls:
    """GET /healthz and GET /api/status with the token in turn for `seconds`, each on a new
    connection (as a browser does once its kept-alive one is closed), at `url` (default: the
    service's HTTP one; an HTTPS one is not verified: the tests check its fingerprint). Like
    a browser, the client sets up its TLS once: each request's time is the server's and the
    handshake's, not that of loading the system's CA bundle again (requests does, per call)."""
    polls = Polls()
    target = urlsplit(url or service.url)
    tls_context = ssl._create_unverified_context() if target.scheme == "https" else None
    auth = {"Authorization": f"Bearer {service.bearer}"}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for path, headers in (("/healthz", {}), ("/api/status", auth)):
            began = time.monotonic()
            try:
                status = _get_once(target, path, headers, tls_context)
                if status != 200:
                    polls.failures.append(f"{path}: HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                polls.failures.append(f"{path}: {type(exc).__name__}")
            polls.latencies.append(time.monotonic() - began)
            time.sleep(pause)
    return polls


def _get_once(target: SplitResult, path: str, headers: dict,
              tls_context: ssl.SSLContext | None) -> int:
    """GET `path` on a connection of its own; the answer's status."""
    if tls_context is None:
        connection = http.client.HTTPConnection(target.hostname, target.port,
                                                timeout=POLL_TIMEOUT)
    else:
        connection = http.client.HTTPSConnection(target.hostname, target.port,
                                                 timeout=POLL_TIMEOUT, context=tls_context)
    try:
        connection.request("GET", path, headers={**headers, "Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


class Sampler:
    """The server's open client connections and temporary files, every `period` seconds
    while in the context."""

    def __init__(self, service: Service, period: float = 0.25):
        self.service, self.period = service, period
        self.connections: list[int] = []
        self.spooled: set[str] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def _run(self):
        while not self.stopping.wait(self.period):
            self.connections.append(self.service.client_connections())
            self.spooled.update(self.service.temporary_files())


@dataclass
class Slowloris:
    """One slowloris run with an admin polling through it: what each side saw."""

    attack: SlowClients
    held: list[int]  # the server's client connections, sampled
    spooled: set[str]  # temporary files the server opened meanwhile
    polls: Polls

    def describe(self) -> list[str]:
        held, polls = sorted(self.held), self.polls
        return [f"connections held by the server: median {held[len(held) // 2]}, max "
                f"{held[-1]}; the attack opened {self.attack.connects} (refused "
                f"{self.attack.refused})",
                f"admin: {len(polls.latencies)} requests, {len(polls.failures)} failed; p50 "
                f"{polls.percentile(0.5) * 1000:.1f} ms, p99 {polls.percentile(0.99) * 1000:.1f}"
                f" ms, max {max(polls.latencies) * 1000:.1f} ms"]


def slowloris(service: Service, sources: list[str], seconds: float, interval: float = 3.0,
              count: int = 200) -> Slowloris:
    """`count` slow clients from `sources` for `seconds` once they all trickle, while an admin
    polls the service (poll_as_admin) and its connections are sampled."""
    attack = SlowClients(service.host, service.port, sources, count, interval).start()
    try:
        time.sleep(interval + 0.5)  # every connection opened and trickling
        with Sampler(service) as sampler:
            polls = poll_as_admin(service, seconds)
    finally:
        attack.stop()
    return Slowloris(attack, sampler.connections, sampler.spooled, polls)


@dataclass
class Upload:
    outcome: str  # "413", "closed" (the server cut the upload short) or what went wrong
    seconds: float
    bytes_sent: int


def upload_without_token(host: str, port: int, size: int, chunked: bool) -> Upload:
    """POST /api/setup with a `size`-byte body and no token, streamed in 64 KiB blocks from a
    generator until the server answers or closes; the body's length announced, or chunked."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    began, sent = time.monotonic(), 0
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"POST /api/setup HTTP/1.1\r\nHost: appliance\r\n"
                     f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode())
        try:
            for block in _body(size, chunked):
                sock.sendall(block)
                sent += len(block)
        except TimeoutError:
            return Upload("stalled: the server neither read nor closed", 0.0, sent)
        except OSError:
            pass  # closed by the server: its answer may still be there to read
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
    outcome = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
    return Upload(outcome, time.monotonic() - began, sent)


def _body(size: int, chunked: bool) -> Iterator[bytes]:
    block = b"x" * 65536
    for _ in range(-(-size // len(block))):  # whole blocks: at least `size` bytes
        yield b"10000\r\n" + block + b"\r\n" if chunked else block
    if chunked:
        yield b"0\r\n\r\n"


def disk_free(path: str) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def concurrent_uploads(host: str, port: int, count: int = 20, size: int = GIB) -> list[Upload]:
    """`count` uploads without a token at once, every other one chunked."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda n: upload_without_token(host, port, size, chunked=n % 2),
                             range(count)))


def describe_uploads(uploads: list[Upload]) -> str:
    return (f"answers: {', '.join(sorted({u.outcome for u in uploads}))}; slowest "
            f"{max(u.seconds for u in uploads) * 1000:.0f} ms; most sent before the refusal "
            f"{max(u.bytes_sent for u in uploads) / (1 << 20):.1f} MiB")


def exchange(host: str, port: int, request: bytes, source: str = "") -> tuple[int, dict, bytes]:
    """One raw request from `source` (any address when empty); the answer's status, headers
    (lower-case names) and body, read until the server closes."""
    with socket.create_connection((host, port), timeout=10,
                                  source_address=(source, 0)) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body
