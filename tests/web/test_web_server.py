"""The service's HTTP server (host/web_server.py) against slow, many and large requests: a
real `alga-appliance serve` on loopback for the attacks, the same server in a thread for
the rest."""

import contextlib
import json
import os
import socket
import tempfile
import threading
import time

import pytest
import requests
from support.answers import ADMIN
from support.attacks import (
    GIB,
    Sampler,
    closed,
    concurrent_uploads,
    describe_uploads,
    disk_free,
    exchange,
    running_service,
    slowloris,
    upload_without_token,
)

from host import web_server
from host.core import token
from host.web import MAX_BODY, SECURITY_HEADERS, make_app

HEADER_START = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "


@pytest.fixture
def service(root):
    with running_service(root) as running:
        yield running


def served(root, request_deadline: float = web_server.REQUEST_DEADLINE):
    """The app on the service's server in a thread; returns (port, bearer, stop)."""
    bearer = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    server = web_server.create_server(make_app(root, node_ip=lambda: "10.0.0.5"), "127.0.0.1",
                                      0, request_deadline=request_deadline)
    thread = threading.Thread(target=lambda: _run(server), daemon=True)
    thread.start()

    def stop():
        server.close()
        thread.join(5)
    return server.effective_port, bearer, stop


def _run(server):
    with contextlib.suppress(OSError, ValueError):  # closed from the test's thread
        server.run()


@pytest.mark.parametrize(("request_bytes", "status", "message"), [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n", 400, "bad request"),
    # Headers that never end, exactly as long as the limit (so no unread byte turns the
    # server's close into a reset that loses its answer).
    (HEADER_START + b"a" * (web_server.MAX_HEADER_BYTES - len(HEADER_START)), 431,
     f"larger than {web_server.MAX_HEADER_BYTES} bytes"),
    (f"POST /api/setup HTTP/1.1\r\nHost: x\r\nContent-Length: {GIB}\r\n\r\n".encode(), 413,
     f"larger than {MAX_BODY} bytes"),
    (b"POST /api/setup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
     "not implemented"),
    (b"POST /api/setup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
     "bad request"),
])
def test_waitress_refusals_are_json_with_the_security_headers(root, request_bytes, status,
                                                              message):
    port, _, stop = served(root)
    try:
        code, headers, body = exchange("127.0.0.1", port, request_bytes)
    finally:
        stop()
    assert code == status
    assert headers["content-type"] == "application/json"
    for name, value in SECURITY_HEADERS:
        assert headers[name.lower()] == value, name
    assert message in json.loads(body)["error"].lower()


def test_a_body_at_the_cap_reaches_the_app_and_one_byte_more_is_refused_before_the_token(
        root):
    port, bearer, stop = served(root)
    url = f"http://127.0.0.1:{port}"
    try:
        at_cap = requests.post(f"{url}/api/setup", data=b" " * MAX_BODY, timeout=10)
        over = requests.post(f"{url}/api/setup", data=b" " * (MAX_BODY + 1), timeout=10)
        chunked = upload_without_token("127.0.0.1", port, 2 * MAX_BODY, chunked=True)
        answers = json.dumps(ADMIN).encode()  # valid answers, padded to the cap
        with_token = requests.post(f"{url}/api/setup/validate",
                                   data=b" " * (MAX_BODY - len(answers)) + answers,
                                   headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    finally:
        stop()
    assert at_cap.status_code == 401  # the app saw it: it needs the token
    assert over.status_code == 413
    # Refused once past the cap; a client still sending may see the close before the 413.
    assert chunked.outcome in ("413", "closed") and chunked.bytes_sent < 2 * MAX_BODY + 4096
    assert over.json() == {"error": f"the request body is larger than {MAX_BODY} bytes"}
    assert with_token.status_code == 200  # a body of the cap is a body the app takes


def test_a_request_must_arrive_within_its_deadline_from_its_first_byte(root):
    port, _, stop = served(root, request_deadline=2.0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as trickling:
            began = time.monotonic()
            closed_after = {}
            while len(closed_after) < 2 and time.monotonic() - began < 15:
                for name, sock in (("silent", silent), ("trickling", trickling)):
                    if name not in closed_after and closed(sock):
                        closed_after[name] = time.monotonic() - began
                if "trickling" not in closed_after:
                    trickling.send(b"G")  # progress, never a whole request
                time.sleep(0.25)
            answered = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        stop()
    # Closed after the deadline (2 s) and the server's next check (1 s); waitress alone would
    # keep the trickling one as long as it trickles, and the silent one for 120 s.
    assert set(closed_after) == {"silent", "trickling"}, closed_after
    assert min(closed_after.values()) >= 1.5, closed_after
    assert answered.status_code == 200


def test_an_address_at_its_limit_loses_its_longest_waiting_connections(root):
    port, _, stop = served(root)
    source, extra = "127.0.0.7", 5
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=10,
                                         source_address=(source, 0))
                for _ in range(web_server.MAX_CONNECTIONS_PER_ADDRESS + extra)]
        for sock in held:
            sock.send(b"G")
            time.sleep(0.01)  # in order, so the oldest are known
        time.sleep(0.5)
        # A complete request from the same address is served: it makes its own room.
        code, _, _ = exchange("127.0.0.1", port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n", source)
        evicted = [index for index, sock in enumerate(held) if closed(sock)]
        for sock in held:
            sock.close()
    finally:
        stop()
    assert code == 200
    assert evicted == list(range(extra + 1)), evicted  # the oldest, and one for the request


@pytest.mark.parametrize("sources", [["127.0.0.2"], [f"127.0.1.{n}" for n in range(1, 201)]],
                         ids=["one address", "200 addresses"])
def test_slow_clients_do_not_keep_the_admin_out(service, sources, capsys):
    run = slowloris(service, sources, seconds=12)
    polls, held, attack = run.polls, run.held, run.attack
    limit = (web_server.MAX_CONNECTIONS_PER_ADDRESS if len(sources) == 1
             else web_server.MAX_CONNECTIONS)
    with capsys.disabled():
        print(f"\n{len(sources)} source(s): {'; '.join(run.describe())}")
    assert not polls.failures, polls.failures
    assert len(polls.latencies) >= 10  # enough to mean something, however loaded the machine
    assert attack.connects >= 200  # the attack ran: every slot opened at least once
    assert max(held) <= limit + 2  # the admin's, and a new one before room is made


def test_large_uploads_without_a_token_reach_neither_disk_nor_memory(service):
    disk_before, rss_before = disk_free(tempfile.gettempdir()), service.rss_mib()
    with Sampler(service, period=0.05) as sampler:
        uploads = concurrent_uploads(service.host, service.port)
    spooled = sampler.spooled
    rss_after = service.rss_mib()
    disk_drop = (disk_before - disk_free(tempfile.gettempdir())) / (1 << 20)
    print(f"uploads: {describe_uploads(uploads)}; "
          f"RSS {rss_before:.1f} -> {rss_after:.1f} MiB; free disk dropped {disk_drop:.1f} MiB")
    assert all(u.outcome in ("413", "closed") for u in uploads), uploads
    # Refused at once: what was sent fits in the sockets' buffers, not the gibibyte.
    assert all(u.bytes_sent < 64 << 20 for u in uploads), uploads
    assert all(u.seconds < 10 for u in uploads), uploads
    assert not spooled, spooled
    assert rss_after - rss_before < 16
    assert requests.get(f"{service.url}/healthz", timeout=10).status_code == 200
