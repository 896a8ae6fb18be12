"""The network lab's servers, each checked with a real client over real sockets."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from dnslib import RCODE, DNSRecord
from support.netlab import (
    ConnectProxy,
    DnsServer,
    HttpsServer,
    NetNamespace,
    Route,
    TestCA,
    free_loopback_address,
)

RECORDS = {"github.com": ["127.0.0.1"], "ghcr.io": ["127.0.0.1", "::1"]}


def open_sockets() -> set[str]:
    """This process's sockets, as the kernel names them ("socket:[inode]")."""
    targets = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the listing's own fd is gone by now
            targets.add(os.readlink(fd))
    return {target for target in targets if target.startswith("socket:")}


@pytest.fixture(autouse=True)
def nothing_leaks():
    """Every lab object must take its threads and sockets with it when its block ends."""
    threads, sockets = set(threading.enumerate()), open_sockets()
    yield
    assert set(threading.enumerate()) - threads == set()
    assert open_sockets() - sockets == set()


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def session() -> requests.Session:
    """A client that ignores the environment's proxy settings, so each test picks its own."""
    client = requests.Session()
    client.trust_env = False
    return client


def dns_query(address: str, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    answer = DNSRecord.question(name, qtype).send(address, 53, tcp=tcp, timeout=2)
    return DNSRecord.parse(answer)


def answered_addresses(reply: DNSRecord) -> list[str]:
    return [str(record.rdata) for record in reply.rr]


# --- DNS ---


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_answers_a_and_aaaa_from_records(tcp):
    address = free_loopback_address()
    with DnsServer(address, RECORDS) as dns:
        a = dns_query(address, "ghcr.io", "A", tcp)
        aaaa = dns_query(address, "ghcr.io", "AAAA", tcp)
        github_aaaa = dns_query(address, "GitHub.com.", "AAAA", tcp)
    assert (a.header.rcode, answered_addresses(a)) == (RCODE.NOERROR, ["127.0.0.1"])
    assert (aaaa.header.rcode, answered_addresses(aaaa)) == (RCODE.NOERROR, ["::1"])
    assert (github_aaaa.header.rcode, github_aaaa.rr) == (RCODE.NOERROR, [])
    assert dns.queries == [("ghcr.io", "A"), ("ghcr.io", "AAAA"), ("GitHub.com", "AAAA")]


def test_dns_unknown_name_is_nxdomain():
    address = free_loopback_address()
    with DnsServer(address, RECORDS):
        reply = dns_query(address, "example.invalid")
    assert reply.header.rcode == RCODE.NXDOMAIN


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_servfail_answers_every_query_with_servfail(tcp):
    address = free_loopback_address()
    with DnsServer(address, RECORDS, behaviour="servfail"):
        reply = dns_query(address, "github.com", tcp=tcp)
    assert (reply.header.rcode, reply.rr) == (RCODE.SERVFAIL, [])


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_drop_never_answers_but_stops_promptly(tcp):
    address = free_loopback_address()
    with DnsServer(address, RECORDS, behaviour="drop") as dns:
        with pytest.raises(TimeoutError):
            DNSRecord.question("github.com").send(address, 53, tcp=tcp, timeout=0.3)
        started_stopping = time.monotonic()
    assert time.monotonic() - started_stopping < 1
    assert dns.queries == [("github.com", "A")]


def test_dns_serves_on_ipv6_loopback():
    with DnsServer("::1", RECORDS):
        answer = DNSRecord.question("ghcr.io", "AAAA").send("::1", 53, timeout=2, ipv6=True)
    assert answered_addresses(DNSRecord.parse(answer)) == ["::1"]


def test_free_loopback_addresses_differ():
    first, second = free_loopback_address(), free_loopback_address()
    assert first != second
    assert first.startswith("127.0.53.") and second.startswith("127.0.53.")


def test_dns_rejects_unknown_behaviour():
    with pytest.raises(ValueError, match="behaviour"):
        DnsServer("127.0.0.1", RECORDS, behaviour="sulk")


# --- HTTPS ---


def test_https_serves_routes_with_a_certificate_from_the_ca(ca):
    routes = {
        "/health": Route(body={"ok": True}),
        "/text": Route(status=201, body="hello", headers={"X-Lab": "yes"}),
    }
    with HttpsServer(ca, routes) as server, session() as client:
        health = client.get(f"{server.url}/health?verbose=1", verify=ca.ca_pem_path)
        text = client.get(f"{server.url}/text", verify=ca.ca_pem_path)
    assert (health.status_code, health.json()) == (200, {"ok": True})
    assert health.headers["Content-Type"] == "application/json"
    assert (text.status_code, text.text, text.headers["X-Lab"]) == (201, "hello", "yes")
    assert [(method, path) for method, path, _ in server.requests] == [
        ("GET", "/health?verbose=1"),
        ("GET", "/text"),
    ]
    assert server.requests[0][2]["Host"] == server.url.removeprefix("https://")


def test_https_head_and_unknown_path(ca):
    with HttpsServer(ca, {"/": Route(body=b"12345")}) as server, session() as client:
        head = client.head(server.url, verify=ca.ca_pem_path)
        missing = client.get(f"{server.url}/nope", verify=ca.ca_pem_path)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "5", b"")
    assert missing.status_code == 404


def test_https_ranges_and_cut_responses(ca):
    route = Route(body=b"0123456789", ranges=True, headers={"ETag": '"v1"'}, cut_after=4,
                  cuts=1)
    with HttpsServer(ca, {"/iso": route}) as server, session() as client:
        url, verify = f"{server.url}/iso", ca.ca_pem_path
        cut = client.get(url, verify=verify)  # urllib3 1.26 hands over the short body
        rest = client.get(url, headers={"Range": "bytes=4-"}, verify=verify)
        changed = client.get(url, headers={"Range": "bytes=4-", "If-Range": '"v0"'},
                             verify=verify)
        beyond = client.get(url, headers={"Range": "bytes=10-"}, verify=verify)
    assert (cut.status_code, cut.content, route.cuts) == (200, b"0123", 0)
    assert (rest.status_code, rest.content, rest.headers["Content-Range"]) == \
        (206, b"456789", "bytes 4-9/10")
    assert (changed.status_code, changed.content) == (200, b"0123456789")
    assert (beyond.status_code, beyond.headers["Content-Range"]) == (416, "bytes */10")


def test_https_is_not_trusted_without_the_ca(ca):
    with (
        HttpsServer(ca, {"/": Route()}) as server,
        session() as client,
        pytest.raises(requests.exceptions.SSLError),
    ):
        client.get(server.url)


def test_https_certificate_names_the_extra_hostnames(ca):
    """The CA and the SANs are real: a name on the certificate verifies, via a proxy that maps
    it to loopback (the client itself never resolves it)."""
    with (
        HttpsServer(ca, {"/": Route()}, hostnames=("registry.test",)) as server,
        ConnectProxy(hosts={"registry.test": "127.0.0.1"}) as proxy,
        session() as client,
    ):
        reply = client.get(
            f"https://registry.test:{server.port}/",
            verify=ca.ca_pem_path,
            proxies={"https": proxy.url},
        )
    assert reply.status_code == 200
    assert proxy.tunnels == [("registry.test", server.port)]


def test_https_delay_times_the_client_out_and_does_not_hold_up_stopping(ca):
    with HttpsServer(ca, {"/slow": Route(delay=5)}) as server, session() as client:
        with pytest.raises(requests.exceptions.ReadTimeout):
            client.get(f"{server.url}/slow", verify=ca.ca_pem_path, timeout=0.3)
        started_stopping = time.monotonic()
    assert time.monotonic() - started_stopping < 1


def test_idle_client_connection_does_not_hold_up_stopping(ca):
    with HttpsServer(ca, {"/": Route()}) as server:
        idle = socket.create_connection(("127.0.0.1", server.port))
        started_stopping = time.monotonic()
    idle.close()
    assert time.monotonic() - started_stopping < 1


# --- proxy ---


def test_proxy_tunnels_https(ca):
    with (
        HttpsServer(ca, {"/": Route(body="via proxy")}) as server,
        ConnectProxy() as proxy,
        session() as client,
    ):
        reply = client.get(server.url, verify=ca.ca_pem_path, proxies={"https": proxy.url})
    assert reply.text == "via proxy"
    assert proxy.tunnels == [("127.0.0.1", server.port)]
    assert server.requests[0][:2] == ("GET", "/")


def test_proxy_forwards_plain_http_get():
    with (
        HttpsServer(None, {"/plain": Route(body="hi")}) as origin,
        ConnectProxy() as proxy,
        session() as client,
    ):
        reply = client.get(f"{origin.url}/plain?q=1", proxies={"http": proxy.url})
    assert (reply.status_code, reply.text) == (200, "hi")
    assert proxy.forwarded == [f"{origin.url}/plain?q=1"]
    method, path, headers = origin.requests[0]
    assert (method, path) == ("GET", "/plain?q=1")
    assert "Proxy-Authorization" not in headers


def test_proxy_with_credentials_requires_them(ca):
    credentials = ("lab", "s3cret")
    with (
        HttpsServer(ca, {"/": Route()}) as server,
        ConnectProxy(credentials=credentials) as proxy,
        session() as client,
    ):
        authenticated = proxy.url.replace("http://", "http://lab:s3cret@")
        ok = client.get(server.url, verify=ca.ca_pem_path, proxies={"https": authenticated})
        with pytest.raises(requests.exceptions.ProxyError, match="407"):
            client.get(server.url, verify=ca.ca_pem_path, proxies={"https": proxy.url})
        # Refused before the proxy would connect anywhere, so the origin needn't exist.
        plain = client.get("http://127.0.0.1:1/", proxies={"http": proxy.url})
    assert ok.status_code == 200
    assert plain.status_code == 407
    assert plain.headers["Proxy-Authenticate"] == 'Basic realm="netlab"'


def test_proxy_allow_denies_with_403(ca):
    def only_port_1(host: str, port: int) -> bool:
        return port == 1

    with (
        HttpsServer(ca, {"/": Route()}) as server,
        ConnectProxy(allow=only_port_1) as proxy,
        session() as client,
        pytest.raises(requests.exceptions.ProxyError, match="403"),
    ):
        client.get(server.url, verify=ca.ca_pem_path, proxies={"https": proxy.url})
    assert server.requests == []


def test_proxy_refuses_targets_off_loopback_without_resolving_them(ca):
    with (
        ConnectProxy() as proxy,
        session() as client,
        pytest.raises(requests.exceptions.ProxyError, match="502"),
    ):
        client.get("https://unmapped.test/", proxies={"https": proxy.url})
    assert proxy.tunnels == [("unmapped.test", 443)]


# --- network namespace ---

FETCH = """
import sys, requests
url, ca, proxy = sys.argv[1:]
client = requests.Session()
client.trust_env = False
try:
    reply = client.get(url, verify=ca, proxies={"https": proxy} if proxy else {}, timeout=5)
    print(reply.status_code, reply.text)
except requests.ConnectionError as error:
    print(type(error).__name__)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_node_in_namespace_reaches_https_only_through_the_proxy(ca):
    with (
        NetNamespace() as node,
        HttpsServer(ca, {"/": Route(body="hello node")}) as server,
        ConnectProxy(address=node.host_address) as proxy,
    ):
        fetch = [sys.executable, "-c", FETCH, server.url, str(ca.ca_pem_path)]
        direct = node.run([*fetch, ""], timeout=20)
        proxied = node.run([*fetch, proxy.url], timeout=20)
    assert (direct.stdout.strip(), direct.returncode) == ("ConnectionError", 0), direct.stderr
    assert proxied.stdout.strip() == "200 hello node", proxied.stderr
    assert proxy.tunnels == [("127.0.0.1", server.port)]


def root_interface_indexes() -> set[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[0] for line in links.stdout.splitlines()}


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_namespace_is_removed_even_when_the_block_fails():
    """Checked by identity, not name: a test process running alongside may reuse the name."""
    with pytest.raises(RuntimeError, match="boom"), NetNamespace() as node:
        namespace_file = Path("/run/netns", node.name)
        namespace_inode = namespace_file.stat().st_ino
        link = subprocess.run(
            ["ip", "-o", "addr", "show", "to", node.host_address], capture_output=True, text=True
        )
        link_index = link.stdout.split(":")[0]
        raise RuntimeError("boom")
    assert link_index and link_index not in root_interface_indexes()
    assert not namespace_file.exists() or namespace_file.stat().st_ino != namespace_inode
