"""A real OCI registry on loopback, set up the way GHCR answers anonymous pulls.

Three servers and one process, all started by `Registry` (a context manager):

- the CNCF distribution registry (Debian's `docker-registry`, 2.8) with token auth, TLS from
  the tests' CA and filesystem storage under a temporary directory;
- the token service it names as its realm: anonymous requests get pull-only tokens, the
  pusher's Basic credentials get push, pull and delete (JWTs signed with ES256, the signing
  certificate in the `x5c` header, which the registry checks against its root bundle);
- the front (`Registry.url`), which passes every request through to the registry unchanged
  except blob GETs: those it authorises against the registry with the client's Authorization
  and then redirects, as GHCR does, to the blob host (`Registry.blob_url`), which serves the
  bytes without asking for any token.

Every request the front, the token service and the blob host receive is in
`Registry.requests`, so tests and benchmarks can count what a client sends. No pytest in here.
"""

import base64
import contextlib
import datetime
import hashlib
import hmac
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from support.netlab import HOP_BY_HOP, TestCA, _Background, _QuietHandler, _TCPServer, _url
from support.oci import Artifact, Blob

REGISTRY_BINARY = "/usr/bin/docker-registry"
ISSUER = "alga-test-token-service"
PUSHER = ("publisher", "publish-secret")
TOKEN_SECONDS = 300
# What a pull asks for: every manifest type a registry may hold.
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))
# The request headers Registry.requests keeps: what tells a client's behaviour apart.
RECORDED_HEADERS = ("Host", "Authorization", "Accept")
BLOB_GET = re.compile(r"/v2/(?P<repository>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})")
BLOB_HOST_PATH = re.compile(r"/(?P<repository>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})")
STARTUP_SECONDS = 15
# How long one readiness probe waits: short, since whatever holds the port may never answer.
PROBE_SECONDS = 0.5
STOP_SECONDS = 5


@dataclass(frozen=True)
class Request:
    """One request one of the servers received. `role` is "registry" (the front), "token" or
    "blob"; `path` includes the query."""

    role: str
    method: str
    path: str
    headers: dict[str, str]


class Requests(list):
    """Every request received, in order of arrival."""

    def reset(self):
        self.clear()

    def of(self, role: str) -> list[Request]:
        return [request for request in self if request.role == role]


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


class _Handler(_QuietHandler):
    """Hands every request, whatever its method, to its server's `answer` and sends what that
    returns, recording the request first."""

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def do_GET(self):
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self):
        service = self.server.lab
        service.registry.requests.append(Request(service.role, self.command, self.path, {
            name: self.headers[name] for name in RECORDED_HEADERS if name in self.headers}))
        time.sleep(service.registry._delay(service.role, self.headers))
        length = int(self.headers.get("Content-Length") or 0)
        answer = service.answer(self, self.rfile.read(length))
        self.send_response_only(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)


class _Service(_Background):
    """One of the Registry's HTTPS servers."""

    role = ""

    def __init__(self, registry: "Registry", address: str, hostnames: tuple[str, ...]):
        super().__init__()
        self.registry = registry
        self.address = address
        self.hostnames = hostnames

    def _bind(self):
        server = _TCPServer((self.address, 0), _Handler, self)
        server.tls = self.registry.ca.server_context(self.address, *self.hostnames)
        return [server]

    @property
    def port(self) -> int:
        return self._servers[0].server_address[1]

    def answer(self, request: _Handler, body: bytes) -> _Answer:
        raise NotImplementedError


class _TokenService(_Service):
    """GET /token?service=S&scope=repository:NAME:ACTIONS (scope repeatable), as a registry's
    realm answers it."""

    role = "token"

    def answer(self, request, body):
        url = urlsplit(request.path)
        if url.path != "/token":
            return _Answer(404, [], b"not found")
        credentials = request.headers.get("Authorization")
        if credentials is not None and credentials != _basic(*PUSHER):
            return _json(401, {"errors": [{"code": "UNAUTHORIZED",
                                           "message": "wrong credentials"}]})
        allowed = {"pull"} if credentials is None else {"pull", "push", "delete"}
        query = parse_qs(url.query)
        token = self.registry._signer.token(
            subject="" if credentials is None else PUSHER[0],
            service=query.get("service", [""])[0],
            access=[_grant(scope, allowed) for scope in query.get("scope", [])])
        issued = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        fields = {"token": token, "access_token": token}
        return _json(200, {**{name: fields[name] for name in self.registry.token_fields},
                           "expires_in": TOKEN_SECONDS, "issued_at": issued})


def _grant(scope: str, allowed: set[str]) -> dict:
    kind, name, actions = scope.split(":")
    return {"type": kind, "name": name,
            "actions": sorted(set(actions.split(",")) & allowed)}


class _Front(_Service):
    """The registry's public face: passes requests through, redirects blob GETs."""

    role = "registry"

    def answer(self, request, body):
        blob = BLOB_GET.fullmatch(urlsplit(request.path).path)
        upstream = self.registry._forward(request.command, request.path, request.headers, body)
        if request.command != "GET" or blob is None or upstream.status != 200:
            return upstream
        # Authorised: the bytes are the blob host's to serve, as GHCR's are its CDN's.
        return _Answer(307, [("Location", self.registry._blob_location(**blob.groupdict()))])


class _BlobHost(_Service):
    """Serves blobs by the signed paths the front redirects to, with no token."""

    role = "blob"

    def answer(self, request, body):
        url = urlsplit(request.path)
        blob = BLOB_HOST_PATH.fullmatch(url.path)
        if request.command not in ("GET", "HEAD") or blob is None:
            return _Answer(404, [], b"not found")
        if parse_qs(url.query).get("sig") != [_signature(**blob.groupdict())]:
            return _Answer(403, [], b"signature does not match")
        data = self.registry._blob_bytes(**blob.groupdict())
        if data is None:
            return _Answer(404, [], b"not found")
        return _Answer(200, [("Content-Type", "application/octet-stream")], data)


def _signature(repository: str, digest: str) -> str:
    """The query the blob host wants, like GHCR's `sig=`: redirects can't be made up."""
    return hmac.new(b"alga-test-blob-host", f"{repository}@{digest}".encode(),
                    hashlib.sha256).hexdigest()


def _json(status: int, document: dict) -> _Answer:
    return _Answer(status, [("Content-Type", "application/json")], json.dumps(document).encode())


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Signer:
    """Signs the registry's tokens: an ES256 key and a self-signed certificate for it, which is
    the registry's whole root bundle."""

    def __init__(self):
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(self._key, hashes.SHA256()))

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def token(self, subject: str, service: str, access: list[dict]) -> str:
        now = int(time.time())
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": ISSUER, "sub": subject, "aud": service, "iat": now, "nbf": now - 5,
                  "exp": now + TOKEN_SECONDS, "jti": uuid.uuid4().hex, "access": access}
        signed = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode())
                          for part in (header, claims))
        r, s = decode_dss_signature(self._key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signed}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Registry:
    """The registry, its token service, the front and the blob host (module docstring).

    `address` is where the front, the token service and the registry listen, `hostnames` the
    extra names their certificates carry (e.g. "ghcr.test"); the blob host listens on
    `blob_address`, its certificate naming `blob_hostnames`. `token_fields` are the fields the
    token service puts the token in ("token", "access_token" or both, as registries differ).
    """

    def __init__(self, ca: TestCA, address: str = "127.0.0.1", hostnames: tuple[str, ...] = (),
                 blob_address: str = "127.0.0.2", blob_hostnames: tuple[str, ...] = (),
                 token_fields: tuple[str, ...] = ("token", "access_token")):
        self.ca = ca
        self.address = address
        self.hostnames = hostnames
        self.token_fields = token_fields
        self.requests = Requests()
        self._signer = _Signer()
        self._front = _Front(self, address, hostnames)
        self._token_service = _TokenService(self, address, hostnames)
        self._blob_host = _BlobHost(self, blob_address, blob_hostnames)
        self._corrupt: dict[str, bytes] = {}
        self._blob_down = False
        self._slow: dict[str, float] = {}  # role: seconds before each answer (with a token)
        self._stack = contextlib.ExitStack()
        self._process: subprocess.Popen | None = None
        self._registry_port = 0
        self._tls = ssl.create_default_context(cafile=str(ca.ca_pem_path))

    # Where clients go.
    @property
    def host(self) -> str:
        return f"{self.address}:{self._front.port}"

    @property
    def url(self) -> str:
        return _url("https", self.address, self._front.port)

    @property
    def service(self) -> str:
        """The `service` the registry's challenges name and its tokens must be issued for."""
        return self.host

    @property
    def realm(self) -> str:
        return _url("https", self.address, self._token_service.port) + "/token"

    @property
    def blob_host(self) -> str:
        return f"{self._blob_host.address}:{self._blob_host.port}"

    @property
    def blob_url(self) -> str:
        return _url("https", self._blob_host.address, self._blob_host.port)

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info):
        self._stack.close()

    def _start(self):
        work = Path(tempfile.mkdtemp(prefix="registry-"))
        self._stack.callback(shutil.rmtree, work, ignore_errors=True)
        for service in (self._token_service, self._blob_host, self._front):
            self._stack.enter_context(service)
        # A port nothing listens on while it is held: where redirects go while the blob host
        # is "down", so clients get connection refused.
        self._closed_port = self._stack.enter_context(socket.socket())
        self._closed_port.bind((self._blob_host.address, 0))
        self._registry_port = _free_port(self.address)
        config = work / "config.yml"
        config.write_text(json.dumps(self._config(work), indent=2))  # JSON is YAML
        log = work / "registry.log"
        with log.open("wb") as output:
            self._process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)],
                                             stdout=output, stderr=subprocess.STDOUT)
        self._stack.callback(self._stop)
        self._wait_until_serving(log)

    def _config(self, work: Path) -> dict:
        cert, key = self.ca.write_server_files(work, self.address, *self.hostnames)
        bundle = work / "token-signer.pem"
        bundle.write_bytes(self._signer.certificate_pem())
        return {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(work / "storage")},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"{self.address}:{self._registry_port}",
                     "secret": "alga-test-registry",
                     "tls": {"certificate": str(cert), "key": str(key)}},
            "auth": {"token": {"realm": self.realm, "service": self.service, "issuer": ISSUER,
                               "rootcertbundle": str(bundle)}},
        }

    def _wait_until_serving(self, log: Path):
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if self._origin_request("GET", "/v2/", timeout=PROBE_SECONDS).status == 401:
                    return
            time.sleep(0.01)
        raise RuntimeError(f"docker-registry did not start:\n{log.read_text()}")

    def _stop(self):
        self._process.terminate()
        try:
            self._process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    # The way to the registry itself, for the front, the blob host and the helpers.
    @property
    def _origin(self) -> str:
        return _url("https", self.address, self._registry_port)

    def _origin_request(self, method: str, path: str, headers: dict | None = None,
                        body: bytes = b"", timeout: float = 30) -> _Answer:
        connection = http.client.HTTPSConnection(self.address, self._registry_port,
                                                 context=self._tls, timeout=timeout)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        passed = [(name, value) for name, value in response.getheaders()
                  if name.lower() not in HOP_BY_HOP | {"content-length"}]
        return _Answer(response.status, passed, data)

    def _forward(self, method: str, path: str, headers, body: bytes) -> _Answer:
        """A client's request as the registry answers it (Host and all passed on, so the
        registry's upload Locations name the front)."""
        passed = {name: value for name, value in headers.items()
                  if name.lower() not in HOP_BY_HOP}
        return self._origin_request(method, path, passed, body)

    def _blob_location(self, repository: str, digest: str) -> str:
        base = self.blob_url
        if self._blob_down:
            base = _url("https", self._blob_host.address, self._closed_port.getsockname()[1])
        query = urlencode({"sp": "r", "sig": _signature(repository, digest)})
        return f"{base}/{repository}/blobs/{digest}?{query}"

    def _blob_bytes(self, repository: str, digest: str) -> bytes | None:
        """What the blob host serves: the registry's bytes unless corrupt_blob said otherwise."""
        if digest in self._corrupt:
            return self._corrupt[digest]
        token = self._token(repository, "pull")
        answer = self._origin_request("GET", f"/v2/{repository}/blobs/{digest}",
                                      {"Authorization": f"Bearer {token}"})
        return answer.body if answer.status == 200 else None

    # What tests do to the registry.
    def corrupt_blob(self, digest: str, data: bytes):
        """Make the blob host serve `data` for `digest` (the registry checks digests on upload,
        so a wrong blob can only come from where the bytes are served)."""
        self._corrupt[digest] = data

    @contextlib.contextmanager
    def blob_host_down(self):
        """Within the block, blob redirects point at a port where nothing listens."""
        self._blob_down = True
        try:
            yield
        finally:
            self._blob_down = False

    @contextlib.contextmanager
    def slow(self, role: str, seconds: float):
        """Within the block, the `role` server ("registry" or "blob") waits `seconds` before
        answering a request that has a token (the blob host's have their signature instead):
        the challenge and the token come at once, and then the manifests or the blobs don't."""
        self._slow[role] = seconds
        try:
            yield
        finally:
            del self._slow[role]

    def _delay(self, role: str, headers) -> float:
        has_token = role == "blob" or "Authorization" in headers
        return self._slow.get(role, 0.0) if has_token else 0.0

    def push(self, repository: str, artifact: Artifact, *tags: str) -> str:
        """Upload the artifact's blobs and put its manifest under each tag (by its digest when
        there is none); returns the digest."""
        for blob in artifact.blobs:
            self._upload(repository, blob)
        for reference in tags or (artifact.digest,):
            self._put_manifest(repository, reference, artifact.manifest, artifact.media_type)
        return artifact.digest

    def tag(self, repository: str, reference: str, new_tag: str):
        """Point `new_tag` at the manifest `reference` (a tag or digest) names, moving it if it
        named another."""
        answer = self._session(repository).get(
            f"{self._origin}/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT})
        answer.raise_for_status()
        self._put_manifest(repository, new_tag, answer.content, answer.headers["Content-Type"])

    def delete(self, repository: str, digest: str):
        """Withdraw a manifest: it and every tag on it answer 404 from now on."""
        self._session(repository).delete(
            f"{self._origin}/v2/{repository}/manifests/{digest}").raise_for_status()

    def _upload(self, repository: str, blob: Blob):
        session = self._session(repository)
        started = session.post(f"{self._origin}/v2/{repository}/blobs/uploads/")
        started.raise_for_status()
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        session.put(f"{location}{separator}{urlencode({'digest': blob.digest})}", data=blob.data,
                    headers={"Content-Type": "application/octet-stream"}).raise_for_status()

    def _put_manifest(self, repository: str, reference: str, manifest: bytes, media_type: str):
        self._session(repository).put(
            f"{self._origin}/v2/{repository}/manifests/{reference}", data=manifest,
            headers={"Content-Type": media_type}).raise_for_status()

    def _session(self, repository: str) -> requests.Session:
        """A session straight to the registry with the pusher's rights, so helpers' requests
        are not among the ones tests count."""
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE would win over `verify`
        session.verify = str(self.ca.ca_pem_path)
        token = self._token(repository, "pull,push,delete")
        session.headers["Authorization"] = f"Bearer {token}"
        return session

    def _token(self, repository: str, actions: str) -> str:
        access = [{"type": "repository", "name": repository, "actions": actions.split(",")}]
        return self._signer.token(PUSHER[0], self.service, access)


def _free_port(address: str) -> int:
    """A TCP port free on `address` now, for a server that binds it itself."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def challenge(response: requests.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v",...` header."""
    scheme, _, parameters = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer", response.headers["WWW-Authenticate"]
    return dict(re.findall(r'(\w+)="([^"]*)"', parameters))


def pull(base_url: str, repository: str, reference: str, verify: str) -> tuple[dict, bytes]:
    """A plain client's anonymous pull, as the release source makes it: challenged, a token from
    the realm, the manifest, its config blob (redirects followed). The manifest and the config's
    bytes."""
    url = f"{base_url}/v2/{repository}/manifests/{reference}"
    with requests.Session() as session:
        session.trust_env = False
        session.verify = verify
        parameters = challenge(session.get(url, headers={"Accept": MANIFEST_ACCEPT}))
        token = session.get(parameters["realm"], params={
            "service": parameters["service"], "scope": parameters["scope"]}).json()["token"]
        headers = {"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"}
        manifest = session.get(url, headers=headers)
        manifest.raise_for_status()
        digest = manifest.json()["config"]["digest"]
        config = session.get(f"{base_url}/v2/{repository}/blobs/{digest}", headers=headers)
        config.raise_for_status()
    return manifest.json(), config.content
