"""The :8080 web service's JSON API (WSGI, served by waitress as the service user).

It never runs host commands: it validates requests and hands them to systemd through
the spool. Every endpoint but /healthz needs `Authorization: Bearer <setup token>`.
"""

import datetime
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from host import netinfo, paths, requests_spool, state, token
from host.inputs import InputErrors, parse_setup_inputs

MAX_BODY = 64 * 1024
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           413: "Content Too Large", 422: "Unprocessable Content"}


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra):
        self.status, self.body = status, {"error": message, **extra}
        super().__init__(message)


def make_app(root: Path | None = None, node_ip: Callable[[], str] = netinfo.node_ip):
    routes = {
        ("GET", "/healthz"): lambda environ: (200, {"status": "ok"}),
        ("POST", "/api/setup"): lambda environ: _setup_request(environ, root, node_ip()),
    }

    def app(environ: dict, start_response) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        try:
            handler = routes.get((method, path))
            if handler is None:
                if any(p == path for _, p in routes):
                    raise HttpError(405, f"{method} is not allowed on {path}")
                raise HttpError(404, f"no endpoint {path}")
            if path != "/healthz":
                _authenticate(environ, root)
            status, body = handler(environ)
        except HttpError as exc:
            status, body = exc.status, exc.body
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="alga-appliance"'))
        start_response(f"{status} {REASONS[status]}", headers)
        return [json.dumps(body).encode()]

    return app


def _authenticate(environ: dict, root: Path | None) -> None:
    scheme, _, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme != "Bearer" or not presented:
        raise HttpError(401, "send the setup token shown on the console as a Bearer token")
    if not token.matches(presented.strip(), token.read_token(root)):
        raise HttpError(401, "the setup token is wrong; use the one shown on the console")


def _json_body(environ: dict) -> dict:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError as exc:
        raise HttpError(400, "bad Content-Length") from exc
    if length > MAX_BODY:
        raise HttpError(413, f"the request body is larger than {MAX_BODY} bytes")
    try:
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    except ValueError as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object of setup answers")
    return body


def _setup_request(environ: dict, root: Path | None, node_ip: str) -> tuple[int, dict]:
    answers = _json_body(environ)
    try:
        document = parse_setup_inputs(answers, node_ip)
    except InputErrors as exc:
        raise HttpError(422, "some answers are not valid", fields=[
            {"field": e.field, "message": e.message} for e in exc.errors]) from exc
    install = state.read(state.INSTALL_STATE, root)
    if install and install["status"] == "running":
        raise HttpError(409, f"setup is already running ({install['current_phase']})")
    if requests_spool.spool_file(paths.SETUP_REQUEST, root).exists():
        raise HttpError(409, "a setup request is already waiting to start")
    submitted = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    requests_spool.submit(paths.SETUP_REQUEST, {"answers": answers, "submitted_at": submitted},
                          root)
    return 202, {"accepted": True, "inputs": document}
