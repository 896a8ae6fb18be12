"""Real failed requests, each said as one plain sentence with its root cause: the library's
internals (connection pools, object addresses, retries) never reach an admin."""

import errno
import socket

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from support.netlab import (
    ConnectProxy,
    DnsServer,
    HttpsServer,
    Route,
    TestCA,
    free_loopback_address,
)

from host.net import https, resolvers
from host.net.endpoints import Endpoints

INTERNALS = ("urllib3", "HTTPSConnectionPool", " object at 0x", "Max retries", "Errno")
NO_PROXY = {"proxy": None}


def session(ca: TestCA, proxy: ConnectProxy | None = None, credentials: str = ""):
    inputs = {"proxy": None}
    if proxy is not None:
        scheme, address = proxy.url.split("://")
        inputs["proxy"] = {"url": f"{scheme}://{credentials}{address}", "no_proxy": []}
    return https.session(inputs, Endpoints(ca_bundle=str(ca.ca_pem_path)))


def failure(call) -> https.FetchError:
    with pytest.raises(https.FetchError) as caught:
        call()
    error = caught.value
    for internal in INTERNALS:
        assert internal not in str(error), str(error)
    assert str(error).count("\n") == 0
    return error


def test_connection_refused(ca):
    with HttpsServer(ca, {}) as closed:
        url = f"{closed.url}/v2/"
    error = failure(lambda: https.fetch(session(ca), url, 2))
    assert (error.cause, error.host) == ("no-route", "127.0.0.1")
    assert str(error) == (f"cannot reach {url}: the connection was refused (nothing listens "
                          f"on 127.0.0.1 port {url.split(':')[2].split('/')[0]}, or a "
                          "firewall rejects it)")
    assert error.next_step == "allow HTTPS to 127.0.0.1 through the firewall"


def test_a_name_the_dns_servers_do_not_know(ca):
    with DnsServer(free_loopback_address(), {}) as dns, \
            resolvers.resolving_through([dns.address]):
        error = failure(lambda: https.fetch(session(ca), "https://ghcr.test:1/v2/", 2))
    assert (error.cause, error.host) == ("dns", "ghcr.test")
    assert str(error).startswith("cannot reach https://ghcr.test:1/v2/: ghcr.test does not "
                                 "resolve (not through the custom DNS servers: ")
    assert "NXDOMAIN" in str(error)


def test_tls_from_an_unknown_ca(ca):
    with HttpsServer(TestCA(), {"/v2/": Route(status=401)}) as intercepted:
        error = failure(lambda: https.fetch(session(ca), f"{intercepted.url}/v2/", 2))
    assert (error.cause, error.host) == ("tls", "127.0.0.1")
    assert str(error) == ("the certificate 127.0.0.1 presented is not signed by a CA this "
                          "appliance trusts")
    assert "ca_bundle" in error.next_step


def test_a_proxy_that_wants_credentials_fails_every_host(ca):
    with HttpsServer(ca, {"/v2/": Route(status=401)}) as ghcr, \
            ConnectProxy(credentials=("svc", "s3cret")) as proxy:
        error = failure(lambda: https.fetch(session(ca, proxy), f"{ghcr.url}/v2/", 2))
    assert (error.cause, error.host) == ("proxy", None)
    assert str(error) == ("the proxy requires authentication (407 Proxy Authentication "
                          "Required): it refused the user and password, or none was given")
    assert error.next_step == "check the proxy user and password (setup's proxy step)"


def test_a_proxy_that_refuses_one_host(ca):
    with HttpsServer(ca, {"/v2/": Route(status=401)}) as ghcr, \
            ConnectProxy(allow=lambda host, port: False) as proxy:
        error = failure(lambda: https.fetch(session(ca, proxy), f"{ghcr.url}/v2/", 2))
    assert (error.cause, error.host) == ("proxy", "127.0.0.1")
    assert str(error) == "the proxy refused to connect to 127.0.0.1 (403 Forbidden)"
    assert "allow HTTPS (CONNECT to port 443) to 127.0.0.1" in error.next_step


def test_a_server_that_answers_403(ca):
    with HttpsServer(ca, {"/install.yaml": Route(status=403, body="blocked")}) as github:
        url = f"{github.url}/install.yaml"
        error = failure(lambda: https.fetch_document(session(ca), url, 2, "the Flux manifest"))
    assert (error.cause, error.host) == ("http", "127.0.0.1")
    assert str(error) == (f"{url} refused the Flux manifest (403 Forbidden): a firewall or "
                          "web filter may block 127.0.0.1")


def test_a_captive_portal_names_the_page_and_its_type(ca):
    page = "<html><body>Accept the terms to continue</body></html>"
    with HttpsServer(ca, {}) as github:
        github.routes.update({
            "/channel.json": Route(status=302, headers={"Location": f"{github.url}/portal"}),
            "/portal": Route(body=page, headers={"Content-Type": "text/html; charset=utf-8"})})
        error = failure(lambda: https.fetch_document(session(ca), f"{github.url}/channel.json",
                                                     2, "the channel file"))
    assert error.cause == "http"
    assert str(error) == (f"the channel file answered an HTML page (text/html; charset=utf-8) "
                          f"from {github.url}/portal instead: a captive portal or web filter "
                          "is in the way")
    assert f"the page at {github.url}/portal" in error.next_step


leaf_errors = st.sampled_from([
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    TimeoutError("timed out"), OSError("something else"), ValueError("odd")])
wrappers = st.sampled_from([requests.exceptions.ConnectionError,
                            requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout,
                            requests.exceptions.SSLError, requests.exceptions.ProxyError])


@given(leaf=leaf_errors, wrapper=wrappers, depth=st.integers(0, 3), cyclic=st.booleans())
def test_any_chain_of_errors_is_one_sentence(leaf, wrapper, depth, cyclic):
    """Whatever requests wraps, however deep (or looped), the answer is a sentence."""
    inner: BaseException = leaf
    for level in range(depth):
        outer = OSError(f"level {level} at 0x7f00", inner)
        outer.__context__ = inner
        inner = outer
    if cyclic:
        leaf.__context__ = inner
    error = https.explain(wrapper(inner), "https://ghcr.io/v2/", 3, None)
    assert error.cause in https.CAUSES and str(error)
    assert "\n" not in str(error) and "0x7f00" not in str(error)
