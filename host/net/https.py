"""HTTPS to GitHub, GHCR and release hosts, through the proxy and CA setup chose.

One session builder and one fetch for preflight and the install phases, so both see the
network the same way and classify its failures the same way: each failure is one plain
sentence with its root cause (`CAUSES`) and, when the cause suggests one, its next step.
"""

import base64
import errno
import json
import socket
import ssl
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from host.core.validation import DocumentInvalid, validate
from host.net.endpoints import Endpoints

# Root causes of a failed request, the most fundamental first: without a route nothing
# else can be told; a proxy in the way hides DNS; a name must resolve before TLS; and only
# a request that got through has an HTTP answer to judge.
CAUSES = ("no-route", "proxy", "dns", "tls", "http")


class FetchError(Exception):
    """A request failed: what, where and why (the message), its failure category and, when
    the cause suggests one, the next step (else the caller's generic one applies). A
    network failure names its root cause (one of CAUSES) and the host it could not reach."""

    def __init__(self, message: str, category: str, next_step: str | None = None,
                 cause: str | None = None, host: str | None = None,  # None: every host
                 url: str | None = None):  # the hop that failed
        self.category, self.next_step, self.cause, self.host = (category, next_step, cause,
                                                                host)
        self.url = url
        super().__init__(message)


class NotRun(FetchError):
    """A request not made because what it needs (an earlier step, a host) already failed."""

    def __init__(self, message: str):
        super().__init__(message, "release-source")


class _ProxyAuthAdapter(HTTPAdapter):
    """Sends the proxy's Basic credentials itself (UTF-8, as RFC 7617 allows), both on
    CONNECT and on requests forwarded through the proxy: they never go into a URL, so no
    percent-encoding rules apply and requests never decodes them as Latin-1."""

    def __init__(self, authorization: str):
        self.authorization = authorization
        super().__init__()

    def proxy_headers(self, proxy: str) -> dict:
        return {"Proxy-Authorization": self.authorization}


def proxy_authorization(user: str, password: str) -> str:
    """The Proxy-Authorization header value for `user` and `password`."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def proxy_url_with_credentials(proxy: dict) -> str:
    """The proxy URL as other programs' HTTP_PROXY takes it (k3s, Flux): user and password
    percent-encoded entirely, so nothing of them can mean `@`, `:`, `/`, `#` or `%`, and no
    `$`, quote or space is left for a systemd EnvironmentFile to interpret."""
    if "user" not in proxy:
        return proxy["url"]
    scheme, _, address = proxy["url"].partition("://")
    return (f"{scheme}://{quote(proxy['user'], safe='')}:"
            f"{quote(proxy['password'], safe='')}@{address}")


def session(inputs: dict, endpoints: Endpoints,
            kind: type[requests.Session] = requests.Session) -> requests.Session:
    result = kind()
    result.trust_env = False  # only the proxy and CA setup chose, never the environment's
    result.verify = endpoints.ca_bundle or True
    proxy = inputs["proxy"]
    if proxy:
        result.proxies = {"http": proxy["url"], "https": proxy["url"],
                          "no_proxy": ",".join(proxy["no_proxy"])}
        if "user" in proxy:
            adapter = _ProxyAuthAdapter(proxy_authorization(proxy["user"], proxy["password"]))
            result.mount("http://", adapter)
            result.mount("https://", adapter)
    return result


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception it wraps: requests wraps urllib3's MaxRetryError, whose
    `reason` is the failure, which was raised while handling the socket's or ssl's error."""
    seen, pending = [], [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue  # ssl's `reason` is a string, many are None
        seen.append(current)
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__,
                    *current.args]
    return seen


def _first(chain: list[BaseException], kind: type) -> BaseException | None:
    return next((e for e in chain if isinstance(e, kind)), None)


def _failed_url(exc: requests.RequestException, url: str) -> str:
    """The URL of the hop that failed: after a redirect, not the one asked for."""
    request = getattr(exc, "request", None)
    return getattr(request, "url", None) or url


TLS_UNTRUSTED = {18, 19, 20, 21}  # OpenSSL: self-signed, in chain, unknown issuer, leaf
TLS_TIME = {9, 10}  # not yet valid, expired
TLS_NAME = 62  # hostname mismatch
NO_ROUTE = {errno.ENETUNREACH: "the network is unreachable: no default route, or the "
            "network is down", errno.EHOSTUNREACH: "no route to the host"}


def _tls(chain: list[BaseException], host: str) -> tuple[str, str]:
    verify = _first(chain, ssl.SSLCertVerificationError)
    code = getattr(verify, "verify_code", None)
    if code in TLS_UNTRUSTED:
        return (f"the certificate {host} presented is not signed by a CA this appliance "
                "trusts", "if a firewall or proxy inspects TLS, give its CA certificate "
                "(support: ca_bundle in /etc/alga-appliance/endpoints.json); otherwise "
                "something between this machine and the internet intercepts HTTPS")
    if code in TLS_TIME:
        return (f"the certificate of {host} is expired or not yet valid by this machine's "
                "clock", "set the clock (timedatectl set-ntp true), then retry")
    if code == TLS_NAME:
        return (f"the certificate {host} presented does not name {host}: something "
                "intercepts HTTPS", "allow the appliance through without TLS interception, "
                "or give the interceptor's CA certificate (ca_bundle in endpoints.json)")
    reason = getattr(verify, "verify_message", None) or "the handshake failed"
    return (f"the TLS handshake with {host} failed ({reason})",
            f"allow HTTPS to {host} without interception")


def _proxy(chain: list[BaseException], host: str, proxy: str) -> tuple[str, str]:
    text = " ".join(str(e) for e in chain)
    if "407" in text:
        return ("the proxy requires authentication (407 Proxy Authentication Required): it "
                "refused the user and password, or none was given",
                "check the proxy user and password (setup's proxy step)")
    for status, words in (("403", "Forbidden"), ("502", "Bad Gateway"),
                          ("503", "Service Unavailable")):
        if f"Tunnel connection failed: {status}" in text:
            return (f"the proxy refused to connect to {host} ({status} {words})",
                    f"ask the proxy's administrator to allow HTTPS (CONNECT to port 443) to "
                    f"{host}")
    if _first(chain, socket.gaierror) is not None:
        return (f"the proxy's name ({proxy}) does not resolve", "check the proxy URL")
    if _first(chain, ConnectionRefusedError) is not None:
        return (f"nothing accepts connections at the proxy {proxy} (connection refused)",
                "check the proxy URL and that the proxy is running")
    return (f"the proxy {proxy} could not be used", "check the proxy URL and that it "
            "allows CONNECT to port 443")


def explain(exc: requests.RequestException, url: str, timeout: float,
            proxy: str | None) -> FetchError:
    """A failed request as one plain sentence with its root cause, never the library's
    internals."""
    failed = _failed_url(exc, url)
    host = urlsplit(failed).hostname or failed
    port = urlsplit(failed).port or 443
    chain = _chain(exc)
    if isinstance(exc, requests.exceptions.ProxyError):
        cause, (sentence, step) = "proxy", _proxy(chain, host, proxy or "")
        if host not in sentence:  # the proxy itself failed, for every host
            host = None
    elif isinstance(exc, requests.exceptions.SSLError):
        cause, (sentence, step) = "tls", _tls(chain, host)
    elif (gai := _first(chain, socket.gaierror)) is not None:
        cause, sentence, step = ("dns", f"cannot reach {failed}: {host} does not resolve "
                                 f"({gai.strerror or gai})",
                                 "check the DNS servers and that outbound DNS (port 53) is "
                                 "allowed")
    elif isinstance(exc, requests.exceptions.ConnectTimeout) or (
            not isinstance(exc, requests.exceptions.Timeout)
            and _first(chain, TimeoutError) is not None):
        cause, sentence, step = ("no-route", f"cannot reach {failed}: no answer within "
                                 f"{timeout:g} s (a firewall may drop the traffic)",
                                 f"allow HTTPS to {host} through the firewall")
    elif isinstance(exc, requests.exceptions.Timeout):
        cause, sentence, step = ("http", f"{failed} did not answer within {timeout:g} s",
                                 None)
    elif _first(chain, ConnectionRefusedError) is not None:
        cause, sentence, step = ("no-route", f"cannot reach {failed}: the connection was "
                                 f"refused (nothing listens on {host} port {port}, or a "
                                 "firewall rejects it)",
                                 f"allow HTTPS to {host} through the firewall")
    elif (unreachable := next((e for e in chain if isinstance(e, OSError)
                               and e.errno in NO_ROUTE), None)) is not None:
        cause, sentence, step = ("no-route", f"cannot reach {failed}: "
                                 f"{NO_ROUTE[unreachable.errno]}",
                                 "check the network: `ip route` must show a default route, "
                                 "and the cable or virtual network must be connected")
        host = None  # every host, not only this one
    else:
        # The operating system's words, from the deepest error that has them.
        reasons = [e.strerror for e in chain if isinstance(e, OSError)
                   and isinstance(e.strerror, str)]
        reason = reasons[-1] if reasons else "the connection failed"
        cause, sentence, step = "no-route", f"cannot reach {failed} ({reason})", None
    return FetchError(sentence, "network", step, cause, host, failed)


def html_page(response: requests.Response) -> bool:
    """Whether an answer is a web page (a captive portal, a proxy's login page), by its
    content type in any case."""
    return "html" in response.headers.get("Content-Type", "").lower()


def unexpected_answer(response: requests.Response, what: str, category: str = "network",
                      expected: str = "200") -> FetchError:
    """An HTTP answer that is not what `what` should be, said plainly: an HTML page (a
    captive portal or web filter) names where the redirects ended and its content type."""
    final = response.url
    host = urlsplit(final).hostname
    content_type = response.headers.get("Content-Type", "")
    if html_page(response):
        return FetchError(f"{what} answered an HTML page ({content_type}) from {final} "
                          f"instead: a captive portal or web filter is in the way",
                          category, f"let the appliance through the captive portal or web "
                          f"filter (the page at {final}), or use the site's proxy",
                          "http", host)
    if response.status_code in (403, 407):
        return FetchError(f"{final} refused {what} ({response.status_code} "
                          f"{response.reason}): a firewall or web filter may block {host}",
                          category, f"allow HTTPS to {host} through the firewall or web "
                          "filter", "http", host)
    return FetchError(f"{what} at {final} answered {response.status_code}, expected "
                      f"{expected}", category, None, "http", host)


def fetch(http: requests.Session, url: str, timeout: float, headers: dict | None = None,
          redirects: bool = True, limit: int | None = None,
          params: dict | None = None) -> requests.Response:
    """GET `url`; network failures become FetchError("network") naming their root cause.
    With `limit`, at most limit + 1 bytes of the body are read (a caller seeing more knows
    it was cut)."""
    try:
        response = http.get(url, timeout=timeout, allow_redirects=redirects, headers=headers,
                            params=params, stream=limit is not None)
        if limit is not None:
            with response:
                body = b""
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > limit:
                        break
                response._content = body  # what .content returns from now on
        return response
    except requests.exceptions.RequestException as exc:
        proxy = (http.proxies or {}).get("https")
        raise explain(exc, url, timeout, _without_credentials(proxy)) from exc


def _without_credentials(proxy: str | None) -> str | None:
    if not proxy:
        return None
    parts = urlsplit(proxy)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else proxy


def fetch_document(http: requests.Session, url: str, timeout: float, what: str,
                   schema: str | None = None, parse=json.loads, syntax: str = "JSON") -> object:
    """A JSON (or, with `parse` and `syntax`, other) document from the Alga repository,
    validated against `schema` when one is given."""
    response = fetch(http, url, timeout)
    if response.status_code == 404:
        raise FetchError(f"{what} not found at {url} (404)", "release-source")
    if response.status_code != 200:
        raise unexpected_answer(response, what)
    if html_page(response):
        raise unexpected_answer(response, what)
    try:
        document = parse(response.content)
    except ValueError as exc:
        raise FetchError(f"{what} at {url} is not valid {syntax}: {exc}",
                         "release-source") from exc
    if schema is not None:
        try:
            validate(document, schema, name=what, source=url)
        except DocumentInvalid as exc:
            raise FetchError(str(exc), "release-source") from exc
    return document
