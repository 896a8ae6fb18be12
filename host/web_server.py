"""The HTTP server of the :8080 service: waitress, bounded against slow and large requests.

On its own, waitress waits as long as a client keeps sending (its channel timeout counts
only idle time), stops accepting at its connection limit, and spools request bodies of up
to 1 GiB to temporary files before the app sees them; so 100 clients sending a byte a
minute lock everyone out, and ten large uploads fill the disk k3s uses. Here:

- a request must arrive whole within `request_deadline` of its first byte (a new
  connection's first request: of the accept), and a kept-alive connection waits that long
  at most for its next request;
- at the connection limit, or at one address's limit, the connection that has waited
  longest for a complete request is closed to make room (the new one, if it is the only
  one waiting): one whose request is being served or whose answer is being sent never is,
  so slow clients cannot keep out a client whose request is complete;
- a body over the app's cap (`host.web.MAX_BODY`) is refused with 413 by waitress itself,
  from its Content-Length before any of it is read, or once a chunked body passes the cap,
  and a body within the cap is held in memory, never in a temporary file;
- waitress's own error answers (400, 413, 431, 500, 501) are JSON with the app's headers.

HTTPS (host/web_tls.py) hands its decrypted connections to this same server, so all of the
above holds for them too.
"""

import collections
import copy
import json
import logging
import time
from pathlib import Path

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from host import web_tls
from host.core import tls
from host.web import LOG, MAX_BODY, SECURITY_HEADERS

THREADS = 4
REQUEST_DEADLINE = 10.0  # seconds for a request's headers and body, from its first byte
MAX_CONNECTIONS = 100
MAX_CONNECTIONS_PER_ADDRESS = 20  # a browser opens six per host; a few tabs or admins behind NAT
MAX_HEADER_BYTES = 32 * 1024  # a browser's headers, with the cookies of apps on the same host
RECV_BYTES = 8192
# Waitress refuses a Content-Length >= its limit, the app one > MAX_BODY: the same bound.
BODY_LIMIT = MAX_BODY + 1


class JsonError:
    """One of waitress's refusals (a `waitress.utilities.Error`: a request it could not parse
    or take, before the app saw it) answered like the app's errors: a JSON `error` and the
    headers every answer of the app carries."""

    def __init__(self, error):
        self.error = error

    def to_response(self, ident=None):
        error = self.error
        message = {413: f"the request body is larger than {MAX_BODY} bytes",
                   431: f"the request headers are larger than {MAX_HEADER_BYTES} bytes"}.get(
                       error.code, f"{error.reason.lower()}: {error.body}")
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                   *SECURITY_HEADERS]
        return (f"{error.code} {error.reason}", headers,
                json.dumps({"error": message}).encode())


class JsonErrorTask(ErrorTask):
    """Waitress's error answer, its error given the app's form (waitress itself still
    decides the status and closes the connection after it)."""

    def execute(self):
        self.request.error = JsonError(self.request.error)
        super().execute()


class DeadlineChannel(HTTPChannel):
    """A connection that records since when it has been waiting for a complete request."""

    error_task_class = JsonErrorTask

    def __init__(self, server, sock, addr, adj, map=None):
        self.waiting_since = time.monotonic()
        super().__init__(server, sock, addr, adj, map=map)

    def received(self, data):
        if self.request is None:  # the first byte of a request: its deadline runs from here
            self.waiting_since = time.monotonic()
        return super().received(data)

    def service(self):
        super().service()
        self.waiting_since = time.monotonic()  # served: the next request is due from now

    def waiting(self) -> bool:
        """Holds no complete request and nothing left to send: closing it loses no answer."""
        return not self.requests and not self.total_outbufs_len


class BoundedServer(TcpWSGIServer):
    """Waitress's TCP server with a request deadline and per-address connection limits."""

    channel_class = DeadlineChannel

    def __init__(self, app, request_deadline: float, **adjustments):
        self.request_deadline = request_deadline
        super().__init__(app, **adjustments)
        self.https_adj = copy.copy(self.adj)
        self.https_adj.url_scheme = "https"  # the app's wsgi.url_scheme

    def readable(self):
        # Waitress's own readable() runs maintenance, then stops accepting at the connection
        # limit, which is what let slow clients lock everyone out; here handle_accept makes
        # room instead, so the server always accepts.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return self.accepting

    def maintenance(self, now):
        super().maintenance(now)  # waitress: nothing sent either way for channel_timeout
        overdue = time.monotonic() - self.request_deadline
        for channel in self.active_channels.values():
            if channel.waiting() and channel.waiting_since < overdue:
                channel.will_close = True

    def handle_accept(self):
        super().handle_accept()
        self._make_room()

    def add_https_connection(self, sock, client: tuple[str, int]) -> None:
        """Serve the TLS front's decrypted connection from `client` as if accepted here
        (run in the server's loop thread, through its trigger)."""
        try:
            self.channel_class(self, sock, client, self.https_adj, map=self._map)
        except OSError:  # the front already gave up on it
            sock.close()
            return
        self._make_room()

    def _make_room(self) -> None:
        """Close the longest-waiting connections of any address over its limit, then of the
        server while it is over its limit."""
        per_address = collections.Counter(c.addr[0] for c in self.active_channels.values())
        for channel in self._longest_waiting():
            if per_address[channel.addr[0]] > MAX_CONNECTIONS_PER_ADDRESS:
                per_address[channel.addr[0]] -= 1
                channel.handle_close()
        excess = len(self.active_channels) - self.adj.connection_limit
        for channel in self._longest_waiting()[:max(0, excess)]:
            channel.handle_close()

    def _longest_waiting(self) -> list[DeadlineChannel]:
        waiting = [c for c in self.active_channels.values() if c.waiting()]
        return sorted(waiting, key=lambda channel: channel.waiting_since)


def create_server(app, host: str, port: int,
                  request_deadline: float = REQUEST_DEADLINE) -> BoundedServer:
    """The service's server on `host`:`port` (port 0: any free one), not yet running."""
    return BoundedServer(
        app, request_deadline, host=host, port=port, threads=THREADS, ident="alga-appliance",
        connection_limit=MAX_CONNECTIONS,
        cleanup_interval=1,  # how often the deadline is checked, in seconds
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=BODY_LIMIT,
        recv_bytes=RECV_BYTES,
        # A chunked body is refused once past the limit, at most one read later: up to there
        # it stays in memory (waitress moves a body above inbuf_overflow to a temporary file).
        inbuf_overflow=BODY_LIMIT + RECV_BYTES,
        asyncore_use_poll=True)  # select() fails on file descriptors above 1023


def start_https(server: BoundedServer, host: str, port: int,
                root: Path | None = None) -> web_tls.TlsFront | None:
    """HTTPS for `server` on `port`, with the appliance's certificate; None, the cause
    logged, when it cannot start: HTTP serves on, so the admin still has a way in."""
    try:
        context = tls.server_context(tls.cert_path(root), tls.key_path(root))
        front = web_tls.TlsFront(server, context, host, port, server.request_deadline)
    except (tls.CertificateProblem, OSError) as exc:
        LOG.error("HTTPS on port %s is off (HTTP still serves): %s; next step: sudo "
                  "alga-appliance ensure-tls, then sudo systemctl restart alga-appliance",
                  port, exc)
        return None
    fingerprint = tls.fingerprint(tls.cert_path(root).read_bytes())
    server.log_info(f"Serving on https://{host}:{front.port}, certificate SHA-256 "
                    f"fingerprint {fingerprint}")
    return front.start()


def serve(app, host: str, port: int, tls_port: int) -> None:
    """Serve `app` over HTTP on `port` and HTTPS on `tls_port` until the process is stopped
    (what `alga-appliance serve` runs)."""
    logging.basicConfig()  # waitress logs its warnings through logging, to the journal
    server = create_server(app, host, port)
    server.print_listen("Serving on http://{}:{}")
    start_https(server, host, tls_port)
    server.run()
