"""Proxy credentials of any shape reach a real authenticating proxy as the one
Proxy-Authorization header they mean: on CONNECT (HTTPS) and on forwarded plain HTTP."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.answers import parse_with_admin
from support.netlab import ConnectProxy, HttpsServer, Route

from host.net import https
from host.net.endpoints import Endpoints

NODE_IP = "10.0.0.5"
# URL syntax, spaces, a percent sign that looks like an escape, non-ASCII; never control
# characters or line breaks (the inputs refuse them).
printable = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
passwords = st.lists(st.sampled_from(["@", ":", "#", "/", "%", "%40", " ", "ü", "€", "密"])
                     | printable, min_size=1, max_size=12).map("".join)
users = st.text(st.sampled_from(["@", "#", "/", "%", "ü"]) | st.characters(
    whitelist_categories=("L", "N")), min_size=1, max_size=10)


def client(proxy: ConnectProxy, ca, user: str | None = None, password: str | None = None):
    """The session setup uses, from the answers an admin would type."""
    answers = {"proxy_url": proxy.url}
    if user is not None:
        answers |= {"proxy_user": user, "proxy_password": password}
    inputs = parse_with_admin(answers, NODE_IP)
    return https.session(inputs, Endpoints(ca_bundle=str(ca.ca_pem_path)))


@pytest.fixture(scope="module")
def origin(ca):
    with HttpsServer(ca, {"/": Route(body=b"through")}) as server:
        yield server


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=users, password=passwords)
def test_any_password_gets_through_the_proxy_and_only_the_right_one(ca, origin, user, password):
    with ConnectProxy(credentials=(user, password)) as proxy:
        answer = https.fetch(client(proxy, ca, user, password), origin.url, 5)
        assert answer.status_code == 200 and answer.content == b"through"
        assert proxy.tunnels == [("127.0.0.1", origin.port)]
        # Plain HTTP is forwarded with the same header: past authentication, the proxy
        # finds nothing listening at the origin (502), where it would answer 407.
        forwarded = https.fetch(client(proxy, ca, user, password), "http://127.0.0.1:1/", 5)
        assert forwarded.status_code == 502
        for wrong in (client(proxy, ca), client(proxy, ca, user, password + "x")):
            with pytest.raises(https.FetchError) as refused:
                https.fetch(wrong, origin.url, 5)
            assert "requires authentication (407 Proxy Authentication Required)" in str(
                refused.value)
            assert "check the proxy user and password" in refused.value.next_step
        assert https.fetch(client(proxy, ca), "http://127.0.0.1:1/", 5).status_code == 407


def test_the_header_is_basic_over_utf_8():
    assert https.proxy_authorization("ü", "p@ss:w") == "Basic w7w6cEBzczp3"
