"""The login probe: a real HTTP request to the app where it runs, the node's address and
alga-core's port. A Ready flag alone is not enough (an earlier appliance said "ready" while the
app still answered 503). The public app URL is another matter: TLS may end on a proxy in
front, or the name resolve elsewhere inside the site, so it is probed separately and never
decides login."""

from urllib.parse import urljoin, urlsplit

import requests

from host.cluster import alga
from host.cluster.readiness import ClusterView, Verdict, node_address

TIMEOUT = 5.0


def app_on_node(view: ClusterView, fallback_address: str) -> str:
    """alga-core's own address: the node's InternalIP as Kubernetes reports it (the host's
    default-route address, `fallback_address`, before the node has registered)."""
    return f"http://{node_address(view) or fallback_address}:{alga.APP_PORT}/"


def probe_login(app_url: str, timeout: float = TIMEOUT) -> Verdict:
    """Ready on 2xx, or on 3xx that stays on the same host (the login page, the dashboard)."""
    session = requests.Session()
    session.trust_env = False  # the app is on this node: never through a proxy
    try:
        response = session.get(app_url, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return Verdict(False, f"{app_url} did not answer within {timeout:g} s")
    except requests.RequestException as exc:
        return Verdict(False, f"{app_url} is not reachable: {type(exc).__name__}")
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(True, f"{app_url} answered {status}")
    if 300 <= status < 400:
        target = urlsplit(urljoin(app_url, response.headers.get("Location", "")))
        if target.hostname == urlsplit(app_url).hostname:
            return Verdict(True, f"{app_url} redirects to {target.path or '/'}")
        return Verdict(False, f"{app_url} redirects to another host ({target.hostname})")
    return Verdict(False, f"{app_url} answered {status}")
