"""Preflight against real servers: DNS, HTTPS with a test CA, a CONNECT proxy, and a
network namespace for a node that can only reach the proxy. Each scenario must fail
exactly the expected checks, with the right classification."""

import contextlib
import dataclasses
import email.utils
import json
import os
import re
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from support.base import FAKES, ROOT
from support.netlab import (
    ConnectProxy,
    DnsServer,
    HttpsServer,
    NetNamespace,
    Route,
    TestCA,
    free_loopback_address,
)
from support.oci import platform_image
from support.preflight_lab import proxy_inputs, push_pulled_images
from support.releases import (
    CHANNEL,
    CHANNEL_PATH,
    DNS_NAMES,
    FLUX_INSTALL_PATH,
    K3S_SUMS_PATH,
    MANIFEST_PATH,
    github_routes,
)

from host.core import paths, pins, state
from host.net import endpoints
from host.net.endpoints import Endpoints
from host.setup import preflight

DNS_CHECKS = {f"dns.{name}" for name in DNS_NAMES}
HTTPS_CHECKS = {"release.channel", "release.manifest", "ghcr", "k3s.release", "flux.release"}


# What admins read, reviewed like code: every check of each release source, in order, with
# its description, failure category, timeout, remediation and root cause.
OVERRIDE = ("check the release source override (support: overrides.release_source in setup, "
            "or release_source in endpoints.json)")
GITHUB = ("allow HTTPS to github.com and the release-asset host its downloads redirect to "
          "(release-assets.githubusercontent.com; older releases objects.githubusercontent.com)")
FIRST_CHECKS = [
    ("dns.a.test", "a.test resolves", "dns", 3.0, "check the resolvers the network gives this "
     "machine and that outbound DNS (port 53) is allowed, or choose custom DNS", "dns"),
    ("dns.resolvers", "resolvers suit k3s", "dns", 1.0,
     "nothing to do: k3s gets its own resolv.conf", "dns"),
    ("proxy", "the proxy forwards HTTPS", "network", 10.0,
     "check the proxy URL, its credentials, and that it allows CONNECT to port 443", "proxy"),
]
RELEASE_SOURCE_CHECKS = {
    "oci": [
        ("release.token", "the registry issues an anonymous pull token", "release-source", 10.0,
         f"allow HTTPS to the registry (ghcr.io) and the token service it names; {OVERRIDE}",
         "release"),
        ("release.manifest", "the channel's release artifact exists", "release-source", 10.0,
         f"choose another channel, or {OVERRIDE}", "release"),
        ("release.config", "the release manifest downloads from the blob host, matches its "
         "digest and validates", "release-source", 10.0, "allow HTTPS to the registry's blob "
         "host (pkg-containers.githubusercontent.com for ghcr.io); if the manifest is invalid, "
         "choose another channel", "release"),
        ("release.bundle", "the Flux config bundle the release pins exists", "release-source",
         10.0, "choose another channel, or wait for Alga to publish a fixed release", "release"),
    ],
    "git": [
        ("release.channel", "the channel file names a release", "release-source", 10.0,
         f"check the channel and the branch override, or choose another channel; {OVERRIDE}",
         "release"),
        ("release.manifest", "the release manifest exists on the same ref", "release-source",
         10.0, "the channel points at a release that is not published on this ref: choose "
         "another channel or branch override, or wait for the release", "release"),
    ],
}
HOST_CHECKS = [
    ("ghcr", "GHCR serves Flux's images", "network", 10.0, "allow HTTPS to ghcr.io and its blob "
     "host pkg-containers.githubusercontent.com through the firewall or proxy", "http"),
    ("dockerhub", "Docker Hub serves k3s's system images", "network", 10.0, "allow HTTPS to "
     "registry-1.docker.io, auth.docker.io and production.cloudflare.docker.com through the "
     "firewall or proxy, or configure a registry mirror for k3s", "http"),
    ("k3s.release", f"k3s {pins.K3S_VERSION} checksums are downloadable", "network", 15.0,
     GITHUB, "http"),
    ("flux.release", f"Flux {pins.FLUX_VERSION} install manifest is downloadable", "network",
     15.0, GITHUB, "http"),
    ("clock", "the clock is close to the servers' time", "network", 1.0,
     "enable NTP (timedatectl set-ntp true) or set the clock", "clock"),
    ("disk.rancher", "free space for /var/lib/rancher", "storage", 1.0,
     "grow the file system holding /var/lib/rancher", "disk"),
    ("disk.alga-appliance", "free space for /var/lib/alga-appliance", "storage", 1.0,
     "grow the file system holding /var/lib/alga-appliance", "disk"),
    ("ports", "ports 6443, 10250, 8080 and 8443 are free", "network", 1.0,
     "stop whatever holds the ports (see `ss -ltnp`)", "ports"),
]


@pytest.mark.parametrize("kind", ["oci", "git"])
def test_the_checks_are_exactly_these(kind):
    """First in this file: the cheapest test, and the one a changed word fails."""
    found = preflight.checks(Endpoints(dns_names=("a.test",)), kind)
    assert [(c.id, c.description, c.category, c.timeout, c.remediation, c.cause)
            for c in found] == FIRST_CHECKS + RELEASE_SOURCE_CHECKS[kind] + HOST_CHECKS


@pytest.fixture
def lab(preflight_lab):
    """The release-repository lab of support.preflight_lab."""
    return preflight_lab


def test_all_pass_and_the_release_is_selected(lab):
    # A second resolver, which the first answering leaves unasked.
    (lab.root / "etc/resolv.conf").write_text(f"nameserver {lab.dns.address}\n"
                                              "nameserver 127.0.0.9\n")
    failed, failure, checks = lab.run()
    assert failed == set() and failure is None
    assert checks["dns.resolvers"]["message"] == f"resolvers: {lab.dns.address}, 127.0.0.9"
    assert checks["proxy"]["message"] == "no proxy configured"
    assert checks["release.manifest"]["message"] == "release 1.0: app 1.0 from main"
    selected = state.read(state.SELECTED_RELEASE, lab.root)
    assert (selected["release_version"], selected["repo_branch"], selected["source_ref"]) == (
        "1.0", "release/1.0.0", "main")
    # Resolution went through the resolver setup will use, for every name.
    assert {name for name, _ in lab.dns.queries} == set(DNS_NAMES)


def test_custom_dns_mode_resolves_everything_through_the_admins_resolvers(lab):
    names = {**{n: ["127.0.0.1"] for n in DNS_NAMES}, "github.test": ["127.0.0.1"],
             "ghcr.test": ["127.0.0.1"]}
    with DnsServer(free_loopback_address(), names) as custom:
        # The HTTPS endpoints are names only the custom resolver knows.
        lab.configure(dns_mode="custom", resolver=custom.address,
                      github_base=lab.github.url.replace("127.0.0.1", "github.test"),
                      ghcr_base=lab.ghcr.url.replace("127.0.0.1", "ghcr.test"))
        (lab.root / "etc/resolv.conf").write_text("nameserver 127.0.0.53\n")
        failed, _, checks = lab.run()
    assert failed == set(), checks
    assert {"github.test", "ghcr.test"} <= {name for name, _ in custom.queries}
    assert checks["dns.resolvers"]["status"] == "pass"


def test_resolved_stub_alone_is_a_warning(lab):
    stub = DnsServer("127.0.0.53", {n: ["127.0.0.1"] for n in DNS_NAMES})
    try:
        stub.__enter__()
    except OSError as exc:  # a real systemd-resolved on this machine
        pytest.skip(f"127.0.0.53:53 is taken: {exc}")
    try:
        lab.configure(resolver="127.0.0.53")
        failed, _, checks = lab.run()
    finally:
        stub.__exit__(None, None, None)
    assert failed == set() and checks["dns.resolvers"]["status"] == "warn"
    assert checks["dns.resolvers"]["message"] == (
        "the only resolver is the systemd-resolved stub 127.0.0.53; k3s cannot use it and will "
        "be given the upstream servers")


@pytest.mark.parametrize("behaviour", ["servfail", "nxdomain"])
def test_dns_down(lab, behaviour):
    records = {} if behaviour == "nxdomain" else {n: ["127.0.0.1"] for n in DNS_NAMES}
    with DnsServer(free_loopback_address(), records,
                   behaviour="answer" if behaviour == "nxdomain" else behaviour) as broken:
        lab.configure(resolver=broken.address)
        failed, failure, checks = lab.run()
    assert failed == DNS_CHECKS
    assert failure["category"] == "dns"
    assert behaviour.upper() in checks["dns.ghcr.io"]["message"]


def test_a_resolver_that_never_answers_is_given_up_after_the_checks_timeout(lab):
    """Each query waits the check's 3 s; the other names are then not asked."""
    with DnsServer(free_loopback_address(), {}, behaviour="drop") as silent:
        lab.configure(resolver=silent.address)
        _, _, checks = lab.run()
    first, *others = [c for c in checks.values() if c["id"] in DNS_CHECKS]
    assert first["status"] == "fail" and first["message"] == (
        f"{first['id'].removeprefix('dns.')} does not resolve: {silent.address} A: no answer "
        f"from {silent.address} within 3 s; {silent.address} AAAA: no answer from "
        f"{silent.address} within 3 s")
    assert 6000 <= first["duration_ms"] < 20000  # two queries waited out, and not forever
    for check in others:
        assert (check["status"], check["message"]) == (
            "not-run", f"not run: {first['id']} found that no DNS server answers")


def test_a_name_that_does_not_resolve_blocks_only_the_requests_to_it(lab):
    """Custom DNS knows the registry and not GitHub: GitHub's requests are not run, naming the
    DNS check; the registry is checked, and its name's check shows both its addresses."""
    github = lab.github.url.replace("127.0.0.1", "github.test")
    ghcr = lab.ghcr.url.replace("127.0.0.1", "ghcr.test")
    with DnsServer(free_loopback_address(), {"ghcr.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
        lab.configure(dns_mode="custom", resolver=dns.address, github_base=github,
                      ghcr_base=ghcr)
        site = state.read(state.ENDPOINTS, lab.root)
        state.write(state.ENDPOINTS, {**site, "dns_names": ["github.test", "ghcr.test"]},
                    lab.root)
        failed, _, checks = lab.run()
    assert failed == {"dns.github.test"}
    assert checks["dns.ghcr.test"]["message"] == (
        f"ghcr.test resolves to 127.0.0.1, 127.0.0.2 (via {dns.address})")
    for check in ("release.channel", "k3s.release", "flux.release"):
        assert (checks[check]["status"], checks[check]["message"]) == (
            "not-run", "not run: dns.github.test found that github.test does not resolve")
    assert checks["ghcr"]["status"] == checks["dockerhub"]["status"] == "pass"


@pytest.fixture
def docker_hub(lab, registry):
    """A registry of its own as Docker Hub (the real docker-registry behind the token
    challenge: 401 with a Bearer realm, token JSON, blobs redirected 307 to the blob host),
    holding the pause image as a multi-platform index."""
    push_pulled_images(registry)
    lab.configure(dockerhub_base=registry.url)
    registry.requests.reset()
    return registry


def test_docker_hub_is_pulled_from_as_k3s_pulls(lab, docker_hub):
    failed, _, checks = lab.run()
    assert failed == set(), checks
    assert checks["dockerhub"]["message"].startswith(
        f"k3s's {pins.K3S_PAUSE_IMAGE} pulls from {docker_hub.host}")
    assert f"its config from {docker_hub.blob_host}" in checks["dockerhub"]["message"]
    repository, _, tag = pins.K3S_PAUSE_IMAGE.rpartition(":")
    front = [(r.method, r.path.split("?")[0], "Authorization" in r.headers)
             for r in docker_hub.requests.of("registry")]
    # Anonymous first (the challenge), then with the token: the index, the amd64 manifest,
    # and the config blob, which the registry redirects to its blob host.
    assert front[0] == ("GET", f"/v2/{repository}/manifests/{tag}", False)
    assert [path.split("/")[-2] for _, path, authorized in front[1:] if authorized] == [
        "manifests", "manifests", "blobs"]
    assert len(docker_hub.requests.of("token")) == 1
    [blob] = docker_hub.requests.of("blob")
    assert blob.method == "GET" and "Authorization" not in blob.headers


def test_an_image_with_no_linux_amd64_build_is_named_with_the_image(lab, registry):
    repository, _, tag = pins.K3S_PAUSE_IMAGE.rpartition(":")
    index, platforms = platform_image(("linux/arm64",))
    for platform in platforms:
        registry.push(repository, platform)
    registry.push(repository, index, tag)
    lab.configure(dockerhub_base=registry.url)
    failed, failure, checks = lab.run()
    assert failed == {"dockerhub"} and failure["category"] == "network"
    assert (checks["dockerhub"]["message"], checks["dockerhub"]["cause"]) == (
        f"k3s's {pins.K3S_PAUSE_IMAGE} at {registry.url}/v2/{repository}/manifests/{tag} has no "
        "linux/amd64 image", "http")


def test_docker_hub_blob_host_blocked(lab, docker_hub):
    with docker_hub.blob_host_down():
        failed, failure, checks = lab.run()
    assert failed == {"dockerhub"} and failure["category"] == "network"
    host = docker_hub.blob_host.split(":")[0]
    assert f"redirected to its blob host {host}, which failed" in checks["dockerhub"]["message"]
    assert checks["dockerhub"]["cause"] == "no-route"
    assert failure["next_step"] == f"allow HTTPS to {host} through the firewall or proxy"


def test_docker_hub_unreachable_leaves_the_rest(lab):
    lab.configure(dockerhub_base="https://127.0.0.1:1")  # nothing listens there
    failed, failure, _ = lab.run()
    assert failed == {"dockerhub"}
    assert "dockerhub: cannot reach https://127.0.0.1:1/v2/rancher/mirrored-pause/manifests/" \
        "3.6: the connection was refused" in failure["suspected_cause"]
    assert failure["next_step"] == "allow HTTPS to 127.0.0.1 through the firewall"


@pytest.mark.parametrize(("route", "message"), [
    (Route(status=404, body="gone"), "the k3s checksum file at {url} answered 404, expected 200"),
    (Route(body="<html>sign in</html>", headers={"Content-Type": "Text/HTML"}),
     "the k3s checksum file answered an HTML page (Text/HTML) from {url} instead: a captive "
     "portal or web filter is in the way"),
])
def test_a_download_that_is_not_the_file_is_named_exactly(lab, route, message):
    lab.github.routes[K3S_SUMS_PATH] = route
    failed, failure, checks = lab.run()
    assert failed == {"k3s.release"} and failure["category"] == "network"
    url = f"{lab.github.url}/k3s{K3S_SUMS_PATH.removeprefix('/k3s')}"
    assert checks["k3s.release"]["message"] == message.format(url=url)
    assert checks["k3s.release"]["cause"] == "http"


def test_release_downloads_follow_github_redirect_to_the_asset_host(lab):
    lab.dns.records["release-assets.test"] = ["127.0.0.1"]
    lab.configure(dns_mode="custom")  # HTTPS resolves through the lab's DNS server

    def redirect_to(assets: HttpsServer) -> str:
        url = f"{assets.url.replace('127.0.0.1', 'release-assets.test')}{K3S_SUMS_PATH}"
        lab.github.routes[K3S_SUMS_PATH] = Route(status=302, headers={"Location": url})
        return url

    assets = HttpsServer(lab.ca, {K3S_SUMS_PATH: Route(body=f"{'0' * 64}  k3s\n")},
                         hostnames=("release-assets.test",))
    with assets:
        url = redirect_to(assets)
    # The asset host blocked: the failure names it, not github.com.
    failed, failure, checks = lab.run()
    assert failed == {"k3s.release"}
    assert checks["k3s.release"]["message"].startswith(
        f"cannot reach {url}: the connection was refused")
    assert failure["next_step"] == "allow HTTPS to release-assets.test through the firewall"
    with assets:
        redirect_to(assets)
        failed, _, checks = lab.run()
    assert failed == set(), checks
    assert checks["k3s.release"]["message"].endswith(f"from release-assets.test:{assets.port})")


@pytest.mark.parametrize("dns_mode", ["system", "custom"])
def test_the_dns_fix_fits_the_dns_the_admin_chose(lab, dns_mode):
    with DnsServer(free_loopback_address(), {}) as knows_nothing:
        lab.configure(dns_mode=dns_mode, resolver=knows_nothing.address)
        failed, failure, _ = lab.run()
    assert failed == DNS_CHECKS
    report = state.read(state.PREFLIGHT_REPORT, lab.root)
    [root_cause] = report["causes"]
    assert root_cause["cause"] == "dns" and set(root_cause["checks"]) == DNS_CHECKS
    assert root_cause["remediation"] == failure["next_step"] == preflight.DNS_NEXT_STEP[dns_mode]
    # Custom DNS already chosen is never told to choose it.
    assert ("choose custom DNS" in failure["next_step"]) == (dns_mode == "system")


@pytest.mark.parametrize(("dns_mode", "next_step"), [
    ("system", "check the resolvers the network gives this machine and that outbound DNS (port "
               "53) is allowed, or choose custom DNS"),
    ("custom", "check that the custom DNS servers answer for public names and that outbound DNS "
               "(port 53) to them is allowed"),
])
def test_a_redirect_to_a_name_that_does_not_resolve_gets_the_dns_fix(lab, dns_mode, next_step):
    """No DNS check asks for the asset host GitHub redirects to: the download meets the
    unresolvable name itself, and its fix is still the one for the DNS the admin chose."""
    lab.configure(dns_mode=dns_mode)
    url = f"https://release-assets.test:1{K3S_SUMS_PATH}"  # the lab's DNS has no such name
    lab.github.routes[K3S_SUMS_PATH] = Route(status=302, headers={"Location": url})
    failed, failure, checks = lab.run()
    assert failed == {"k3s.release"}
    assert (checks["k3s.release"]["cause"], checks["k3s.release"]["remediation"]) == (
        "dns", next_step)
    assert failure["next_step"] == next_step


def test_failures_are_grouped_by_root_cause_the_most_fundamental_first(lab, monkeypatch):
    """Both downloads fail (http) and the clock is an hour off (clock, which comes first:
    a wrong clock can be why HTTPS fails)."""
    ntp_says(monkeypatch, "yes")
    hour_ahead = email.utils.formatdate(time.time() + 3600, usegmt=True)
    lab.github.routes[K3S_SUMS_PATH] = Route(status=404, body="gone")
    lab.github.routes[FLUX_INSTALL_PATH] = Route(status=404, body="gone",
                                                 headers={"Date": hour_ahead})
    failed, failure, checks = lab.run()
    assert failed == {"k3s.release", "flux.release", "clock"}
    report = state.read(state.PREFLIGHT_REPORT, lab.root)
    assert [(c["cause"], c["checks"]) for c in report["causes"]] == [
        ("clock", ["clock"]), ("http", ["k3s.release", "flux.release"])]
    http = report["causes"][1]
    assert (http["summary"], http["remediation"]) == (
        checks["k3s.release"]["message"], checks["k3s.release"]["remediation"])
    assert failure["suspected_cause"] == f"clock: {checks['clock']['message']}"


def test_each_checks_duration_is_in_milliseconds(lab, monkeypatch):
    """Every reading of the clock a check's duration is taken from is 1.5 s after the last."""
    readings = iter(range(10_000))
    monkeypatch.setattr(preflight, "time", types.SimpleNamespace(
        time=time.time, monotonic=lambda: next(readings) * 1.5))
    _, _, checks = lab.run()
    assert {check["duration_ms"] for check in checks.values()} == {1500}


def test_stopping_at_the_first_failure_runs_nothing_after_it(lab):
    lab.github.routes[K3S_SUMS_PATH] = Route(status=404, body="gone")
    inputs = state.read(state.SETUP_INPUTS, lab.root)
    result = preflight.run_checks(inputs, endpoints.load(lab.root), lab.root,
                                  stop_at_first_fail=True, write_report=False)
    ran = [check["id"] for check in result.report["checks"]]
    assert ran[-2:] == ["dockerhub", "k3s.release"] and result.failure.check_id == "k3s.release"
    assert result.report["outcome"] == "fail" and result.selection is None
    assert result.resolution.release["releaseVersion"] == "1.0"  # resolved, then not selected


def test_the_payloads_release_source_serves_when_the_site_names_none(lab):
    site = state.read(state.ENDPOINTS, lab.root)
    del site["release_source"]
    state.write(state.ENDPOINTS, site, lab.root)
    paths.on_host(paths.CURRENT_DIR, lab.root).mkdir(parents=True)  # the payload's home
    state.write(state.RELEASE_SOURCE, {"release_source": pins.ALGA_REPO_URL}, lab.root)
    failed, _, checks = lab.run()
    assert failed == set()
    assert checks["release.manifest"]["message"].startswith("release 1.0: app ")


def test_github_answers_but_ghcr_is_blocked(lab):
    lab.configure(ghcr_base="https://127.0.0.1:1")  # nothing listens there
    failed, failure, _ = lab.run()
    assert failed == {"ghcr"} and failure["category"] == "network"
    assert failure["suspected_cause"].startswith("ghcr: cannot reach https://127.0.0.1:1/v2/")


@pytest.mark.parametrize(("route", "phrase"), [
    (None, "not found"),
    (Route(body="{not json"), "is not valid JSON"),
    (Route(body={**CHANNEL, "releaseVersion": None, "updatedAt": None}),
     "no release is published on the stable channel"),
])
def test_channel_file_problems(lab, route, phrase):
    if route is None:
        del lab.github.routes[CHANNEL_PATH]
    else:
        lab.github.routes[CHANNEL_PATH] = route
    failed, failure, checks = lab.run()
    assert failed == {"release.channel"}
    assert failure["category"] == "release-source"
    assert phrase in checks["release.channel"]["message"]
    assert checks["release.manifest"]["status"] == "not-run"


def test_manifest_missing_on_the_ref(lab):
    del lab.github.routes[MANIFEST_PATH]
    failed, failure, checks = lab.run()
    assert failed == {"release.manifest"} and failure["category"] == "release-source"
    assert "release manifest 1.0 not found" in checks["release.manifest"]["message"]
    assert state.read(state.SELECTED_RELEASE, lab.root) is None


def test_slow_endpoint_hits_its_timeout(lab, monkeypatch):
    quick = tuple(dataclasses.replace(c, timeout=0.5) if c.id == "ghcr" else c
                  for c in preflight.HOST_CHECKS)
    monkeypatch.setattr(preflight, "HOST_CHECKS", quick)
    repository, _, tag = pins.FLUX_SOURCE_CONTROLLER_IMAGE.rpartition(":")
    slow = {f"/v2/{repository}/manifests/{tag}": Route(status=401, delay=3)}
    with HttpsServer(lab.ca, slow) as ghcr:
        lab.configure(ghcr_base=ghcr.url, dockerhub_base=lab.ghcr.url)
        failed, failure, checks = lab.run()
    assert failed == {"ghcr"} and failure["category"] == "network"
    assert "did not answer within 0.5 s" in checks["ghcr"]["message"]


@pytest.mark.parametrize("role", ["registry", "blob"])
def test_a_registry_whose_manifests_or_blobs_never_come_hits_the_pull_checks_timeout(
        lab, monkeypatch, role):
    """The challenge and the token come at once; then the manifest (or the config blob) takes
    longer than the check's timeout, which bounds each of the pull's requests."""
    quick = tuple(dataclasses.replace(c, timeout=0.5) if c.id in ("ghcr", "dockerhub") else c
                  for c in preflight.HOST_CHECKS)
    monkeypatch.setattr(preflight, "HOST_CHECKS", quick)
    with lab.ghcr.slow(role, 3):
        failed, _, checks = lab.run()
    assert failed == {"ghcr", "dockerhub"}
    for check in ("ghcr", "dockerhub"):
        message = checks[check]["message"]
        assert message.endswith(" did not answer within 0.5 s"), message
        if role == "registry":
            assert re.fullmatch(rf"{lab.ghcr.url}/v2/[a-z/-]+/manifests/\S+ did not answer "
                                r"within 0\.5 s", message), message
        else:
            image = {"ghcr": "Flux's fluxcd/source-controller:v1.7.3",
                     "dockerhub": "k3s's rancher/mirrored-pause:3.6"}[check]
            assert re.fullmatch(rf"{image}'s config: {lab.ghcr.host} redirected to its blob "
                                rf"host 127\.0\.0\.2, which failed: {lab.ghcr.blob_url}/\S+ did "
                                r"not answer within 0\.5 s", message), message


@pytest.mark.parametrize(("check", "path"), [("release.channel", CHANNEL_PATH),
                                           ("release.manifest", MANIFEST_PATH)])
def test_a_slow_release_source_hits_the_release_checks_timeout(lab, monkeypatch, check, path):
    every_check = preflight.checks
    monkeypatch.setattr(preflight, "checks", lambda endpoints, kind: tuple(
        dataclasses.replace(c, timeout=0.5) if c.id == check else c
        for c in every_check(endpoints, kind)))
    lab.github.routes[path] = dataclasses.replace(lab.github.routes[path], delay=3)
    failed, failure, checks = lab.run()
    assert failed == {check} and failure["category"] == "network"
    assert checks[check]["message"] == f"{lab.github.url}{path} did not answer within 0.5 s"
    if check == "release.channel":
        assert checks["release.manifest"]["status"] == "not-run"


def test_a_slow_download_hits_its_timeout(lab, monkeypatch):
    quick = tuple(dataclasses.replace(c, timeout=0.5) if c.id == "k3s.release" else c
                  for c in preflight.HOST_CHECKS)
    monkeypatch.setattr(preflight, "HOST_CHECKS", quick)
    lab.github.routes[K3S_SUMS_PATH] = dataclasses.replace(lab.github.routes[K3S_SUMS_PATH],
                                                           delay=3)
    failed, _, checks = lab.run()
    assert failed == {"k3s.release"}
    assert "did not answer within 0.5 s" in checks["k3s.release"]["message"]


def test_a_proxy_whose_registry_never_answers_hits_the_proxy_checks_timeout(lab, monkeypatch):
    quick = tuple(dataclasses.replace(c, timeout=0.5) if c.id == "proxy" else c
                  for c in preflight.NETWORK_CHECKS)
    monkeypatch.setattr(preflight, "NETWORK_CHECKS", quick)
    with HttpsServer(lab.ca, {"/v2/": Route(status=401, delay=3)}) as ghcr, \
            ConnectProxy() as proxy:
        lab.configure(ghcr_base=ghcr.url, dockerhub_base=lab.ghcr.url,
                      proxy=proxy_inputs(proxy))
        failed, _, checks = lab.run()
    assert "proxy" in failed
    assert "did not answer within 0.5 s" in checks["proxy"]["message"]


@pytest.mark.parametrize(("skew", "ntp", "status"), [
    (0, "yes", "pass"), (0, "no", "warn"), (0, "unknown", "pass"), (120, "yes", "warn"),
    (3600, "yes", "fail"), (3600, "unknown", "fail")])
def test_clock_against_the_servers_date_and_ntp(lab, monkeypatch, skew, ntp, status):
    ntp_says(monkeypatch, ntp)
    server_time = email.utils.formatdate(time.time() + skew, usegmt=True)
    for path in (K3S_SUMS_PATH, FLUX_INSTALL_PATH):
        lab.github.routes[path] = dataclasses.replace(lab.github.routes[path],
                                                      headers={"Date": server_time})
    failed, failure, checks = lab.run()
    assert checks["clock"]["status"] == status, checks["clock"]
    assert failed == ({"clock"} if status == "fail" else set())
    said = {"yes": "NTP keeps it synchronized", "no": "NTP has not synchronized it",
            "unknown": "timedatectl cannot say whether NTP keeps it"}[ntp]
    rejected = ": TLS certificates and tokens will be rejected" if status == "fail" else ""
    assert re.fullmatch(rf"the clock is \d+ s off the servers' time; {said}{rejected}",
                        checks["clock"]["message"]), checks["clock"]["message"]
    assert checks["clock"].get("cause") == (None if status == "pass" else "clock")
    if status == "fail":
        assert failure["category"] == "network" and "enable NTP" in failure["next_step"]
        report = state.read(state.PREFLIGHT_REPORT, lab.root)
        assert [c["cause"] for c in report["causes"]] == ["clock"]


def ntp_says(monkeypatch, ntp: str) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")  # timedatectl's stand-in
    if ntp == "unknown":
        monkeypatch.setenv("FAKE_TIMEDATECTL_FAIL", "1")
    else:
        monkeypatch.setenv("FAKE_NTP_SYNCHRONIZED", ntp)


@pytest.mark.parametrize(("off", "status"), [(60, "pass"), (61, "warn"), (300, "warn"),
                                             (301, "fail")])
def test_the_clocks_limits_are_60_and_300_seconds_and_reaching_one_is_still_within(
        lab, monkeypatch, off, status):
    """The servers' Date is whole seconds; this machine's time is set `off` seconds after."""
    ntp_says(monkeypatch, "yes")
    server_time = int(time.time())
    for path in (K3S_SUMS_PATH, FLUX_INSTALL_PATH):
        lab.github.routes[path] = dataclasses.replace(lab.github.routes[path], headers={
            "Date": email.utils.formatdate(server_time, usegmt=True)})
    monkeypatch.setattr(preflight, "time", types.SimpleNamespace(
        time=lambda: server_time + off, monotonic=time.monotonic))
    _, _, checks = lab.run()
    rejected = ": TLS certificates and tokens will be rejected" if status == "fail" else ""
    assert (checks["clock"]["status"], checks["clock"]["message"]) == (status, (
        f"the clock is {off} s off the servers' time; NTP keeps it synchronized{rejected}"))
    assert state.read(state.PREFLIGHT_REPORT, lab.root)["outcome"] == status  # the worst


@pytest.mark.parametrize(("ntp", "status", "message"), [
    ("yes", "pass", "no server answered to compare with; NTP keeps it synchronized"),
    ("no", "warn", "no server answered, so the clock could not be compared; NTP has not "
                   "synchronized it"),
    ("unknown", "warn", "no server answered, so the clock could not be compared; timedatectl "
                        "cannot say whether NTP keeps it"),
])
def test_a_clock_with_no_server_to_compare_with_says_so(lab, monkeypatch, ntp, status, message):
    ntp_says(monkeypatch, ntp)
    lab.configure(github_base="https://127.0.0.1:1", ghcr_base="https://127.0.0.1:1")
    _, _, checks = lab.run()
    assert (checks["clock"]["status"], checks["clock"]["message"]) == (status, message)


def test_downloads_are_named_with_their_size_and_no_other_host(lab):
    failed, _, checks = lab.run()
    assert failed == set()
    assert checks["ports"]["message"] == (
        "ports 6443, 10250, 8080, 8443 are free or held by their owners")
    sums, _ = lab.github.routes[K3S_SUMS_PATH].encoded_body()
    manifest, _ = lab.github.routes[FLUX_INSTALL_PATH].encoded_body()
    assert checks["k3s.release"]["message"] == (
        f"the k3s checksum file is downloadable ({len(sums)} bytes)")
    assert checks["flux.release"]["message"] == (
        f"the Flux install manifest is downloadable ({len(manifest)} bytes)")


@contextlib.contextmanager
def listener(port: int, argv: list[str]):
    """A process started as `argv` + `-c script`, listening on `port` until the block ends."""
    script = ("import socket, time; s = socket.socket(); "
              "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              f"s.bind(('0.0.0.0', {port})); s.listen(); print('ready', flush=True); "
              "time.sleep(120)")
    with subprocess.Popen([*argv, "-c", script], stdout=subprocess.PIPE, text=True) as process:
        try:
            if process.stdout.readline() != "ready\n":
                pytest.skip(f"port {port} is in use on this machine")
            yield process
        finally:
            process.kill()


@pytest.mark.parametrize("owner", ["k3s", "nobody"])
def test_ports_held_by_their_owners_pass(lab, tmp_path, monkeypatch, owner):
    """k3s's port held by a program named k3s (whatever its arguments), or a port held by a
    process of its owner user (whatever its program)."""
    if owner == "k3s":
        program = tmp_path / "k3s"
        program.symlink_to("/usr/bin/python3")
        argv = [str(program)]
    else:
        monkeypatch.setattr(preflight, "PORTS", ((10250, "nobody"),))
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "/usr/bin/python3"]
    with listener(10250, argv), contextlib.ExitStack() as k3s_api:
        if owner == "k3s":  # and its API port too
            k3s_api.enter_context(listener(6443, argv))
        checks = lab.run()[2]
    assert checks["ports"]["status"] == "pass", checks["ports"]["message"]
    if owner == "nobody":
        assert checks["ports"]["message"] == "ports 10250 are free or held by their owners"


def test_a_host_that_fails_tls_blocks_only_itself(lab):
    """GitHub's certificate is from another CA: its later checks are not run, and name the
    host:port that failed; the registries are still checked."""
    with HttpsServer(TestCA(), github_routes(), hostnames=("github.test",)) as github:
        lab.configure(github_base=github.url)
        failed, _, checks = lab.run()
    host = github.url.removeprefix("https://")
    assert failed == {"release.channel"} and checks["release.channel"]["cause"] == "tls"
    assert (checks["release.manifest"]["status"], checks["release.manifest"]["message"]) == (
        "not-run", "not run: release.channel did not succeed")
    for check in ("k3s.release", "flux.release"):
        assert (checks[check]["status"], checks[check]["message"]) == (
            "not-run", f"not run: release.channel could not reach {host}")
    assert checks["ghcr"]["status"] == checks["dockerhub"]["status"] == "pass"


def test_a_wrong_clock_comes_before_the_tls_failures_it_may_cause(lab, monkeypatch):
    ntp_says(monkeypatch, "yes")
    hour_ahead = email.utils.formatdate(time.time() + 3600, usegmt=True)
    lab.github.routes[FLUX_INSTALL_PATH] = dataclasses.replace(
        lab.github.routes[FLUX_INSTALL_PATH], headers={"Date": hour_ahead})
    with HttpsServer(TestCA(), {}) as ghcr:  # a certificate from another CA
        lab.configure(ghcr_base=ghcr.url, dockerhub_base=lab.ghcr.url)
        failed, _, _ = lab.run()
    assert failed == {"ghcr", "clock"}
    report = state.read(state.PREFLIGHT_REPORT, lab.root)
    assert [(c["cause"], c["checks"]) for c in report["causes"]] == [
        ("clock", ["clock"]), ("tls", ["ghcr"])]


def test_ports_no_process_holds_are_named_by_the_uid_of_their_sockets(lab):
    """Listening sockets that no process has a descriptor of (here they are in flight between
    two sockets, as a service manager hands sockets over) are named by the uid the socket
    table gives: /proc names no program."""
    receiver, sender = socket.socketpair(socket.AF_UNIX)
    with receiver, sender:
        for port in (6443, 10250):
            with socket.socket() as held:
                held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    held.bind(("0.0.0.0", port))
                except OSError:
                    pytest.skip(f"port {port} is in use on this machine")
                held.listen()
                socket.send_fds(sender, [b"a listener"], [held.fileno()])
            # closed: the message in the receiver's queue is all that holds it now
        failed, failure, checks = lab.run()
    assert failed == {"ports"}
    uid = os.getuid()
    assert checks["ports"]["message"] == (
        f"ports in use: 6443 (held by uid {uid}), 10250 (held by uid {uid})")
    assert {key: failure[key] for key in ("category", "suspected_cause", "next_step")} == {
        "category": "network",
        "suspected_cause": f"ports: ports in use: 6443 (held by uid {uid}), 10250 (held by "
                           f"uid {uid})",
        "next_step": "stop whatever holds the ports (see `ss -ltnp`)"}


def test_port_held_by_another_program_fails(lab):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("0.0.0.0", 10250))
        except OSError:
            pytest.skip("port 10250 is in use on this machine")
        holder.listen()
        failed, failure, checks = lab.run()
    assert failed == {"ports"} and failure["category"] == "network"
    assert "10250 (held by " in checks["ports"]["message"]


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str):
    """A tmpfs of `size` at `mount_point` (an empty one has exactly that much free)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize(("size", "status", "message"), [
    ("15g", "warn", "15.0 GiB free for /var/lib/rancher; 40 GiB is recommended"),
    ("40g", "pass", "40.0 GiB free for /var/lib/rancher"),
])
def test_disk_space_exactly_at_a_limit_is_enough_for_it(lab, size, status, message):
    """15 GiB is the minimum (it warns), 40 GiB the recommendation (it passes)."""
    with tmpfs(lab.root / "var/lib/rancher", size):
        _, _, checks = lab.run()
    assert (checks["disk.rancher"]["status"], checks["disk.rancher"]["message"]) == (
        status, message)


def test_the_appliances_own_disk_minimum_is_a_tenth_of_a_gib(lab):
    """100 MiB is less than a tenth of a GiB (102.4 MiB): it fails."""
    with tmpfs(lab.root / "var/lib/alga-appliance", "100m"):
        failed, _, _ = lab.run()
    assert failed == {"disk.alga-appliance"}


def test_too_little_disk_fails_as_storage(lab):
    with tmpfs(lab.root / "var/lib/rancher", "64m"):
        failed, failure, checks = lab.run()
    assert failed == {"disk.rancher"} and failure["category"] == "storage"
    assert "0.1 GiB free for /var/lib/rancher; at least 15.0 GiB is needed" in (
        checks["disk.rancher"]["message"])


def test_proxy_needing_authentication(lab):
    hosts = {"github.test": "127.0.0.1", "ghcr.test": "127.0.0.1"}
    github = lab.github.url.replace("127.0.0.1", "github.test")
    ghcr = lab.ghcr.url.replace("127.0.0.1", "ghcr.test")
    credentials = ("svc@corp", "p@ss:w/rd #1 %40 ü")  # URL syntax, a space, non-ASCII
    with ConnectProxy(credentials=credentials, hosts=hosts) as proxy:
        lab.configure(proxy=proxy_inputs(proxy), github_base=github, ghcr_base=ghcr)
        failed, failure, checks = lab.run()
        # Nothing gets through the proxy: the requests after it are not run, and the one
        # root cause carries the one fix.
        assert failed == {"proxy"}
        assert {c for c in HTTPS_CHECKS if checks[c]["status"] == "not-run"} == HTTPS_CHECKS
        assert failure["category"] == "network"
        assert "(407 Proxy Authentication Required)" in checks["proxy"]["message"]
        assert failure["next_step"] == "check the proxy user and password (setup's proxy step)"
        report = state.read(state.PREFLIGHT_REPORT, lab.root)
        assert [(c["cause"], c["checks"]) for c in report["causes"]] == [("proxy", ["proxy"])]
        lab.configure(proxy=proxy_inputs(proxy, credentials), github_base=github,
                      ghcr_base=ghcr)
        failed, _, _ = lab.run()
        assert failed == set()
        assert ("github.test", lab.github.port) in proxy.tunnels


def test_proxy_required_on_a_node_that_only_reaches_the_proxy(lab, tmp_path):
    """The node sits in its own network namespace; only the proxy (and the resolver) on the
    host side of its link are reachable."""
    hosts = {"github.test": "127.0.0.1", "ghcr.test": "127.0.0.1"}
    github = lab.github.url.replace("127.0.0.1", "github.test")
    ghcr = lab.ghcr.url.replace("127.0.0.1", "ghcr.test")
    with NetNamespace() as node, \
            DnsServer(node.host_address, {n: ["127.0.0.1"] for n in DNS_NAMES}) as dns, \
            ConnectProxy(address=node.host_address, hosts=hosts) as proxy:
        def run_on_node():
            done, report = preflight_on(node, lab.root)
            return done, {c["id"] for c in report["checks"] if c["status"] == "fail"}

        lab.configure(resolver=dns.address, github_base=github, ghcr_base=ghcr)
        done, failed = run_on_node()
        # The first request to each host fails; the later ones to the same host are not run.
        assert done.returncode == 1 and failed == {"release.channel", "ghcr"}, done.stderr
        checks = {c["id"]: c for c in state.read(state.PREFLIGHT_REPORT, lab.root)["checks"]}
        assert checks["k3s.release"]["message"] == (
            "not run: release.channel found that github.test does not resolve")
        failure = state.read(state.INSTALL_STATE, lab.root)["phases"]["preflight"]["failure"]
        assert failure["category"] == "network"
        assert "failed [network]" in done.stderr

        lab.configure(resolver=dns.address, github_base=github, ghcr_base=ghcr,
                      proxy=proxy_inputs(proxy))
        done, failed = run_on_node()
        assert done.returncode == 0 and failed == set(), done.stderr
        assert json.loads((lab.root / "var/lib/alga-appliance/selected-release.json")
                          .read_text())["release_version"] == "1.0"


def preflight_on(node: NetNamespace, root) -> tuple[subprocess.CompletedProcess, dict]:
    """The preflight phase in a process on `node`, and the report it wrote."""
    command = [sys.executable, "-m", "host", "--root", str(root), "phase", "preflight"]
    done = node.run(command, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"}, timeout=120)
    report = state.read(state.PREFLIGHT_REPORT, root)
    assert report is not None, done.stderr
    return done, report


def test_a_site_that_only_allows_the_proxy_passes(lab):
    """The node reaches nothing but the proxy, and its DNS server knows no public name: with
    the proxy set, the DNS checks only warn, and every request goes through the proxy."""
    hosts = {"github.test": "127.0.0.1", "ghcr.test": "127.0.0.1"}
    github = lab.github.url.replace("127.0.0.1", "github.test")
    ghcr = lab.ghcr.url.replace("127.0.0.1", "ghcr.test")
    with NetNamespace() as node, DnsServer(node.host_address, {}) as dns, \
            ConnectProxy(address=node.host_address, hosts=hosts) as proxy:
        lab.configure(resolver=dns.address, github_base=github, ghcr_base=ghcr,
                      proxy=proxy_inputs(proxy))
        done, report = preflight_on(node, lab.root)
    assert done.returncode == 0, done.stderr
    checks = {c["id"]: c for c in report["checks"]}
    assert report["outcome"] == "warn" and report["causes"] == []
    for name in DNS_CHECKS:
        assert checks[name]["status"] == "warn" and checks[name]["cause"] == "dns"
        message = checks[name]["message"]
        assert message.startswith(f"{name.removeprefix('dns.')} does not resolve here (")
        assert message.endswith("); requests go through the proxy, which resolves names itself")
        assert checks[name]["remediation"] == "nothing to do if the checks through the proxy pass"
    assert all(checks[c]["status"] == "pass" for c in HTTPS_CHECKS | {"proxy"})
    ghcr_port = int(lab.ghcr.host.rpartition(":")[2])
    assert {("github.test", lab.github.port), ("ghcr.test", ghcr_port)} <= set(proxy.tunnels)
    # The appliance asked DNS only in the DNS checks; the proxy resolved what it fetched.
    assert {name for name, _ in dns.queries} == set(DNS_NAMES)


def test_network_down_is_one_root_cause_with_one_fix(lab):
    """A node with no route anywhere: the DNS checks find it; every request after them is
    not run, and the failure names the one cause in plain words."""
    with NetNamespace() as node:
        lab.configure(resolver="192.0.2.53")  # TEST-NET-1: no route from the node
        (lab.root / "etc/resolv.conf").write_text("nameserver 192.0.2.53\nnameserver 192.0.2.54\n")
        done, report = preflight_on(node, lab.root)
    assert done.returncode == 1, done.stderr
    by_status = {}
    for check in report["checks"]:
        by_status.setdefault(check["status"], set()).add(check["id"])
    # The first DNS check finds it; asking again would only wait out the same silence.
    assert by_status["fail"] == {"dns.github.com"}
    assert by_status["not-run"] >= HTTPS_CHECKS | DNS_CHECKS - {"dns.github.com"}
    assert {c["id"]: c["message"] for c in report["checks"]}["dns.ghcr.io"] == (
        "not run: dns.github.com found that no DNS server answers")
    assert [(c["cause"], c["checks"]) for c in report["causes"]] == [
        ("no-route", ["dns.github.com"])]
    root_cause = report["causes"][0]
    assert root_cause["summary"] == ("cannot reach the DNS servers (192.0.2.53, 192.0.2.54): "
                                     "the network is unreachable")
    assert root_cause["remediation"] == (
        "check the network: `ip route` must show a default route, and the cable or virtual "
        "network must be connected")
    for check in report["checks"]:
        assert "urllib3" not in check["message"] and " object at 0x" not in check["message"]
        if check["status"] == "not-run":
            assert check["remediation"] == "" and "cause" not in check
    assert {c["id"]: c["message"] for c in report["checks"]}["ghcr"] == (
        "not run: dns.github.com could not reach any host")
    failure = state.read(state.INSTALL_STATE, lab.root)["phases"]["preflight"]["failure"]
    assert failure["suspected_cause"].startswith(
        "dns.github.com: cannot reach the DNS servers (192.0.2.53, 192.0.2.54)")
    assert failure["next_step"] == root_cause["remediation"]


def test_setup_inputs_changes_rerun_preflight(lab):
    assert lab.run()[0] == set()
    del lab.github.routes[MANIFEST_PATH]
    assert lab.run()[0] == set()  # inputs unchanged: skipped, not re-checked
    record = state.read(state.INSTALL_STATE, lab.root)["phases"]["preflight"]
    assert record["state"] == "skipped"
    lab.configure(dns_mode="custom")
    assert lab.run()[0] == {"release.manifest"}


def test_no_check_touches_the_host(lab):
    before = sorted(p.relative_to(lab.root) for p in lab.root.rglob("*"))
    lab.run()
    after = sorted(p.relative_to(lab.root) for p in lab.root.rglob("*"))
    written = {str(p) for p in set(after) - set(before)}
    assert written <= {"var/lib/alga-appliance/install-state.json",
                       "var/lib/alga-appliance/preflight-report.json",
                       "var/lib/alga-appliance/selected-release.json",
                       "var/lib/alga-appliance/setup.lock",
                       "var/log/alga-appliance/preflight.log"}
