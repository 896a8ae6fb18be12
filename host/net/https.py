"""HTTPS to GitHub, GHCR and release hosts, through the proxy and CA setup chose.

One session builder and one fetch for preflight and the install phases, so both see the
network the same way and classify its failures the same way.
"""

import base64
import json
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from host.core.validation import DocumentInvalid, validate
from host.net.endpoints import Endpoints


class FetchError(Exception):
    """A request failed: what, where and why (the message), its failure category and, when
    the cause suggests one, the next step (else the caller's generic one applies)."""

    def __init__(self, message: str, category: str, next_step: str | None = None):
        self.category, self.next_step = category, next_step
        super().__init__(message)


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


def session(inputs: dict, endpoints: Endpoints) -> requests.Session:
    result = requests.Session()
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


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"


def fetch(http: requests.Session, url: str, timeout: float, headers: dict | None = None,
          redirects: bool = True, limit: int | None = None,
          params: dict | None = None) -> requests.Response:
    """GET `url`; network failures become FetchError("network"). With `limit`, at most
    limit + 1 bytes of the body are read (a caller seeing more knows it was cut)."""
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
    except requests.exceptions.ProxyError as exc:
        if "407" in str(exc):  # for HTTPS, the proxy's answer to CONNECT arrives this way
            raise FetchError(f"the proxy requires authentication (407) for {url}: check the "
                             "proxy user and password", "network") from exc
        raise FetchError(f"the proxy refused {url}: {_reason(exc)}", "network") from exc
    except requests.exceptions.SSLError as exc:
        raise FetchError(f"TLS to {url} failed: {_reason(exc)}", "network") from exc
    except requests.exceptions.Timeout as exc:
        raise FetchError(f"{url} did not answer within {timeout:g} s", "network") from exc
    except requests.exceptions.RequestException as exc:
        raise FetchError(f"cannot reach {url}: {_reason(exc)}", "network") from exc


def fetch_document(http: requests.Session, url: str, timeout: float, what: str,
                   schema: str | None = None, parse=json.loads, syntax: str = "JSON") -> object:
    """A JSON (or, with `parse` and `syntax`, other) document from the Alga repository,
    validated against `schema` when one is given."""
    response = fetch(http, url, timeout)
    if response.status_code == 404:
        raise FetchError(f"{what} not found at {url} (404)", "release-source")
    if response.status_code != 200:
        raise FetchError(f"{what} at {url} answered {response.status_code}", "network")
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
