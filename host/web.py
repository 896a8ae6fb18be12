"""The :8080 web service: the static UI and a JSON API (WSGI, served by waitress as the
service user).

It changes nothing on the host itself: it reads the state files the phases and the
collector write (and the appliance units' journal, read-only), validates requests and
hands them to systemd through the spool. Every API endpoint
but /healthz needs `Authorization: Bearer <setup token>`: without a valid token on the host
it answers 503 (fail closed); wrong tokens are rate-limited per client address, the right
one never is. Its log lines, and waitress's, are redacted and escaped (ScrubbingFormatter).
"""

import collections
import functools
import ipaddress
import json
import logging
import os
import pwd
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path

from host.core import busy, spool, sshkeys, state, token
from host.core.version import __version__
from host.net import addresses, endpoints, resolvers
from host.releases import channels, source
from host.setup import chain, credentials, diagnostics, recovery, timing
from host.setup import request as setup_request
from host.setup.inputs import (
    FIELDS,
    PASSWORD_RULE,
    InputErrors,
    admin_password_stored,
    as_answers,
    default_answers,
    parse_setup_inputs,
    password_stored,
    without_password,
)
from host.support import collectors, log_request, logs, redact
from host.support import request as support_request
from host.update import request as update_request
from host.update import self_update

MAX_BODY = 64 * 1024
DOWNLOAD_CHUNK = 1 << 16  # bytes per read of a support bundle being downloaded
STATIC_DIR = Path(__file__).resolve().parent.parent / "ui-static"
FAILED_AUTH_LIMIT = 10  # failed token attempts per client address ...
FAILED_AUTH_WINDOW = 60.0  # ... per this many seconds, then 429
TRACKED_CLIENTS = 1024
SERVER_SET_UPDATE_FIELDS = {"id", "who", "requested_at"}
# The UI's pages: one document whose script shows the page its address names, so the
# console's http://<ip>:8080/setup link and a reload on any page both work.
APP_PAGES = ("", "/", "/setup", "/progress", "/status", "/logs", "/updates", "/support")
# What the UI is made of, the only files served from ui-static/ (by type).
UI_FILE_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8"}
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           413: "Content Too Large", 422: "Unprocessable Content", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "
     "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
     "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]


LOG = logging.getLogger("alga-appliance.web")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: list | None = None, **extra):
        self.status, self.body, self.headers = status, {"error": message, **extra}, headers or []
        super().__init__(message)


class FailedAuthLimiter:
    """Wrong tokens presented per client, within a sliding window: a client that presented
    `limit` of them is refused (429) until the oldest leaves the window. Attempts refused
    that way are not counted, so each client holds at most `limit` timestamps.

    Memory is bounded by `tracked` clients, and the bound must not become a way to unlock
    an address: when the table is full, clients whose failures have all left the window go
    first, then the unlocked client that failed longest ago (it loses at most limit - 1
    failures); a locked client is never evicted, so flooding the table from many addresses
    frees none of them. When every tracked client is locked, a new client is treated as
    locked too, until a slot frees: refusing a few wrong tokens too many is safe, since the
    right token is checked before the limiter and always works.
    """

    def __init__(self, limit: int = FAILED_AUTH_LIMIT, window: float = FAILED_AUTH_WINDOW,
                 tracked: int = TRACKED_CLIENTS, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.tracked, self.clock = limit, window, tracked, clock
        # Ordered by each client's last counted failure, oldest first.
        self.failures: collections.OrderedDict[str, collections.deque] = (
            collections.OrderedDict())
        self.lock = threading.Lock()

    def wrong_token(self, client: str) -> int | None:
        """Count a wrong token from `client`: None when counted, or the seconds until it may
        try again when it is locked (the attempt is then not counted)."""
        with self.lock:
            now = self.clock()
            cutoff = now - self.window
            while self.failures and next(iter(self.failures.values()))[-1] <= cutoff:
                self.failures.popitem(last=False)  # every failure of the oldest has expired
            recent = self.failures.get(client)
            if recent is None:
                if len(self.failures) >= self.tracked and not self._evict_unlocked(cutoff):
                    return self._wait(min(r[0] for r in self.failures.values()), now)
                recent = self.failures[client] = collections.deque()
            _expire(recent, cutoff)
            if len(recent) >= self.limit:
                return self._wait(recent[0], now)
            recent.append(now)
            self.failures.move_to_end(client)
            return None

    def _evict_unlocked(self, cutoff: float) -> bool:
        for client, recent in self.failures.items():
            _expire(recent, cutoff)
            if len(recent) < self.limit:
                del self.failures[client]
                return True
        return False

    def _wait(self, first_failure: float, now: float) -> int:
        return max(1, int(first_failure + self.window - now) + 1)


def _expire(recent: collections.deque, cutoff: float) -> None:
    while recent and recent[0] <= cutoff:
        recent.popleft()


def make_app(root: Path | None = None, node_ip: Callable[[], str] = addresses.node_ip,
             limiter: FailedAuthLimiter | None = None,
             journal: Callable[[int], list[str]] | None = None,
             fetch_log: Callable[[logs.Query, Path | None], dict] = log_request.fetch):
    limiter = limiter or FailedAuthLimiter()
    journal = journal or functools.partial(logs.journal, logs.APPLIANCE_UNITS)
    routes = {
        ("GET", "/healthz"): lambda environ: (200, {"status": "ok"}),
        ("GET", "/api/setup"): lambda environ: (200, _setup_context(root, node_ip())),
        ("POST", "/api/setup"): lambda environ: _setup_request(environ, root, node_ip()),
        ("POST", "/api/setup/resume"): lambda environ: _resume_request(root),
        ("POST", "/api/setup/validate"): lambda environ: (200, _validated(
            _parsed(_json_body(environ), root, node_ip()))),
        ("GET", "/api/status"): lambda environ: (200, {
            "status": state.read(state.STATUS, root),
            "update_notice": state.read(state.UPDATE_NOTICE, root)}),
        ("GET", "/api/install"): lambda environ: (200, _install(root)),
        ("GET", "/api/release"): lambda environ: (200, {
            "release": state.read(state.SELECTED_RELEASE, root)}),
        ("GET", "/api/logs"): lambda environ: (200, _logs(environ, root, journal, fetch_log)),
        ("GET", "/api/logs/sources"): lambda environ: (200, _log_sources()),
        ("GET", "/api/updates"): lambda environ: (200, _updates(root)),
        ("POST", "/api/updates"): lambda environ: _update_request(environ, root),
        ("GET", "/api/self-update"): lambda environ: (200, _self_update(root)),
        ("POST", "/api/self-update"): lambda environ: _self_update_request(environ, root),
        ("POST", "/api/support-bundle"): lambda environ: _support_bundle_request(root),
        ("POST", "/api/token/rotate"): lambda environ: _rotate_token(root),
        ("GET", "/api/support-bundle"): lambda environ: (200, {
            "status": support_request.last_status(root),
            "bundles": support_request.available(root),
            "waiting": spool.waiting(spool.SUPPORT_BUNDLE, root)}),
        ("GET", "/api/support-bundle/download"): lambda environ: (
            200, _bundle_archive(environ, root)),
        ("GET", "/api/network-diagnostics"): lambda environ: (200, {
            "status": diagnostics.last_status(root), "report": diagnostics.last_report(root)}),
        ("POST", "/api/network-diagnostics"): lambda environ: _diagnostics_request(root),
    }

    def app(environ: dict, start_response) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        extra_headers = []
        try:
            if not path.startswith("/api/") and path != "/healthz":
                return _static(method, path, start_response)
            if path != "/healthz":  # first: without the token, no path says whether it exists
                _authenticate(environ, root, limiter)
            handler = routes.get((method, path))
            if handler is None:
                allowed = sorted(m for m, p in routes if p == path)
                if allowed:
                    raise HttpError(405, f"{method} is not allowed on {path}",
                                    headers=[("Allow", ", ".join(allowed))])
                raise HttpError(404, f"no endpoint {path}")
            status, body = handler(environ)
            if isinstance(body, Path):
                return _download(body, environ, start_response)
        except HttpError as exc:
            status, body = exc.status, exc.body
            extra_headers = exc.headers
        except state.StateFileInvalid as exc:
            status, body = 503, broken_state_file(exc)
        except Exception as exc:  # never a traceback to the client; the journal has it
            LOG.error("%s %s failed", method, path, exc_info=exc)
            status, body = 500, {"error": "internal error; see journalctl -u alga-appliance"}
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                   *SECURITY_HEADERS, *extra_headers]
        start_response(f"{status} {REASONS[status]}", headers)
        return [json.dumps(body).encode()]

    return app


def broken_state_file(exc: state.StateFileInvalid) -> dict:
    """A state file the request needs is unreadable or invalid: 503 until the admin moves it
    aside (the next step says how; the Support page still makes a bundle with it)."""
    return {"error": f"the {exc.state.name} file cannot be used: it is {exc.problem}",
            "file": str(exc.path), "next_step": exc.next_step}


class ScrubbingFormatter(logging.Formatter):
    """The service's log lines, its own and waitress's (which name the request path), as
    the journal and the Logs page show them: every message and exception text redacted
    and escaped by redact.log_line. A traceback keeps its frames (file, line and code, no
    request values) on lines of their own."""

    def __init__(self, root: Path | None):
        super().__init__()
        self.root = root

    def format(self, record: logging.LogRecord) -> str:
        known = collectors.service_known_values(self.root)
        lines = [f"{record.name}: {redact.log_line(self._message(record), known)}"]
        failure = record.exc_info[1] if record.exc_info else None
        if failure is not None:
            frames = "".join(traceback.format_tb(failure.__traceback__))
            lines += [redact.log_line(line, known) for line in frames.splitlines()]
            lines.append(redact.log_line(f"{type(failure).__name__}: {failure}", known))
        return "\n".join(lines)

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        try:
            return record.getMessage()
        except Exception:  # logging's own fallback would print the raw arguments
            return f"{record.msg} (its arguments did not fit)"


def configure_logging(root: Path | None = None) -> logging.Handler:
    """Send every log record of this process to stderr (the journal) through the
    ScrubbingFormatter; before waitress starts, whose own setup then leaves it alone."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(root))
    logging.getLogger().addHandler(handler)
    return handler


def _updates(root: Path | None) -> dict:
    history = state.read(state.UPDATE_HISTORY, root)
    return {"current": state.read(state.SELECTED_RELEASE, root),
            "history": history["entries"] if history else [],
            "busy": update_request.why_busy(root),
            "notice": state.read(state.UPDATE_NOTICE, root),
            "waiting": spool.waiting(spool.UPDATE, root)}


def _update_request(environ: dict, root: Path | None) -> tuple[int, dict]:
    body = _json_body(environ)
    # Who asked and when are the server's to say, never the client's.
    errors = [{"field": field, "message": "is set by the appliance; leave it out"}
              for field in sorted(set(body) & SERVER_SET_UPDATE_FIELDS)]
    request = {"confirmed": False, **_installed_channel_for_a_check(body, root), **body,
               "who": "web", "requested_at": state.timestamp()}
    errors += [problem for problem in spool.problems(spool.UPDATE, request)
               if problem["field"] not in SERVER_SET_UPDATE_FIELDS]
    if not errors:
        errors = [problem for problem in [update_request.unreviewed(request, root)] if problem]
    if errors:
        raise HttpError(422, "the update request is not valid", fields=errors)
    busy = update_request.why_busy(root)
    if busy:
        raise HttpError(409, busy)
    try:
        request_id = spool.submit(spool.UPDATE, request, root)
    except spool.AlreadyPending as exc:
        raise HttpError(409, str(exc)) from exc
    return 202, {"accepted": True, "request_id": request_id}


def _self_update(root: Path | None) -> dict:
    """The appliance software's version, what the last check found newer, a self-update
    under way, its history (newest first) and why a request would be refused now."""
    record = state.read(state.MAINTENANCE, root)
    try:
        installed = self_update.installed_version(root)
    except FileNotFoundError:  # no versioned install here (a development checkout)
        installed = None
    return {"installed": installed, "serving": __version__,
            "offer": self_update.offer(root, installed),
            "running": self_update.read_journal(root),
            "history": record["self_updates"] if record else [], "busy": busy.busy(root),
            "waiting": spool.waiting(spool.SELF_UPDATE, root)}


def _self_update_request(environ: dict, root: Path | None) -> tuple[int, dict]:
    body = _json_body(environ)
    errors = [{"field": field, "message": "is set by the appliance; leave it out"}
              for field in sorted(set(body) & SERVER_SET_UPDATE_FIELDS)]
    request = {**body, "who": "web", "requested_at": state.timestamp()}
    errors += [problem for problem in spool.problems(spool.SELF_UPDATE, request)
               if problem["field"] not in SERVER_SET_UPDATE_FIELDS]
    if errors:
        raise HttpError(422, "the self-update request is not valid", fields=errors)
    running = busy.busy(root)
    if running:
        raise HttpError(409, f"{running}; a self-update waits for it: retry once it finished")
    try:
        request_id = spool.submit(spool.SELF_UPDATE, request, root)
    except spool.AlreadyPending as exc:
        raise HttpError(409, str(exc)) from exc
    return 202, {"accepted": True, "request_id": request_id}


def _installed_channel_for_a_check(body: dict, root: Path | None) -> dict:
    """A check without a channel checks the installed one; before setup has installed a
    release there is none, and the answer says so (409, as for any update then)."""
    if body.get("action") != "check" or "channel" in body:
        return {}
    current = state.read(state.SELECTED_RELEASE, root)
    if current is None:
        raise HttpError(409, "there is no installed channel to check: no release is "
                        "installed yet; updates are possible once setup has completed")
    return {"channel": current["channel"]}


def _support_bundle_request(root: Path | None) -> tuple[int, dict]:
    try:
        request_id = support_request.submit(root)
    except support_request.Busy as exc:
        raise HttpError(409, str(exc)) from exc
    return 202, {"accepted": True, "request_id": request_id}


def _diagnostics_request(root: Path | None) -> tuple[int, dict]:
    try:
        request_id = diagnostics.submit(root)
    except diagnostics.Busy as exc:
        raise HttpError(409, str(exc)) from exc
    return 202, {"accepted": True, "request_id": request_id}


def _rotate_token(root: Path | None) -> tuple[int, dict]:
    """A new token, shown once in the answer, so the admin's tab goes on with it; the old
    one stops working at once. The console banner shows the new one at the console timer's
    next run (within 15 s): this unprivileged service may neither write /etc/issue.d nor
    start units, and meanwhile the banner's old token only no longer works.

    After setup only. Before, the token is what the admin at the console reads to start the
    wizard, and whoever else has read it (it crosses plain HTTP) could rotate the admin out
    mid-setup; the console, where the token is shown, rotates it then (token rotate)."""
    install = state.read(state.INSTALL_STATE, root)
    if install is None or install["status"] != "succeeded":
        raise HttpError(409, "the setup token is rotated here once setup has finished; until "
                        "then, on the appliance's console run: sudo alga-appliance token rotate")
    this_user = pwd.getpwuid(os.geteuid()).pw_name  # the service user: it owns the token
    try:
        new = token.rotate_token(root, owner=this_user)
    except OSError as exc:
        raise HttpError(503, f"the setup token {token.token_path(root)} could not be replaced "
                        f"({exc.strerror or exc}); the old one still works; on the appliance's "
                        "console run: sudo alga-appliance token rotate") from exc
    return 200, {"token": token.for_people(new)}


def _bundle_archive(environ: dict, root: Path | None) -> Path:
    name = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("name", [""])[-1]
    path = support_request.archive(name, root)
    if path is None:
        raise HttpError(404, "no such support bundle; GET /api/support-bundle lists them")
    return path


def _download(path: Path, environ: dict, start_response) -> Iterable[bytes]:
    """An archive as an attachment, sent from its file: through the server's file wrapper
    waitress reads it as the client takes it, where chunks yielded faster than a slow
    client reads would be copied to a temporary file (bundles are megabytes)."""
    fp = open(path, "rb")  # noqa: SIM115  (waitress closes the iterable when sent)
    size = os.fstat(fp.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/gzip"),
                              ("Content-Length", str(size)), ("Cache-Control", "no-store"),
                              ("Content-Disposition", f'attachment; filename="{path.name}"'),
                              *SECURITY_HEADERS])
    return environ["wsgi.file_wrapper"](fp, DOWNLOAD_CHUNK)


def _static(method: str, path: str, start_response) -> Iterable[bytes]:
    """A file of the UI from ui-static/: its pages, styles and scripts, nothing else there
    (its README) and nothing outside it."""
    if method not in ("GET", "HEAD"):
        raise HttpError(405, f"{method} is not allowed on {path}",
                        headers=[("Allow", "GET, HEAD")])
    relative = "index.html" if path in APP_PAGES else path.lstrip("/")
    target = (STATIC_DIR / relative).resolve()
    content_type = UI_FILE_TYPES.get(target.suffix)
    if not (content_type and target.is_relative_to(STATIC_DIR) and target.is_file()):
        raise HttpError(404, f"no file {path}")
    body = target.read_bytes()
    start_response("200 OK", [("Content-Type", content_type), ("Cache-Control", "no-cache"),
                              ("Content-Length", str(len(body))), *SECURITY_HEADERS])
    return [] if method == "HEAD" else [body]


def _authenticate(environ: dict, root: Path | None, limiter: FailedAuthLimiter) -> None:
    expected = _setup_token(root)
    presented = _presented_token(environ)
    # The right token first: it is never refused, whatever wrong ones came from the same
    # address, so a lockout can never lock out the admin.
    if presented is not None and token.matches(presented, expected):
        return
    if presented is not None:
        wait = limiter.wrong_token(_client(environ))
        if wait is not None:
            raise HttpError(429, "too many wrong tokens from this address; the right token "
                            "still works", headers=[("Retry-After", str(wait))])
    # No detail: nothing that tells a guesser how close it came.
    raise HttpError(401, "unauthorized",
                    headers=[("WWW-Authenticate", 'Bearer realm="alga-appliance"')])


def _presented_token(environ: dict) -> str | None:
    """The bearer token the request presents, or None for none. Only a presented token can
    be a guess, so only one counts as a failure: a request without one (an <img> on any web
    page pointing here sends none, and no page can add the header without our consent)
    must not lock out the admin's address."""
    scheme, _, credential = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    credential = credential.strip()
    # Auth schemes are case-insensitive (RFC 9110 section 11.1): "bearer" is "Bearer".
    return credential if scheme.lower() == "bearer" and credential else None


def _setup_token(root: Path | None) -> str:
    """The token; 503 without a valid one (fail closed: no token lets no one in)."""
    try:
        return token.read_token(root)
    except token.NoValidToken as exc:
        raise HttpError(503, str(exc)) from exc
    except OSError as exc:
        raise HttpError(503, f"the setup token {token.token_path(root)} cannot be read "
                        f"({exc.strerror or exc}); {token.NEXT_STEP}") from exc


def _client(environ: dict) -> str:
    """Whom failures are counted for: the address, or an IPv6 client's /64 (one host
    commonly holds a whole /64, and could otherwise spread its guesses over it)."""
    address = environ.get("REMOTE_ADDR", "unknown")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network((parsed, 64), strict=False))


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
    except RecursionError as exc:  # the parser's own limit, about 1,000 levels
        raise HttpError(400, "the body is not JSON the appliance accepts: it is nested too "
                        "deeply") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object of setup answers")
    return body


def _install(root: Path | None) -> dict:
    # A run whose owner is gone shows as the interrupted failure it will be recorded.
    install = recovery.view(state.read(state.INSTALL_STATE, root), root)
    return {"install": install, "preflight": state.read(state.PREFLIGHT_REPORT, root),
            "refused": state.read(state.SETUP_REFUSAL, root),
            "credentials": credentials.outcome(install, root),
            "timing": timing.current(install, root),
            "waiting": spool.waiting(spool.SETUP, root)}


def _validated(inputs: dict) -> dict:
    """The inputs as they may be shown, and the SSH keys as `ssh-keygen -l` lists them (the
    browser cannot hash them itself over plain HTTP)."""
    return {"inputs": without_password(inputs),
            "ssh_keys": [sshkeys.parse(key).describe()
                         for key in inputs["admin"]["ssh_authorized_keys"]]}


def _parsed(answers: dict, root: Path | None, node_ip: str) -> dict:
    try:
        return parse_setup_inputs(answers, node_ip, state.read(state.SETUP_INPUTS, root),
                                  admin_user=credentials.admin_user(root))
    except InputErrors as exc:
        raise _invalid(exc) from exc


def _invalid(exc: InputErrors) -> HttpError:
    return HttpError(422, "some answers are not valid", fields=[
        {"field": e.field, "message": e.message} for e in exc.errors])


def _setup_context(root: Path | None, node_ip: str) -> dict:
    """What the wizard shows before the admin types: defaults, detected resolvers and the
    answers of the last setup (for editing after a failed preflight), never its proxy
    password: only whether one is stored (an empty password keeps it)."""
    inputs = state.read(state.SETUP_INPUTS, root)
    return {"node_ip": node_ip, "channels": list(channels.CHANNELS),
            "default_channel": channels.DEFAULT_CHANNEL, "fields": list(FIELDS),
            "phases": [{"name": step.name, "title": step.title} for step in chain.CHAIN],
            "resolvers": resolvers.system(root),
            "release_source": _release_source(root),
            "defaults": default_answers(node_ip),
            "answers": as_answers(inputs) if inputs else None,
            "proxy_password_stored": password_stored(inputs),
            "admin_password_stored": admin_password_stored(inputs),
            "admin_user": credentials.admin_user(root), "password_rule": PASSWORD_RULE}


def _release_source(root: Path | None) -> dict:
    """The release source setup uses unless support overrides it."""
    try:
        chosen = source.configured({"overrides": {}}, endpoints.load(root), root)
    except state.StateFileInvalid as exc:  # shown, so support sees why
        return {"reference": "unknown", "origin": str(exc)}
    return {"reference": chosen.reference, "origin": chosen.origin}


def _setup_request(environ: dict, root: Path | None, node_ip: str) -> tuple[int, dict]:
    answers = _json_body(environ)
    try:
        submitted = setup_request.submit(answers, node_ip, root)
    except InputErrors as exc:
        raise _invalid(exc) from exc
    except setup_request.SetupBusy as exc:
        raise HttpError(409, str(exc)) from exc
    return 202, {"accepted": True, "request_id": submitted.request_id,
                 "inputs": without_password(submitted.inputs),
                 "submitted_at": submitted.submitted_at}


def _resume_request(root: Path | None) -> tuple[int, dict]:
    try:
        request_id = setup_request.submit_resume(root)
    except setup_request.SetupBusy as exc:
        raise HttpError(409, str(exc)) from exc
    return 202, {"accepted": True, "request_id": request_id}


def _logs(environ: dict, root: Path | None, journal: Callable[[int], list[str]],
          fetch_log: Callable[[logs.Query, Path | None], dict]) -> dict:
    """The bounded, redacted end of one log (host/support/logs.py names them); what only
    root can read comes through the spool from the log oneshot."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    try:
        chosen = logs.parse(query.get("source", [""])[-1], query.get("lines", [None])[-1],
                            query.get("previous", [None])[-1])
    except logs.BadQuery as exc:
        raise HttpError(400, "bad log query", fields=exc.fields) from exc
    try:
        if chosen.source.privileged:
            return _fetched_log(fetch_log, chosen, root)
        if chosen.source.unit:  # the appliance's journal: the service user reads it
            excerpt = logs.redacted(logs.Excerpt(journal(chosen.lines), live=True),
                                    collectors.service_known_values(root))
            return excerpt.as_dict(chosen)
        return logs.read(chosen, root).as_dict(chosen)
    except logs.LogUnavailable as exc:
        raise HttpError(503, str(exc)) from exc


def _fetched_log(fetch_log: Callable[[logs.Query, Path | None], dict], query: logs.Query,
                 root: Path | None) -> dict:
    try:
        answer = fetch_log(query, root)
    except log_request.NotAnswered as exc:
        raise HttpError(503, str(exc)) from exc
    if answer["error"]:
        raise HttpError(503, answer["error"])
    return {key: answer[key] for key in ("source", "label", "previous", "lines", "live", "note")}


def _log_sources() -> dict:
    return {"sources": [{"name": source.name, "label": source.label, "group": source.group,
                         "previous": source.has_previous} for source in logs.ALL]}
