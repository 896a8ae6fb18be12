"""The service over HTTPS: a TLS front on its own port, handing each decrypted connection to
the waitress server, so that one server's limits hold for HTTP and HTTPS alike.

Waitress has no TLS. An asyncio loop in its own thread accepts on the HTTPS port and does
the handshake, bounded like waitress bounds a request: it must finish within `deadline`,
and at most MAX_HANDSHAKES run at once, MAX_HANDSHAKES_PER_ADDRESS from one address (over
either, the oldest one is dropped), so clients that never finish one cannot keep anyone
out. A finished handshake becomes one end of a socket pair that waitress serves as a
connection from the client's own address (its per-address limits, request deadline, body
cap and the token lockout see the real client); the other end is copied to and from the
TLS connection, which is closed when waitress closes its end.
"""

import asyncio
import logging
import socket
import ssl
import threading
import traceback

MAX_HANDSHAKES = 100
MAX_HANDSHAKES_PER_ADDRESS = 20  # as many as waitress lets one address hold
COPY_BYTES = 65536
LOG = logging.getLogger("alga-appliance.web.https")


class TlsFront:
    """HTTPS on `host`:`port` (0: any free port) for `server` (a web_server.BoundedServer).
    The port is bound here, so a port in use fails in the caller; start() serves."""

    def __init__(self, server, context: ssl.SSLContext, host: str, port: int,
                 deadline: float):
        self.server, self.context, self.deadline = server, context, deadline
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=1024)
        self.port = self.listener.getsockname()[1]
        self.handshakes: dict[asyncio.Task, str] = {}  # in progress, oldest first: address
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_log_briefly)
        self.thread = threading.Thread(target=self._run, name="https", daemon=True)

    def start(self) -> "TlsFront":
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop accepting and drop every connection (for tests; the service just exits)."""
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.listener.close()

    def _run(self) -> None:
        self.loop.run_until_complete(
            asyncio.start_server(self._connection, sock=self.listener, limit=COPY_BYTES))
        self.loop.run_forever()
        self.loop.close()

    async def _cancel_all(self) -> None:
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not peer:  # reset before it could be asked
            _abort(writer)
            return
        client = peer[:2]
        this = asyncio.current_task()
        self.handshakes[this] = client[0]
        self._make_room(client[0])
        try:
            await writer.start_tls(self.context, ssl_handshake_timeout=self.deadline)
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:
            # Not TLS, a failed or slow handshake (ssl errors too), or dropped (_make_room).
            _free_frames(exc)
            _abort(writer)
            return
        finally:
            self.handshakes.pop(this, None)
        await self._relay(reader, writer, client)

    def _make_room(self, address: str) -> None:
        """Drop the oldest handshakes of `address` over its limit, then of everyone over
        the total (the newest, just begun, never: a real client finishes in milliseconds)."""
        from_address = [task for task, source in self.handshakes.items() if source == address]
        for task in from_address[:max(0, len(from_address) - MAX_HANDSHAKES_PER_ADDRESS)]:
            self._drop(task)
        excess = len(self.handshakes) - MAX_HANDSHAKES
        for task in list(self.handshakes)[:max(0, excess)]:
            self._drop(task)

    def _drop(self, task: asyncio.Task) -> None:
        del self.handshakes[task]
        task.cancel()  # start_tls closes the connection as it is cancelled

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     client: tuple[str, int]) -> None:
        inside, outside = socket.socketpair()
        try:
            self.server.trigger.pull_trigger(
                lambda: self.server.add_https_connection(outside, client))
        except OSError:  # the server is closing
            outside.close()
            inside.close()
            _abort(writer)
            return
        local_reader, local_writer = await asyncio.open_connection(sock=inside,
                                                                   limit=COPY_BYTES)
        copies = [asyncio.ensure_future(self._copy(reader, local_writer)),
                  asyncio.ensure_future(self._copy(local_reader, writer))]
        # A reset, a TLS error or a stall on either side ends both: the copy still running
        # then sees its transport gone and ends too.
        await asyncio.wait(copies, return_when=asyncio.FIRST_EXCEPTION)
        _abort(local_writer)
        _abort(writer)
        await asyncio.wait(copies)
        for copy in copies:
            failure = None if copy.cancelled() else copy.exception()
            if failure is not None and not isinstance(failure, (OSError, TimeoutError)):
                LOG.warning("HTTPS: a connection from %s failed: %s", client[0], failure)
            _free_frames(failure)

    async def _copy(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy until `source` ends, then end `sink`: a client that reads nothing for the
        deadline while an answer waits is dropped, as is one that never takes the last of
        it, so a TLS connection outlives its waitress one by the deadline at most."""
        while data := await source.read(COPY_BYTES):
            sink.write(data)
            await asyncio.wait_for(sink.drain(), self.deadline)
        if sink.can_write_eof():  # to waitress: the client's half-close, as over TCP
            sink.write_eof()
        else:  # TLS has no half-close: close it, after what is left to send
            sink.close()
            await asyncio.wait_for(sink.wait_closed(), self.deadline)


def _free_frames(exc: BaseException | None) -> None:
    """A failed handshake leaves reference cycles in asyncio: its future holds the exception,
    whose traceback holds the frames that hold the future, the connection and its 256 KiB of
    TLS buffers. Only a full garbage collection frees those, and under a stream of failed
    handshakes one came so rarely that the service grew by hundreds of MiB; clearing the
    frames lets each connection be freed as it ends."""
    while exc is not None:
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__context__


def _abort(writer: asyncio.StreamWriter) -> None:
    # One closing already ends by itself (asyncio bounds a TLS close); aborting it again
    # would fail inside asyncio.
    if not writer.transport.is_closing():
        writer.transport.abort()


def _log_briefly(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # What asyncio would log with a traceback (a client's connection failing in a way it
    # did not expect): one line, as every line of the service is.
    LOG.warning("HTTPS: %s: %s", context.get("message"), context.get("exception"))
