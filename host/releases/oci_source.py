"""Alga's releases as OCI artifacts (docs/reference/alga-formats.md, "Releases as OCI
artifacts"): which release a channel tag (or a pinned tag or digest) names, resolved the way
any registry expects, so GHCR, a mirror and the tests' registry work alike:

1. GET /v2/<repository>/manifests/<tag>   → 401 with a Bearer challenge (realm, service, scope)
2. GET <realm>?service=…&scope=…           → an anonymous pull token
3. GET /v2/<repository>/manifests/<tag>   (with the token) → the manifest; its digest is
   what was resolved, immutably
4. GET /v2/<repository>/blobs/<config>     → a redirect to the blob host, then the release
   manifest itself, verified against its digest and the schema
5. the config bundle's manifest by digest (its own challenge and token), so a withdrawn
   bundle fails here rather than in Flux.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
import yaml

from host.cluster import alga
from host.core.validation import DocumentInvalid, load_schema, validate
from host.net.https import FetchError, NotRun, fetch, html_page

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST))
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
PLATFORM = {"architecture": "amd64", "os": "linux"}  # what the appliance runs
RELEASE_CONFIG_TYPE = "application/vnd.alga.appliance.release.config.v1+json"
FLUX_CONFIG_TYPE = "application/vnd.cncf.flux.config.v1+json"  # what `flux push artifact` sets
DEFAULT_PROFILE = "single-node"
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 16 << 20  # the release manifest carries every values file inline
MAX_REDIRECTS = 5
MAX_TAG_PAGES = 20
TAGS_PER_PAGE = 1000  # the `n` a tag list asks for; registries cap it and link the next page
KNOWN_FIELDS = ("schema", "version", "channel", "valuesProfile", "images", "app", "controlPlane",
                "config", "charts", "profileValues", "supportAgent", "supportReceiptKeys")
SOURCE_NEXT_STEP = ("check the release source override (support: overrides.release_source in "
                    "setup, or release_source in endpoints.json), or choose another channel")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Reference:
    """oci://<registry>/<repository>, optionally pinned to a tag or a digest."""

    registry: str  # host[:port], reached over HTTPS
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Reference":
        """The grammar is release-source.schema.json's, the one owner of it."""
        grammar = load_schema("release-source.schema.json")["$defs"]["reference"]["pattern"]
        if not text.startswith("oci://") or not re.match(grammar, text):
            raise ValueError(f"{text!r} is not oci://<registry>/<repository>, optionally with "
                             ":<tag> or @sha256:<digest>")
        rest, _, digest = text.removeprefix("oci://").partition("@")
        registry, _, path = rest.partition("/")
        repository, _, tag = path.partition(":")  # a port is before the first /, a tag after
        return cls(registry, repository, tag or None, digest or None)

    @property
    def pin(self) -> str | None:
        return self.digest or self.tag

    def __str__(self) -> str:
        return f"oci://{self.registry}/{self.repository}"


class NotFound(FetchError):
    """The registry answered 404: the tag, the digest or the repository does not exist."""


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        return parts.scheme in ("https", "http") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0)
    except ValueError:  # a bracketed host that is no address, a port out of range
        return False


def _looks_like_html(response: requests.Response) -> bool:
    return html_page(response) or response.content.lstrip()[:1] == b"<"


def _not_json_cause(response: requests.Response) -> str:
    if _looks_like_html(response):
        return ("an HTML page: a captive portal, a proxy's login page or a web server "
                "answering for the registry")
    return f"{response.headers.get('Content-Type') or 'no content type'}, not JSON"


def _json(response: requests.Response, what: str, url: str, limit: int) -> object:
    if len(response.content) > limit:
        raise FetchError(f"{what} at {url} is larger than {limit} bytes", "release-source",
                         SOURCE_NEXT_STEP)
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise FetchError(f"{what} at {url} is {_not_json_cause(response)}", "release-source",
                         "if a captive portal or proxy login intercepts HTTPS, let the "
                         "appliance through; else " + SOURCE_NEXT_STEP) from exc


def _validated(document: object, schema: str, what: str, url: str) -> dict:
    try:
        validate(document, schema, name=what, source=url)
    except DocumentInvalid as exc:
        raise FetchError(str(exc), "release-source", SOURCE_NEXT_STEP) from exc
    return document


class Registry:
    """One registry over the session setup chose (its proxy and CA), with the pull token
    each repository's challenge gave."""

    def __init__(self, session: requests.Session, host: str):
        self.session, self.host, self.base = session, host, f"https://{host}"
        self.tokens: dict[str, str] = {}
        self.answered: dict[tuple[str, str], requests.Response] = {}

    def _manifest_url(self, repository: str, ref: str) -> str:
        return f"{self.base}/v2/{repository}/manifests/{ref}"

    def _headers(self, repository: str, accept: str | None = None) -> dict:
        headers = {"Accept": accept} if accept else {}
        if repository in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[repository]}"
        return headers

    def authorize(self, repository: str, ref: str, timeout: float) -> str:
        """Ask for the manifest anonymously and follow the challenge to a pull token; what
        happened, for the log."""
        url = self._manifest_url(repository, ref)
        response = fetch(self.session, url, timeout, {"Accept": ACCEPT},
                         limit=MAX_MANIFEST_BYTES)
        if response.status_code != 401:  # a registry that needs no token answers at once
            self.answered[(repository, ref)] = response
            return f"{self.host} answered without asking for a token ({response.status_code})"
        realm, params = self._challenge(response, url)
        params.setdefault("scope", f"repository:{repository}:pull")
        self.tokens[repository] = self._token(realm, params, timeout)
        return f"pull token from {_host(realm)} for {params['scope']}"

    def _challenge(self, response: requests.Response, url: str) -> tuple[str, dict]:
        header = response.headers.get("WWW-Authenticate", "")
        scheme, _, rest = header.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        realm = params.pop("realm", "")
        if scheme.lower() != "bearer" or not _is_http_url(realm):
            shown = f"WWW-Authenticate: {header}" if header else "no WWW-Authenticate header"
            raise FetchError(f"{url} answered 401 without a usable token challenge ({shown}): "
                             f"{self.host} does not offer anonymous pull", "release-source",
                             "use a registry or mirror that allows anonymous pull (ghcr.io "
                             "does), or correct the release source override")
        return realm, params

    def _token(self, realm: str, params: dict, timeout: float) -> str:
        response = fetch(self.session, realm, timeout, limit=MAX_MANIFEST_BYTES, params=params)
        what = f"the token service {_host(realm)} ({params['scope']})"
        if response.status_code != 200:
            raise FetchError(f"{what} answered {response.status_code}",
                             "release-source" if response.status_code < 500 else "network",
                             "check that the repository exists and is public, and the release "
                             "source override")
        document = _json(response, what, realm, MAX_MANIFEST_BYTES)
        token = (document.get("token") or document.get("access_token")
                 if isinstance(document, dict) else None)
        if not isinstance(token, str) or not token:
            raise FetchError(f"{what} answered without a token", "release-source",
                             SOURCE_NEXT_STEP)
        return token

    def tags(self, repository: str, timeout: float) -> list[str]:
        """Every tag of `repository` (GET /v2/<repository>/tags/list, its pages followed),
        with the pull token its challenge asks for."""
        url, names = f"{self.base}/v2/{repository}/tags/list?n={TAGS_PER_PAGE}", []
        what = f"the tag list of {self.host}/{repository}"
        for _ in range(MAX_TAG_PAGES):
            response = fetch(self.session, url, timeout, self._headers(repository),
                             limit=MAX_MANIFEST_BYTES)
            if response.status_code == 401 and repository not in self.tokens:
                realm, params = self._challenge(response, url)
                params.setdefault("scope", f"repository:{repository}:pull")
                self.tokens[repository] = self._token(realm, params, timeout)
                continue
            self._expect_200(response, what, url)
            document = _json(response, what, url, MAX_MANIFEST_BYTES)
            # An empty repository's list may have no tags or null; a document that is not a
            # mapping is no tag list at all.
            page = (document.get("tags") or []) if isinstance(document, dict) else None
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise FetchError(f"{what} at {url} is not a list of tags", "release-source",
                                 SOURCE_NEXT_STEP)
            names += page
            following = response.links.get("next", {}).get("url")
            if not following:
                return names
            url = urljoin(url, following)
        raise FetchError(f"{what} has more than {MAX_TAG_PAGES} pages", "release-source",
                         SOURCE_NEXT_STEP)

    def manifest(self, repository: str, ref: str, timeout: float, what: str
                 ) -> tuple[dict, str]:
        """The manifest at `ref` (a tag or a digest), validated, and its digest."""
        url = self._manifest_url(repository, ref)
        response = self.answered.pop((repository, ref), None) or fetch(
            self.session, url, timeout, self._headers(repository, ACCEPT),
            limit=MAX_MANIFEST_BYTES)
        self._expect_200(response, what, url)
        document = _json(response, what, url, MAX_MANIFEST_BYTES)
        digest = sha256(response.content)
        claimed = response.headers.get("Docker-Content-Digest", digest)
        if digest != claimed or (ref.startswith("sha256:") and digest != ref):
            raise FetchError(f"{what} at {url} hashes to {digest}, but the registry named "
                             f"{claimed if digest != claimed else ref}: it was altered on the way "
                             "(a proxy?) or the registry is broken", "release-source",
                             "retry; if it persists, send the support bundle")
        if isinstance(document, dict) and document.get("mediaType") == OCI_INDEX:
            raise FetchError(f"{what} at {url} is an image index, not an artifact manifest",
                             "release-source", SOURCE_NEXT_STEP)
        return _validated(document, "oci-image-manifest.schema.json", what, url), digest

    def platform_manifest(self, repository: str, ref: str, timeout: float, what: str,
                          index_allowed: bool = True) -> dict:
        """An image's manifest for linux/amd64, through its index when `ref` names one, as
        containerd pulls it."""
        url = self._manifest_url(repository, ref)
        response = self.answered.pop((repository, ref), None) or fetch(
            self.session, url, timeout, self._headers(repository, IMAGE_ACCEPT),
            limit=MAX_MANIFEST_BYTES)
        self._expect_200(response, what, url)
        document = _json(response, what, url, MAX_MANIFEST_BYTES)
        if not isinstance(document, dict):
            raise FetchError(f"{what} at {url} is not a manifest", "release-source")
        if document.get("mediaType") in (OCI_INDEX, DOCKER_LIST) and index_allowed:
            digest = next((entry.get("digest") for entry in document.get("manifests") or []
                           if isinstance(entry, dict) and isinstance(entry.get("platform"), dict)
                           and PLATFORM.items() <= entry["platform"].items()), None)
            if not isinstance(digest, str):
                raise FetchError(f"{what} at {url} has no linux/amd64 image", "release-source")
            return self.platform_manifest(repository, digest, timeout, what, False)
        if not isinstance(document.get("config"), dict) or not isinstance(
                document["config"].get("digest"), str):
            raise FetchError(f"{what} at {url} is not an image manifest", "release-source")
        return document

    def _expect_200(self, response: requests.Response, what: str, url: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status == 404:
            raise NotFound(f"{what} not found: {url} answered 404", "release-source",
                             SOURCE_NEXT_STEP)
        if status in (401, 403):
            raise FetchError(f"{url} refused the pull token {self.host} issued ({status})",
                             "release-source", "check that the repository is public and the "
                             "release source override")
        raise FetchError(f"{what} at {url} answered {status}",
                         "release-source" if status < 500 else "network",
                         "retry later; if it persists, check the registry's status")

    def blob(self, repository: str, digest: str, timeout: float, what: str,
             limit: int) -> tuple[bytes, str]:
        """The blob, verified against `digest`, and the host that served it (the registry
        redirects to its blob host; the token is never sent there)."""
        url = f"{self.base}/v2/{repository}/blobs/{digest}"
        headers = self._headers(repository)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._blob_hop(url, headers, timeout, what, limit)
            if response.status_code not in (301, 302, 303, 307, 308):
                break
            target = urljoin(url, response.headers.get("Location", ""))
            if _host(target) != _host(url):
                headers = {}
            url = target
        else:
            raise FetchError(f"{what}: more than {MAX_REDIRECTS} redirects from {self.host}",
                             "release-source", SOURCE_NEXT_STEP)
        self._expect_200(response, what, url)
        data = response.content
        if len(data) > limit:
            raise FetchError(f"{what} at {url} is larger than {limit} bytes", "release-source",
                             SOURCE_NEXT_STEP)
        if sha256(data) != digest:
            raise FetchError(f"{what} from {_host(url)} hashes to {sha256(data)}, not {digest} "
                             "as the manifest names it: it was altered on the way (a proxy?) "
                             "or the registry is broken", "release-source",
                             "retry; if it persists, send the support bundle")
        return data, _host(url)

    def _blob_hop(self, url: str, headers: dict, timeout: float, what: str,
                  limit: int) -> requests.Response:
        try:
            return fetch(self.session, url, timeout, headers, redirects=False, limit=limit)
        except NotRun:
            raise
        except FetchError as exc:
            if _host(url) == self.host:
                raise
            host = urlsplit(url).hostname
            raise FetchError(f"{what}: {self.host} redirected to its blob host {host}, which "
                             f"failed: {exc}", "network", f"allow HTTPS to {host} through the "
                             "firewall or proxy", exc.cause, exc.host, exc.url) from exc


def normalized(manifest: dict, what: str) -> dict:
    """The release manifest in the current shape (valuesProfile and images at the top, the
    defaults filled in), or FetchError naming the field that is missing."""
    app = manifest.get("app") if isinstance(manifest.get("app"), dict) else {}
    images = manifest.get("images", app.get("images"))
    if not isinstance(images, dict) or "algaCore" not in images:
        raise FetchError(f"{what} is invalid at /images/algaCore (or /app/images/algaCore): "
                         "required", "release-source", SOURCE_NEXT_STEP)
    config = manifest["config"]
    return {**manifest, "images": {name: images[name] for name in alga.IMAGES if name in images},
            "valuesProfile": manifest.get("valuesProfile",
                                          app.get("valuesProfile", DEFAULT_PROFILE)),
            "config": {"repository": config["repository"],
                       "tag": config.get("tag", manifest["version"]), "digest": config["digest"]},
            "charts": manifest.get("charts", {})}


def profile_values(manifest: dict, what: str) -> dict:
    """Each Helm release's values, parsed from the manifest's profileValues."""
    inline, profile, values = manifest.get("profileValues", {}), manifest["valuesProfile"], {}
    for release in alga.HELM_RELEASES:
        key = f"{release}.{profile}.yaml"
        if key not in inline:
            raise FetchError(f"{what} is invalid at /profileValues/{key}: required (the "
                             f"{profile} values of {release})", "release-source", SOURCE_NEXT_STEP)
        try:
            parsed = yaml.safe_load(inline[key]) or {}
        except yaml.YAMLError as exc:
            raise FetchError(f"{what} is invalid at /profileValues/{key}: not YAML ({exc})",
                             "release-source", SOURCE_NEXT_STEP) from exc
        if not isinstance(parsed, dict):
            raise FetchError(f"{what} is invalid at /profileValues/{key}: not a mapping of "
                             "values", "release-source", SOURCE_NEXT_STEP)
        values[release] = parsed
    return values


def split_repository(text: str) -> tuple[str, str]:
    """`ghcr.io/nine-minds/alga-appliance-config` → registry host, repository."""
    registry, _, repository = text.partition("/")
    return registry, repository


def _after(done: bool, step: str) -> None:
    """Steps run in order; one whose predecessor failed is not run."""
    if not done:
        raise NotRun(f"not run: {step} did not succeed")


@dataclass
class Resolution:
    """One resolution of a channel (or the pinned tag or digest), step by step: preflight
    runs the steps as checks, the release phase and updates run them all."""

    session: requests.Session
    reference: Reference
    channel: str
    kind: str = "oci"
    registry: Registry = field(init=False)
    authorized: bool = False
    artifact: dict | None = None  # the release artifact's manifest
    manifest_digest: str | None = None
    release: dict | None = None  # the normalized release manifest
    blob_host: str | None = None

    def __post_init__(self):
        self.registry = Registry(self.session, self.reference.registry)

    @property
    def ref(self) -> str:
        return self.reference.pin or self.channel

    @property
    def steps(self) -> tuple:
        return (("release.token", self.token), ("release.manifest", self.manifest),
                ("release.config", self.config), ("release.bundle", self.bundle))

    def describe(self) -> str:
        return f"{self.reference}:{self.ref}" if not self.reference.digest \
            else f"{self.reference}@{self.ref}"

    def token(self, timeout: float) -> str:
        note = self.registry.authorize(self.reference.repository, self.ref, timeout)
        self.authorized = True
        return note

    def manifest(self, timeout: float) -> str:
        _after(self.authorized, "release.token")
        self.artifact, self.manifest_digest = self.registry.manifest(
            self.reference.repository, self.ref, timeout, f"the release artifact {self.describe()}")
        config_type = self.artifact["config"]["mediaType"]
        if config_type != RELEASE_CONFIG_TYPE:
            raise FetchError(f"{self.describe()} is not an Alga release artifact: its config is "
                             f"{config_type}, not {RELEASE_CONFIG_TYPE}", "release-source",
                             SOURCE_NEXT_STEP)
        return f"{self.describe()} → {self.manifest_digest}"

    def config(self, timeout: float) -> str:
        _after(self.artifact is not None, "release.manifest")
        digest = self.artifact["config"]["digest"]
        what = f"the release manifest (config blob {digest[:19]}…)"
        data, self.blob_host = self.registry.blob(self.reference.repository, digest, timeout,
                                                  what, MAX_CONFIG_BYTES)
        url = f"{self.describe()} config blob {digest}"
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise FetchError(f"{what} from {self.blob_host} is not JSON ({exc})",
                             "release-source", SOURCE_NEXT_STEP) from exc
        what = f"release manifest {self.describe()}"
        manifest = _validated(document, "oci-release-manifest.schema.json", what, url)
        self.release = normalized(manifest, what)
        profile_values(self.release, what)  # fails here, before the host changes
        return (f"release {self.release['version']} (algaCore {self.release['images']['algaCore']}"
                f", {self.release['valuesProfile']}), served by {self.blob_host}")

    def bundle(self, timeout: float) -> str:
        _after(self.release is not None, "release.config")
        config = self.release["config"]
        host, repository = split_repository(config["repository"])
        registry = self.registry if host == self.registry.host else Registry(self.session, host)
        what = (f"the config bundle {config['repository']}@{config['digest']} that release "
                f"{self.release['version']} pins")
        registry.authorize(repository, config["digest"], timeout)
        try:
            bundle, _ = registry.manifest(repository, config["digest"], timeout, what)
        except NotFound as exc:
            raise FetchError(f"{what} is gone (404): it was withdrawn", "release-source",
                             "choose another channel, or wait for Alga to publish a fixed "
                             "release") from exc
        if bundle["config"]["mediaType"] != FLUX_CONFIG_TYPE:
            raise FetchError(f"{what} is not a Flux config bundle: its config is "
                             f"{bundle['config']['mediaType']}", "release-source",
                             SOURCE_NEXT_STEP)
        return f"config bundle {config['repository']}@{config['digest'][:19]}… exists"

    def unknown_fields(self) -> list[str]:
        return sorted(set(self.release or {}) - set(KNOWN_FIELDS))

    def selection(self, at: str) -> dict:
        release = self.release
        chosen = {"source": "oci", "channel": self.channel, "release_version": release["version"],
                  "app_version": release["version"], "values_profile": release["valuesProfile"],
                  "images": release["images"], "selected_at": at,
                  "registry": self.reference.registry, "repository": self.reference.repository,
                  "manifest_digest": self.manifest_digest, "config": release["config"],
                  "charts": release["charts"]}
        return chosen | ({"pin": self.reference.pin} if self.reference.pin else {})

    def profile_values(self, timeout: float) -> dict:
        return profile_values(self.release, f"release manifest {self.describe()}")
