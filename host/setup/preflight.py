"""Preflight: everything setup needs from the network and the host, checked before the
host changes.

Checks are data (id, what it tests, timeout, the failure category, remediation) in the
style of troubleshoot's analyzers; the report is one schema-validated document that the
web UI, the console and the support bundle all render. Any fail blocks the chain; a
warn does not.
"""

import email.utils
import functools
import pwd
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from host.core import hostcmd, paths, pins, state
from host.net import dnsquery, https, ports, resolvers
from host.net.endpoints import Endpoints
from host.releases import oci_source, source

CLOCK_WARN_SECONDS = 60
CLOCK_FAIL_SECONDS = 300
GIB = 1 << 30
DISK_MINIMUMS = (  # path, fail below, warn below
    ("/var/lib/rancher", 15 * GIB, 40 * GIB),
    ("/var/lib/alga-appliance", GIB // 10, GIB),
)
PORTS = ((6443, "k3s"), (10250, "k3s"), (paths.WEB_PORT, paths.SERVICE_USER),
         (paths.WEB_TLS_PORT, paths.SERVICE_USER))


# Root causes, the most fundamental first: the network's (host/net/https.py), then what
# only a check can find. The report groups failed checks by cause and shows the first.
CAUSES = (*https.CAUSES[:3], "clock", *https.CAUSES[3:], "release", "disk", "ports")
# A request that failed for one of these reasons will fail again for that host (or, with
# no host named, every host): later checks that need it are not run.
BLOCKING_CAUSES = ("no-route", "proxy", "dns", "tls")


class CheckFailed(Exception):
    def __init__(self, message: str, category: str | None = None, status: str = "fail",
                 remediation: str | None = None,  # when the cause suggests its own
                 cause: str | None = None, host: str | None = None):
        self.category, self.status, self.remediation = category, status, remediation
        self.cause, self.host = cause, host  # a name (DNS), or a host:port; None: any host
        super().__init__(message)

    @classmethod
    def of(cls, exc: https.FetchError) -> "CheckFailed":
        host = exc.host
        if host is not None and exc.cause != "dns" and exc.url:  # that port, not the name
            host = urlsplit(exc.url).netloc
        return cls(str(exc), exc.category, remediation=exc.next_step, cause=exc.cause,
                   host=host)


class GuardedSession(requests.Session):
    """A session that does not send what is sure to fail: a request to a host an earlier
    check could not reach (or to any host once the route or the proxy failed) raises
    https.NotRun instead."""

    def __init__(self):
        super().__init__()
        self.blocked: dict[str, str] = {}  # a name, a host:port, or "*" (any) → why

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        for key in (parts.netloc, parts.hostname, "*"):
            if key in self.blocked:
                raise https.NotRun(f"not run: {self.blocked[key]}")
        return super().request(method, url, *args, **kwargs)


@dataclass
class Context:
    """What the checks share: inputs, endpoints, one HTTP session, and results so far."""

    inputs: dict
    endpoints: Endpoints
    root: Path
    session: GuardedSession
    resolution: source.Resolution
    server_dates: list[float] = field(default_factory=list)
    silent_resolvers: str = ""  # why later DNS checks are not run: no resolver answered

    def note_date(self, response: requests.Response) -> None:
        if "Date" in response.headers:
            parsed = email.utils.parsedate_to_datetime(response.headers["Date"])
            self.server_dates.append(parsed.timestamp())

    def block(self, check_id: str, failure: CheckFailed) -> None:
        """Later requests to the host `failure` could not reach are not run."""
        if failure.cause in BLOCKING_CAUSES:
            key = failure.host or "*"
            found = (f"found that {key} does not resolve" if failure.cause == "dns" else
                     f"could not reach {'any host' if key == '*' else key}")
            self.session.blocked.setdefault(key, f"{check_id} {found}")


@dataclass(frozen=True)
class Check:
    id: str
    description: str
    category: str  # the failure category when it fails for a reason it does not name
    timeout: float
    remediation: str
    # Returns the pass message, or raises CheckFailed. Checks with arguments are partials of
    # module functions, not closures made at import: a closure keeps the code it was made
    # with, out of reach of mutation testing's switch at each call (ci/bench/mutation.sh).
    test: Callable[[Context, float], str]
    cause: str = "http"  # the root cause when a failure does not name its own


# --- DNS -------------------------------------------------------------------------------


DNS_NEXT_STEP = {"system": "check the resolvers the network gives this machine and that "
                           "outbound DNS (port 53) is allowed, or choose custom DNS",
                 "custom": "check that the custom DNS servers answer for public names and "
                           "that outbound DNS (port 53) to them is allowed"}
NO_ROUTE_NEXT_STEP = ("check the network: `ip route` must show a default route, and the "
                      "cable or virtual network must be connected")


def check_resolves(name: str, ctx: Context, timeout: float) -> str:
    if ctx.silent_resolvers:  # asking again would only wait out the same timeouts
        raise https.NotRun(f"not run: {ctx.silent_resolvers}")
    servers = resolvers.for_setup(ctx.inputs, ctx.root)
    try:
        server, found = resolvers.resolve(name, servers, timeout)
    except dnsquery.DnsError as exc:
        if not exc.answered:
            ctx.silent_resolvers = f"dns.{name} found that no DNS server answers"
        if ctx.inputs["proxy"] is not None:  # the proxy resolves it; we need not
            raise CheckFailed(f"{name} does not resolve here ({exc}); requests go "
                              "through the proxy, which resolves names itself",
                              status="warn", remediation="nothing to do if the checks "
                              "through the proxy pass", cause="dns") from exc
        if exc.no_route:
            raise CheckFailed(f"cannot reach the DNS servers ({', '.join(servers)}): "
                              "the network is unreachable", "dns", cause="no-route",
                              remediation=NO_ROUTE_NEXT_STEP) from exc
        raise CheckFailed(f"{name} does not resolve: {exc}", "dns", cause="dns",
                          host=name,
                          remediation=DNS_NEXT_STEP[ctx.inputs["dns"]["mode"]]) from exc
    return f"{name} resolves to {', '.join(found)} (via {server})"


def check_resolver_stub(ctx: Context, timeout: float) -> str:
    servers = resolvers.for_setup(ctx.inputs, ctx.root)
    if servers == [resolvers.RESOLVED_STUB]:
        raise CheckFailed("the only resolver is the systemd-resolved stub 127.0.0.53; k3s "
                          "cannot use it and will be given the upstream servers", status="warn")
    return f"resolvers: {', '.join(servers)}"


# --- HTTPS -----------------------------------------------------------------------------


def _fetch(ctx: Context, url: str, timeout: float) -> requests.Response:
    response = https.fetch(ctx.session, url, timeout)
    ctx.note_date(response)
    return response


def check_proxy(ctx: Context, timeout: float) -> str:
    proxy = ctx.inputs["proxy"]
    if proxy is None:
        return "no proxy configured"
    # The endpoints are HTTPS (the schema says so): a proxy refusing the tunnel, 407 included,
    # fails the request itself, and https.explain names why.
    _fetch(ctx, ctx.endpoints.registry_probe(), timeout)
    return f"{ctx.endpoints.registry_probe()} answered through the proxy"


def release_step(check_id: str, ctx: Context, timeout: float) -> str:
    """The release source's step `check_id`, run as a check."""
    return dict(ctx.resolution.steps)[check_id](timeout)


def check_pull(what: str, base_of: Callable[[Endpoints], str], image: str, ctx: Context,
               timeout: float) -> str:
    """Pull `image` as containerd would, short of its layers: the token challenge, the
    manifest (through its index) and the config blob, which the registry redirects to its
    blob host."""
    registry = oci_source.Registry(ctx.session, urlsplit(base_of(ctx.endpoints)).netloc)
    repository, _, tag = image.rpartition(":")
    try:
        registry.authorize(repository, tag, timeout)
        manifest = registry.platform_manifest(repository, tag, timeout, what)
        _, blob_host = registry.blob(repository, manifest["config"]["digest"], timeout,
                                     f"{what}'s config", oci_source.MAX_CONFIG_BYTES)
    except https.NotRun:
        raise
    except https.FetchError as exc:  # the registry's answers judged as the network's
        failed = CheckFailed.of(exc)
        failed.category, failed.cause = "network", exc.cause or "http"
        raise failed from exc
    return f"{what} pulls from {registry.host} (its config from {blob_host})"


def check_download(what: str, url_of: Callable[[Endpoints], str], ctx: Context,
                   timeout: float) -> str:
    url = url_of(ctx.endpoints)
    response = _fetch(ctx, url, timeout)
    if response.status_code != 200 or https.html_page(response):
        raise https.unexpected_answer(response, what)
    served_by = urlsplit(response.url).netloc  # GitHub redirects to its asset host
    via = f", from {served_by}" if served_by != urlsplit(url).netloc else ""
    return f"{what} is downloadable ({len(response.content)} bytes{via})"


def check_clock(ctx: Context, timeout: float) -> str:
    """This machine's time against the `Date` of the servers that answered, and whether NTP
    keeps it: TLS certificates and registry tokens fail when it is minutes off."""
    synced = hostcmd.ntp_synchronized()
    ntp = {True: "NTP keeps it synchronized", False: "NTP has not synchronized it",
           None: "timedatectl cannot say whether NTP keeps it"}[synced]
    if not ctx.server_dates:
        if synced:
            return f"no server answered to compare with; {ntp}"
        raise CheckFailed(f"no server answered, so the clock could not be compared; {ntp}",
                          status="warn")
    skew = abs(time.time() - ctx.server_dates[-1])
    message = f"the clock is {skew:.0f} s off the servers' time; {ntp}"
    if skew > CLOCK_FAIL_SECONDS:
        raise CheckFailed(message + ": TLS certificates and tokens will be rejected",
                          "network", cause="clock")
    if skew > CLOCK_WARN_SECONDS or synced is False:
        raise CheckFailed(message, status="warn", cause="clock")
    return message


def check_disk(path: str, fail_below: int, warn_below: int, ctx: Context,
               timeout: float) -> str:
    target = paths.on_host(path, ctx.root)
    while not target.exists():  # not created yet: measure the file system it will use
        target = target.parent
    free = shutil.disk_usage(target).free
    message = f"{free / GIB:.1f} GiB free for {path}"
    if free < fail_below:
        raise CheckFailed(f"{message}; at least {fail_below / GIB:.1f} GiB is needed",
                          "storage")
    if free < warn_below:
        raise CheckFailed(f"{message}; {warn_below / GIB:.0f} GiB is recommended",
                          status="warn")
    return message


def _held_by(holder: ports.Holder, owner: str) -> bool:
    """Whether `owner` (a user or a command) holds the port. Our own web service runs as
    the service user, which the socket table shows even when its /proc is hidden."""
    try:
        if holder.uid == pwd.getpwnam(owner).pw_uid:
            return True
    except KeyError:
        pass
    # The program, not anything on its command line (a path may mention "k3s").
    return holder.command is not None and Path(holder.command.split()[0]).name == owner


def check_ports(ctx: Context, timeout: float) -> str:
    busy = []
    for port, owner in PORTS:
        holder = ports.holder(port)
        if holder is not None and not _held_by(holder, owner):
            who = holder.command or f"uid {holder.uid}"
            busy.append(f"{port} (held by {who})")
    if busy:
        raise CheckFailed(f"ports in use: {', '.join(busy)}", "network")
    return f"ports {', '.join(str(p) for p, _ in PORTS)} are free or held by their owners"


OVERRIDE = ("check the release source override (support: overrides.release_source in setup, "
            "or release_source in endpoints.json)")
# The release source's steps as checks, by kind of source: id, what it tests, remediation.
RELEASE_CHECKS = {
    "oci": (
        ("release.token", "the registry issues an anonymous pull token",
         f"allow HTTPS to the registry (ghcr.io) and the token service it names; {OVERRIDE}"),
        ("release.manifest", "the channel's release artifact exists",
         f"choose another channel, or {OVERRIDE}"),
        ("release.config", "the release manifest downloads from the blob host, matches its "
         "digest and validates", "allow HTTPS to the registry's blob host "
         "(pkg-containers.githubusercontent.com for ghcr.io); if the manifest is invalid, "
         "choose another channel"),
        ("release.bundle", "the Flux config bundle the release pins exists",
         "choose another channel, or wait for Alga to publish a fixed release"),
    ),
    "git": (
        ("release.channel", "the channel file names a release",
         f"check the channel and the branch override, or choose another channel; {OVERRIDE}"),
        ("release.manifest", "the release manifest exists on the same ref",
         "the channel points at a release that is not published on this ref: choose another "
         "channel or branch override, or wait for the release"),
    ),
}


def checks(endpoints: Endpoints, kind: str) -> tuple[Check, ...]:
    """Every check for a release source of `kind`, in the order they run."""
    return (*(Check(f"dns.{name}", f"{name} resolves", "dns", 3.0, DNS_NEXT_STEP["system"],
                    functools.partial(check_resolves, name), "dns")
              for name in endpoints.dns_names),
            *NETWORK_CHECKS,
            *(Check(check_id, description, "release-source", 10.0, remediation,
                    functools.partial(release_step, check_id), "release")
              for check_id, description, remediation in RELEASE_CHECKS[kind]),
            *HOST_CHECKS)


GITHUB_DOWNLOADS = ("allow HTTPS to github.com and the release-asset host its downloads "
                    "redirect to (release-assets.githubusercontent.com; older releases "
                    "objects.githubusercontent.com)")
NETWORK_CHECKS: tuple[Check, ...] = (
    Check("dns.resolvers", "resolvers suit k3s", "dns", 1.0,
          "nothing to do: k3s gets its own resolv.conf", check_resolver_stub, "dns"),
    Check("proxy", "the proxy forwards HTTPS", "network", 10.0,
          "check the proxy URL, its credentials, and that it allows CONNECT to port 443",
          check_proxy, "proxy"),
)
HOST_CHECKS: tuple[Check, ...] = (
    Check("ghcr", "GHCR serves Flux's images", "network", 10.0,
          "allow HTTPS to ghcr.io and its blob host pkg-containers.githubusercontent.com "
          "through the firewall or proxy",
          functools.partial(check_pull, f"Flux's {pins.FLUX_SOURCE_CONTROLLER_IMAGE}",
                            lambda site: site.ghcr_base, pins.FLUX_SOURCE_CONTROLLER_IMAGE)),
    Check("dockerhub", "Docker Hub serves k3s's system images", "network", 10.0,
          "allow HTTPS to registry-1.docker.io, auth.docker.io and "
          "production.cloudflare.docker.com through the firewall or proxy, or configure a "
          "registry mirror for k3s",
          functools.partial(check_pull, f"k3s's {pins.K3S_PAUSE_IMAGE}",
                            lambda site: site.dockerhub_base, pins.K3S_PAUSE_IMAGE)),
    Check("k3s.release", f"k3s {pins.K3S_VERSION} checksums are downloadable", "network", 15.0,
          GITHUB_DOWNLOADS,
          functools.partial(check_download, "the k3s checksum file", Endpoints.k3s_checksums)),
    Check("flux.release", f"Flux {pins.FLUX_VERSION} install manifest is downloadable",
          "network", 15.0, GITHUB_DOWNLOADS,
          functools.partial(check_download, "the Flux install manifest",
                            Endpoints.flux_install_manifest)),
    Check("clock", "the clock is close to the servers' time", "network", 1.0,
          "enable NTP (timedatectl set-ntp true) or set the clock", check_clock, "clock"),
    *(Check(f"disk.{Path(path).name}", f"free space for {path}", "storage", 1.0,
            f"grow the file system holding {path}",
            functools.partial(check_disk, path, fail, warn), "disk")
      for path, fail, warn in DISK_MINIMUMS),
    Check("ports", "ports 6443, 10250, 8080 and 8443 are free", "network", 1.0,
          "stop whatever holds the ports (see `ss -ltnp`)", check_ports, "ports"),
)


@dataclass(frozen=True)
class Failure:
    check_id: str
    category: str
    message: str
    remediation: str


@dataclass(frozen=True)
class Result:
    report: dict
    failure: Failure | None  # the first failed check of the root cause
    resolution: source.Resolution  # how far the release source's steps got
    selection: dict | None  # the selected-release document, when every step succeeded


def _run_check(ctx: Context, check: Check) -> tuple[dict, Failure | None]:
    started = time.monotonic()
    try:
        message = check.test(ctx, check.timeout)
        found = None
    except https.NotRun as exc:
        found = CheckFailed(str(exc), status="not-run")
    except https.FetchError as exc:
        found = CheckFailed.of(exc)
    except CheckFailed as exc:
        found = exc
    result = {"id": check.id, "status": "pass", "message": "", "remediation": ""}
    failure = None
    if found is None:
        result["message"] = message
    elif found.status == "not-run":  # no fix of its own: the earlier failure's applies
        result.update(status="not-run", message=str(found))
    else:
        remediation = found.remediation or check.remediation
        if found.cause == "dns" and found.status == "fail":  # fits the DNS the admin chose
            remediation = DNS_NEXT_STEP[ctx.inputs["dns"]["mode"]]
        result.update(status=found.status, message=str(found), remediation=remediation,
                      cause=found.cause or check.cause)
        if found.status == "fail":
            ctx.block(check.id, found)
            failure = Failure(check.id, found.category or check.category, str(found),
                              remediation)
    result["duration_ms"] = int((time.monotonic() - started) * 1000)
    return result, failure


def root_causes(results: list[dict]) -> list[dict]:
    """Failed checks grouped by root cause, the most fundamental first: each group's
    summary and remediation are its first check's, said once."""
    groups: dict[str, dict] = {}
    for result in results:
        if result["status"] == "fail":
            group = groups.setdefault(result["cause"], {
                "cause": result["cause"], "summary": result["message"],
                "remediation": result["remediation"], "checks": []})
            group["checks"].append(result["id"])
    return sorted(groups.values(), key=lambda group: CAUSES.index(group["cause"]))


def run_checks(inputs: dict, endpoints: Endpoints, root: Path, *,
               only: tuple[str, ...] = ("",), stop_at_first_fail: bool = False,
               write_report: bool = True, log: Callable[[str], None] = lambda line: None
               ) -> Result:
    """Run the checks whose ids start with one of `only` (default: every check), in order,
    each result logged as it comes; the report is written unless `write_report` is off."""
    session = https.session(inputs, endpoints, GuardedSession)
    resolution = source.resolution(inputs, endpoints, root, session, inputs["channel"])
    ctx = Context(inputs, endpoints, root, session, resolution)
    results, failures = [], {}
    with resolvers.resolving_through(resolvers.custom(inputs)):
        for check in (c for c in checks(endpoints, resolution.kind) if c.id.startswith(only)):
            result, failure = _run_check(ctx, check)
            results.append(result)
            log(f"{result['status']:4} {check.id}: {result['message']}")
            if failure:
                failures[check.id] = failure
                if stop_at_first_fail:
                    break
    statuses = {r["status"] for r in results}
    causes = root_causes(results)
    report = {
        "generated_at": state.timestamp(),
        "outcome": "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass",
        "causes": causes,
        "checks": results,
    }
    if write_report:
        state.write(state.PREFLIGHT_REPORT, report, root)
    selection = None
    if resolution.release is not None and not failures:
        selection = resolution.selection(report["generated_at"])
    root_failure = failures[causes[0]["checks"][0]] if causes else None
    return Result(report, root_failure, resolution, selection)
