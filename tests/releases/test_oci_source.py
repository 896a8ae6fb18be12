"""The OCI release source against a real registry (Debian's docker-registry behind GHCR's
token challenge and blob redirect, support.registry), as preflight runs it: stable, nightly,
a version tag and a digest pin, and every way a registry or the network in between fails.
Each failure names the request, the host and a next step that fits the cause."""

import dataclasses
import json
from types import SimpleNamespace

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from support import oci
from support.netlab import ConnectProxy, HttpsServer, Route
from support.preflight_lab import proxy_inputs
from support.registry import Registry, pull
from support.releases import (
    CONFIG_REPOSITORY,
    OCI_IMAGES,
    OCI_VERSION,
    RELEASE_REPOSITORY,
    oci_manifest,
    oci_source,
    publish_oci,
)

from host.core import state
from host.net import endpoints, https
from host.net.endpoints import Endpoints
from host.releases import oci_source as oci_release
from host.setup import preflight

RELEASE_CHECKS = ("release.token", "release.manifest", "release.config", "release.bundle")

# Literal, not oci_source's own constant: a changed next step must fail these tests.
SOURCE_NEXT_STEP = ("check the release source override (support: overrides.release_source in "
                    "setup, or release_source in endpoints.json), or choose another channel")


def test_the_fields_a_release_manifest_may_carry_are_exactly_these():
    """First in this file, as the cheapest test a changed constant fails."""
    known = ("schema", "version", "channel", "valuesProfile", "images", "app", "controlPlane",
             "config", "charts", "profileValues", "supportAgent", "supportReceiptKeys")
    resolution = SimpleNamespace(release=dict.fromkeys((*known, "rolloutWave"), 1))
    assert oci_release.Resolution.unknown_fields(resolution) == ["rolloutWave"]


@pytest.fixture
def served(ca):
    """A plain HTTPS server whose routes a test fills and the requests it got, and a Registry
    client of it."""
    routes = {}
    with HttpsServer(ca, routes) as server, requests.Session() as session:
        session.trust_env, session.verify = False, str(ca.ca_pem_path)
        client = oci_release.Registry(session, server.url.removeprefix("https://"))
        yield SimpleNamespace(routes=routes, requests=server.requests, registry=client)


def test_a_manifest_over_4_mib_is_refused(served):
    routes, registry = served.routes, served.registry
    routes["/v2/r/manifests/stable"] = Route(body=b" " * (5 << 20),
                                             headers={"Content-Type": "application/json"})
    with pytest.raises(https.FetchError) as refused:
        registry.manifest("r", "stable", 5, "the manifest")
    assert str(refused.value) == (f"the manifest at {registry.base}/v2/r/manifests/stable is "
                                  "larger than 4194304 bytes")


def test_manifests_are_asked_for_in_exactly_these_media_types(served):
    """A release artifact in either format; an image (Flux's, k3s's) also as a list of
    platforms."""
    with pytest.raises(https.FetchError):
        served.registry.manifest("r", "stable", 5, "the release")
    with pytest.raises(https.FetchError):
        served.registry.platform_manifest("r", "stable", 5, "the image")
    oci = "application/vnd.oci.image.manifest.v1+json"
    index = "application/vnd.oci.image.index.v1+json"
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    docker_list = "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [headers["Accept"] for _, _, headers in served.requests] == [
        f"{oci}, {index}, {docker}", f"{oci}, {index}, {docker}, {docker_list}"]


INDEX = "application/vnd.oci.image.index.v1+json"
AMD64 = {"architecture": "amd64", "os": "linux"}


@pytest.mark.parametrize(("answers", "message"), [
    ({"stable": Route(body=b"[]", headers={"Content-Type": "application/json"})},
     "the image at {base}/v2/r/manifests/stable is not a manifest"),
    ({"stable": Route(body={"mediaType": INDEX, "manifests": [
        "x", {"digest": "sha256:a"}, {"digest": "sha256:b", "platform": "linux/amd64"},
        {"digest": "sha256:c", "platform": {"architecture": "arm64", "os": "linux"}}]})},
     "the image at {base}/v2/r/manifests/stable has no linux/amd64 image"),
    ({"stable": Route(body={"mediaType": INDEX, "manifests": [
        {"digest": "sha256:i", "platform": {**AMD64, "variant": "v1"}}]}),
      "sha256:i": Route(body={"mediaType": INDEX, "manifests": [
          {"digest": "sha256:j", "platform": AMD64}]})},
     "the image at {base}/v2/r/manifests/sha256:i is not an image manifest"),
    ({"stable": Route(status=500)}, "the image at {base}/v2/r/manifests/stable answered 500"),
    ({"stable": Route(body="<html>", headers={"Content-Type": "text/html"})},
     "the image at {base}/v2/r/manifests/stable is an HTML page: a captive portal, a proxy's "
     "login page or a web server answering for the registry"),
])
def test_an_image_that_is_no_linux_amd64_image_is_named_exactly(served, answers, message):
    """An index is followed once, to the linux/amd64 entry; what it leads to must be an image."""
    served.routes.update({f"/v2/r/manifests/{ref}": route for ref, route in answers.items()})
    with pytest.raises(https.FetchError) as refused:
        served.registry.platform_manifest("r", "stable", 5, "the image")
    assert str(refused.value) == message.format(base=served.registry.base)
    assert refused.value.category == ("network" if "500" in message else "release-source")


def test_a_plain_image_manifest_is_the_image(served):
    image = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"digest": "sha256:c"}}
    served.routes["/v2/r/manifests/stable"] = Route(body=image)
    assert served.registry.platform_manifest("r", "stable", 5, "the image") == image


@pytest.mark.parametrize("slow", ["stable", "sha256:i"])
def test_an_image_or_its_platform_manifest_that_never_comes_times_out(served, slow):
    served.routes.update({
        "/v2/r/manifests/stable": Route(body={"mediaType": INDEX, "manifests": [
            {"digest": "sha256:i", "platform": AMD64}]}),
        "/v2/r/manifests/sha256:i": Route(body={"config": {"digest": "sha256:c"}})})
    route = served.routes[f"/v2/r/manifests/{slow}"]
    served.routes[f"/v2/r/manifests/{slow}"] = dataclasses.replace(route, delay=5)
    with pytest.raises(https.FetchError, match=r"did not answer within 0.5 s"):
        served.registry.platform_manifest("r", "stable", 0.5, "the image")


def test_a_config_blob_over_16_mib_is_refused(lab):
    lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(b" " * (17 << 20)), "stable")
    check = failed(resolve(lab))["release.config"]
    assert "is larger than 16777216 bytes" in check["message"]


def test_a_blob_redirected_more_than_5_times_is_refused(served):
    routes, registry = served.routes, served.registry
    for hop in range(6):
        routes[f"/v2/r/blobs/sha256:{hop}" if hop else "/v2/r/blobs/sha256:x"] = Route(
            status=307, headers={"Location": f"/v2/r/blobs/sha256:{hop + 1}"})
    routes["/v2/r/blobs/sha256:6"] = Route(body=b"blob")
    with pytest.raises(https.FetchError) as refused:
        registry.blob("r", "sha256:x", 5, "the blob", 100)
    assert str(refused.value) == f"the blob: more than 5 redirects from {registry.host}"


@pytest.fixture
def lab(oci_lab):
    """The preflight lab resolving from the test registry (support.preflight_lab)."""
    return oci_lab


def resolve(lab, channel: str = "stable", release_source: str | None = None):
    """Only the release source's checks, as an update check runs them."""
    inputs = state.read(state.SETUP_INPUTS, lab.root)
    inputs["channel"] = channel
    if release_source is not None:
        inputs["overrides"] = {"release_source": release_source}
    return preflight.run_checks(inputs, endpoints.load(lab.root), lab.root,
                                only=("release.",), write_report=False)


def failed(result) -> dict:
    return {c["id"]: c for c in result.report["checks"] if c["status"] == "fail"}


def test_stable_resolves_through_the_token_challenge_and_the_blob_host(lab):
    lab.registry.requests.reset()
    found, failure, checks = lab.run()
    assert found == set() and failure is None
    selected = state.read(state.SELECTED_RELEASE, lab.root)
    assert selected["source"] == "oci" and selected["manifest_digest"] == lab.release_digest
    assert (selected["release_version"], selected["images"], selected["values_profile"]) == (
        OCI_VERSION, OCI_IMAGES, "single-node")
    assert selected["config"] == lab.release_manifest["config"]
    assert selected["registry"] == lab.registry.host
    assert selected["repository"] == RELEASE_REPOSITORY and "pin" not in selected
    assert checks["release.manifest"]["message"] == (
        f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}:stable → {lab.release_digest}")
    assert lab.registry.blob_host in checks["release.config"]["message"]
    # The real requests, in order; the token never goes to the blob host.
    roles = [(r.role, r.method) for r in lab.registry.requests]
    assert roles[:5] == [("registry", "GET"), ("token", "GET"), ("registry", "GET"),
                         ("registry", "GET"), ("blob", "GET")]
    assert all("Authorization" not in r.headers for r in lab.registry.requests.of("blob"))
    assert [r.path.split("?")[0] for r in lab.registry.requests.of("token")] == ["/token"] * 2


def test_nightly_resolves_its_own_tag(lab):
    digest, _ = publish_oci(lab.registry, "1.1.0-nightly.3", ("nightly",), algaCore="beefcafe")
    result = resolve(lab, "nightly")
    assert result.failure is None
    assert result.selection["channel"] == "nightly"
    assert (result.selection["release_version"], result.selection["manifest_digest"]) == (
        "1.1.0-nightly.3", digest)
    assert result.selection["images"]["algaCore"] == "beefcafe"


def test_a_version_tag_pin_wins_over_the_channel(lab):
    older, _ = publish_oci(lab.registry, "1.0.2", ())
    result = resolve(lab, "stable", oci_source(lab.registry, ":1.0.2"))
    assert result.failure is None
    assert (result.selection["release_version"], result.selection["pin"]) == ("1.0.2", "1.0.2")
    assert result.selection["manifest_digest"] == older
    assert result.resolution.describe() == f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}:1.0.2"


def test_a_digest_pin_resolves_exactly_that_artifact(lab):
    publish_oci(lab.registry, "1.0.9")  # stable moves on; the pin does not
    result = resolve(lab, "stable", oci_source(lab.registry, f"@{lab.release_digest}"))
    assert result.failure is None
    assert result.selection["manifest_digest"] == lab.release_digest
    assert result.selection["release_version"] == OCI_VERSION
    assert result.selection["pin"] == lab.release_digest
    assert result.resolution.describe() == (
        f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}@{lab.release_digest}")


def test_a_missing_channel_tag_names_the_request(lab):
    result = resolve(lab, "nightly")
    check = failed(result)["release.manifest"]
    assert f"{lab.registry.url}/v2/{RELEASE_REPOSITORY}/manifests/nightly answered 404" in (
        check["message"])
    assert "choose another channel" in check["remediation"]
    assert result.failure.category == "release-source" and result.selection is None
    # The later steps are not run, and carry no fix of their own.
    checks = {c["id"]: c for c in result.report["checks"]}
    for earlier, later in (("release.manifest", "release.config"),
                           ("release.config", "release.bundle")):
        assert checks[later]["status"] == "not-run", checks[later]
        assert checks[later]["message"] == f"not run: {earlier} did not succeed"
        assert checks[later]["remediation"] == ""
    assert [c["checks"] for c in result.report["causes"]] == [["release.manifest"]]


def test_a_config_blob_that_does_not_match_its_digest(lab):
    artifact, _ = pull(lab.registry.url, RELEASE_REPOSITORY, "stable", lab.registry.ca.ca_pem_path)
    lab.registry.corrupt_blob(artifact["config"]["digest"], b'{"version": "6.6.6"}')
    check = failed(resolve(lab))["release.config"]
    assert f"from {lab.registry.blob_host} hashes to sha256:" in check["message"]
    assert f"not {artifact['config']['digest']}" in check["message"]
    assert "retry" in check["remediation"]


def test_a_config_blob_that_is_not_json(lab):
    lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(b"\x89PNG not a manifest"),
                      "stable")
    check = failed(resolve(lab))["release.config"]
    assert "is not JSON" in check["message"] and lab.registry.blob_host in check["message"]


@pytest.mark.parametrize(("change", "pointer"), [
    ({"version": "one"}, "/version"),
    ({"config": {"repository": "ghcr.io/nine-minds/alga-appliance-config",
                 "digest": "sha256:1234"}}, "/config/digest"),
    ({"schema": "alga.appliance.release/v2"}, "/schema"),
    ({"images": {"workflowWorker": "a2cbb43"}}, "/images/algaCore"),
    ({"supportReceiptKeys": {"a": "x", "b": "y", "c": "z"}}, "/supportReceiptKeys"),
    ({"profileValues": {"alga-core.single-node.yaml": "replicas: 1\n"}},
     "/profileValues/pgbouncer.single-node.yaml"),
    ({"profileValues": {**{f"{r}.single-node.yaml": "{}" for r in (
        "alga-core", "pgbouncer", "temporal", "workflow-worker", "email-service",
        "temporal-worker")}, "temporal.single-node.yaml": "a: [1"}},
     "/profileValues/temporal.single-node.yaml"),
])
def test_a_manifest_failing_the_schema_names_the_field_and_the_source(lab, change, pointer):
    manifest = {**oci_manifest(lab.registry.host, _bundle_digest(lab)), **change}
    lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
    result = resolve(lab)
    check = failed(result)["release.config"]
    assert f"invalid at {pointer}" in check["message"]
    assert f"oci://{lab.registry.host}/{RELEASE_REPOSITORY}" in check["message"]
    assert result.failure.category == "release-source"


PROFILE = {f"{release}.single-node.yaml": "{}\n" for release in (
    "alga-core", "pgbouncer", "temporal", "workflow-worker", "email-service", "temporal-worker")}


@pytest.mark.parametrize(("manifest", "message"), [
    ({"valuesProfile": "single-node"}, "M is invalid at /profileValues/alga-core.single-node.yaml:"
     " required (the single-node values of alga-core)"),
    ({"valuesProfile": "single-node", "profileValues": {**PROFILE, "temporal.single-node.yaml":
                                                        "- a list\n"}},
     "M is invalid at /profileValues/temporal.single-node.yaml: not a mapping of values"),
])
def test_profile_values_that_are_missing_or_not_values_are_named_exactly(manifest, message):
    with pytest.raises(https.FetchError) as refused:
        oci_release.profile_values(manifest, "M")
    assert (str(refused.value), refused.value.category, refused.value.next_step) == (
        message, "release-source", SOURCE_NEXT_STEP)


def test_profile_values_that_are_not_yaml_say_so_with_the_parsers_words():
    manifest = {"valuesProfile": "single-node",
                "profileValues": {**PROFILE, "pgbouncer.single-node.yaml": "a: [1"}}
    with pytest.raises(https.FetchError) as refused:
        oci_release.profile_values(manifest, "M")
    assert str(refused.value).startswith(
        "M is invalid at /profileValues/pgbouncer.single-node.yaml: not YAML (while parsing ")
    assert (refused.value.category, refused.value.next_step) == (
        "release-source", SOURCE_NEXT_STEP)


@pytest.mark.parametrize("text", [
    "oci://ghcr.io/Nine-Minds/alga-appliance-release",  # OCI repositories are lower case
    "oci://ghcr.io",  # no repository
    "https://github.com/Nine-Minds/alga-psa",  # the grammar's other half: a git source
])
def test_a_reference_that_is_not_an_oci_reference_is_refused(text):
    with pytest.raises(ValueError) as refused:
        oci_release.Reference.parse(text)
    assert str(refused.value) == (f"{text!r} is not oci://<registry>/<repository>, optionally "
                                  "with :<tag> or @sha256:<digest>")


def test_a_manifest_with_no_alga_core_image_is_named_exactly():
    with pytest.raises(https.FetchError) as refused:
        oci_release.normalized({"version": "1.0", "config": {}, "images": {"x": "1"}}, "M")
    assert (str(refused.value), refused.value.category, refused.value.next_step) == (
        "M is invalid at /images/algaCore (or /app/images/algaCore): required",
        "release-source", SOURCE_NEXT_STEP)


@pytest.mark.parametrize(("shape", "profile"), [
    ({"valuesProfile": "large", "images": {"algaCore": "a1", "unknownImage": "u"}}, "large"),
    ({"app": {"valuesProfile": "small", "images": {"algaCore": "a1"}}}, "small"),
    ({"images": {"algaCore": "a1"}}, "single-node"),
])
def test_a_manifest_in_either_shape_normalizes_to_exactly_this(shape, profile):
    manifest = {"version": "2.0", "config": {"repository": "r", "digest": "sha256:d"}, **shape}
    assert oci_release.normalized(manifest, "M") == {
        **manifest, "images": {"algaCore": "a1"}, "valuesProfile": profile,
        "config": {"repository": "r", "tag": "2.0", "digest": "sha256:d"}, "charts": {}}


def test_a_manifests_own_config_tag_and_charts_are_kept():
    manifest = {"version": "2.0", "images": {"algaCore": "a1"}, "charts": {"alga-core": "1.2"},
                "config": {"repository": "r", "tag": "2.0-config", "digest": "sha256:d"}}
    normalized = oci_release.normalized(manifest, "M")
    assert (normalized["config"]["tag"], normalized["charts"]) == ("2.0-config",
                                                                   {"alga-core": "1.2"})


def test_the_older_nested_app_shape_and_unknown_fields_are_accepted(lab):
    manifest = oci_manifest(lab.registry.host, _bundle_digest(lab))
    nested = {**{k: v for k, v in manifest.items() if k not in ("images", "valuesProfile")},
              "app": {"images": {"algaCore": "0ddba11"}, "valuesProfile": "single-node"},
              "rolloutWave": 3}
    lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(nested), "stable")
    result = resolve(lab)
    assert result.failure is None
    assert result.selection["images"] == {"algaCore": "0ddba11"}
    assert result.resolution.unknown_fields() == ["rolloutWave"]


def test_an_artifact_that_is_not_an_alga_release(lab):
    lab.registry.push(RELEASE_REPOSITORY, oci.config_bundle({"a.yaml": b"a: 1\n"}), "stable")
    check = failed(resolve(lab))["release.manifest"]
    assert "is not an Alga release artifact" in check["message"]
    assert oci.FLUX_CONFIG_MEDIA_TYPE in check["message"]


def test_a_withdrawn_config_bundle_fails_in_preflight(lab):
    lab.registry.delete(CONFIG_REPOSITORY, _bundle_digest(lab))
    result = resolve(lab)
    check = failed(result)["release.bundle"]
    assert (check["message"], check["remediation"]) == (
        f"the config bundle {lab.registry.host}/{CONFIG_REPOSITORY}@{_bundle_digest(lab)} that "
        f"release {OCI_VERSION} pins is gone (404): it was withdrawn",
        "choose another channel, or wait for Alga to publish a fixed release")
    assert result.selection is None


def test_a_pinned_bundle_that_is_not_a_flux_config_bundle_is_refused(lab):
    not_flux = oci.release_artifact({"version": "9"})
    lab.registry.push(CONFIG_REPOSITORY, not_flux, "not-flux")
    manifest = oci_manifest(lab.registry.host, not_flux.digest)
    lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
    result = resolve(lab)
    check = failed(result)["release.bundle"]
    assert (check["message"], check["remediation"], result.failure.category) == (
        f"the config bundle {lab.registry.host}/{CONFIG_REPOSITORY}@{not_flux.digest} that "
        f"release {OCI_VERSION} pins is not a Flux config bundle: its config is "
        "application/vnd.alga.appliance.release.config.v1+json", SOURCE_NEXT_STEP,
        "release-source")


def test_a_config_bundle_on_another_registry_is_fetched_from_there(lab, ca):
    """The release names its bundle's registry host; another host gets a client of its own."""
    with Registry(ca) as other:
        _, manifest = publish_oci(other)
        lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
        lab.registry.delete(CONFIG_REPOSITORY, manifest["config"]["digest"])
        result = resolve(lab)
    assert result.failure is None, result.report
    digest = manifest["config"]["digest"]
    assert {c["id"]: c for c in result.report["checks"]}["release.bundle"]["message"] == (
        f"config bundle {other.host}/{CONFIG_REPOSITORY}@{digest[:19]}… exists")


def test_a_bundle_registry_that_fails_names_the_bundle(lab, ca):
    digest = _bundle_digest(lab)
    path = f"/v2/{CONFIG_REPOSITORY}/manifests/{digest}"
    with HttpsServer(ca, {path: Route(status=502)}) as server:
        host = server.url.removeprefix("https://")
        manifest = oci_manifest(host, digest)
        lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
        check = failed(resolve(lab))["release.bundle"]
    assert check["message"] == (
        f"the config bundle {host}/{CONFIG_REPOSITORY}@{digest} that release {OCI_VERSION} pins "
        f"at https://{host}{path} answered 502")


def test_a_config_bundle_registry_that_never_answers_times_out(lab, ca):
    digest = _bundle_digest(lab)
    slow = {f"/v2/{CONFIG_REPOSITORY}/manifests/{digest}": Route(status=401, delay=5)}
    with HttpsServer(ca, slow) as server:
        manifest = oci_manifest(server.url.removeprefix("https://"), digest)
        lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
        inputs = state.read(state.SETUP_INPUTS, lab.root)
        result = preflight.run_checks(inputs, endpoints.load(lab.root), lab.root, only=(
            "release.token", "release.manifest", "release.config"), write_report=False)
        with pytest.raises(https.FetchError, match=r"did not answer within 0.5 s"):
            result.resolution.bundle(0.5)


def test_a_config_bundle_whose_manifest_never_comes_times_out(lab, ca):
    """The bundle's registry issues its token at once; the manifest then takes longer than
    the step's timeout, which bounds that request too."""
    with Registry(ca) as other:
        _, manifest = publish_oci(other)
        lab.registry.push(RELEASE_REPOSITORY, oci.release_artifact(manifest), "stable")
        inputs = state.read(state.SETUP_INPUTS, lab.root)
        result = preflight.run_checks(inputs, endpoints.load(lab.root), lab.root, only=(
            "release.token", "release.manifest", "release.config"), write_report=False)
        digest = manifest["config"]["digest"]
        with other.slow("registry", 3), pytest.raises(https.FetchError) as timed_out:
            result.resolution.bundle(0.5)
    assert str(timed_out.value) == (
        f"{other.url}/v2/{CONFIG_REPOSITORY}/manifests/{digest} did not answer within 0.5 s")


def test_a_blob_host_that_is_down_is_named(lab):
    with lab.registry.blob_host_down():
        result = resolve(lab)
    check = failed(result)["release.config"]
    host = lab.registry.blob_host.split(":")[0]
    assert f"redirected to its blob host {host}, which failed" in check["message"]
    assert f"allow HTTPS to {host}" in check["remediation"]
    assert result.failure.category == "network"


def test_a_registry_that_offers_no_usable_challenge(lab, ca):
    routes = {f"/v2/{RELEASE_REPOSITORY}/manifests/stable": Route(status=401, body="denied")}
    with HttpsServer(ca, routes) as registry:
        result = resolve(lab, release_source=f"oci://127.0.0.1:{registry.port}/"
                                             f"{RELEASE_REPOSITORY}")
    check = failed(result)["release.token"]
    assert "manifests/stable answered 401 without a usable token challenge" in (
        check["message"])
    assert "no WWW-Authenticate header" in check["message"]
    assert "anonymous pull" in check["remediation"]
    routes[f"/v2/{RELEASE_REPOSITORY}/manifests/stable"].headers = {
        "WWW-Authenticate": 'Basic realm="registry"'}
    with HttpsServer(ca, routes) as registry:
        result = resolve(lab, release_source=f"oci://127.0.0.1:{registry.port}/"
                                             f"{RELEASE_REPOSITORY}")
    assert 'WWW-Authenticate: Basic realm="registry"' in (
        failed(result)["release.token"]["message"])


def test_a_captive_portal_answering_html(lab, ca):
    portal = Route(body=b"<html><body>Sign in to Guest Wi-Fi</body></html>",
                   headers={"Content-Type": "text/html"})
    with HttpsServer(ca, {f"/v2/{RELEASE_REPOSITORY}/manifests/stable": portal}) as server:
        result = resolve(lab, release_source=f"oci://127.0.0.1:{server.port}/"
                                             f"{RELEASE_REPOSITORY}")
    check = failed(result)["release.manifest"]
    assert "an HTML page: a captive portal" in check["message"]
    assert "captive portal" in check["remediation"]


HTML_CAUSE = ("an HTML page: a captive portal, a proxy's login page or a web server answering "
              "for the registry")


@pytest.mark.parametrize("headers, body, cause", [
    ({"Content-Type": "Text/HTML; charset=utf-8"}, b"Sign in", HTML_CAUSE),
    ({}, b" \n<html>", HTML_CAUSE),  # no content type, but a page all the same
    ({"Content-Type": "application/json"}, b"{not json", "application/json, not JSON"),
    ({}, b"nothing", "no content type, not JSON"),
])
def test_an_answer_that_is_not_json_says_what_it_is(headers, body, cause):
    """As requests hands the answer over: headers looked up in any case."""
    answer = requests.Response()
    answer.status_code, answer._content = 200, body
    answer.headers = requests.structures.CaseInsensitiveDict(headers)
    with pytest.raises(https.FetchError) as refused:
        oci_release._json(answer, "the manifest", "https://r.test/v2/x", 1000)
    assert str(refused.value) == f"the manifest at https://r.test/v2/x is {cause}"


def test_through_the_proxy_every_request_is_tunnelled(lab):
    with ConnectProxy() as proxy:
        lab.configure(proxy=proxy_inputs(proxy), release_source=oci_source(lab.registry))
        result = resolve(lab)
    assert result.failure is None
    registry_port = int(lab.registry.host.rsplit(":", 1)[1])
    blob_address, blob_port = lab.registry.blob_host.rsplit(":", 1)
    assert ("127.0.0.1", registry_port) in proxy.tunnels
    assert (blob_address, int(blob_port)) in proxy.tunnels
    assert len(proxy.tunnels) >= 3  # the registry, its token service and the blob host


def test_a_token_service_answering_only_access_token(ca, lab):
    with Registry(ca, token_fields=("access_token",)) as registry:
        digest, _ = publish_oci(registry)
        result = resolve(lab, release_source=oci_source(registry))
    assert result.failure is None and result.selection["manifest_digest"] == digest


def _bundle_digest(lab) -> str:
    return lab.release_manifest["config"]["digest"]


# --- whatever a registry returns --------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=8), children, max_size=3), max_leaves=8)
FIELDS = ("schema", "version", "valuesProfile", "images", "app", "config", "charts",
          "profileValues", "supportAgent", "supportReceiptKeys")


def mutated(base: dict):
    """The canonical manifest with fields dropped or replaced by arbitrary JSON."""
    return st.fixed_dictionaries({}, optional={
        field: json_values for field in FIELDS}).flatmap(lambda replaced: st.sets(
            st.sampled_from(sorted(base)), max_size=3).map(
            lambda dropped: {**{k: v for k, v in base.items() if k not in dropped}, **replaced}))


@pytest.fixture(scope="module")
def shared_registry(ca):
    with Registry(ca) as registry:
        yield registry


@settings(max_examples=40)
@given(data=st.data())
def test_nothing_a_registry_returns_crashes_the_resolver(shared_registry, data):
    registry = shared_registry
    bundle = oci.config_bundle({"base/kustomization.yaml": b"resources: []\n"})
    registry.push(CONFIG_REPOSITORY, bundle, "fuzz")
    base = oci_manifest(registry.host, bundle.digest)
    document = data.draw(st.one_of(mutated(base), json_values), label="release manifest")
    registry.push(RELEASE_REPOSITORY, oci.release_artifact(document), "stable")
    session = https.session({"proxy": None}, Endpoints(ca_bundle=str(registry.ca.ca_pem_path)))
    resolution = oci_release.Resolution(
        session, oci_release.Reference.parse(oci_source(registry)), "stable")
    try:
        for _, step in resolution.steps:
            step(5.0)
    except https.FetchError as exc:
        # Everything it rejects names the field (a JSON pointer) and the source.
        assert " is invalid at /" in str(exc), str(exc)
        assert f"oci://{registry.host}/{RELEASE_REPOSITORY}" in str(exc)
    else:
        assert resolution.selection("2026-12-06T00:00:00Z")["release_version"]
        assert set(resolution.profile_values(5.0)) == {
            "alga-core", "pgbouncer", "temporal", "email-service", "workflow-worker",
            "temporal-worker"}


# --- whatever a server answering for a registry says ------------------------------------

HOSTILE_REPOSITORY = "nine-minds/alga-appliance-release"
bodies = st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode()))
statuses = st.sampled_from([200, 200, 200, 301, 307, 400, 401, 403, 404, 429, 500, 503])


@pytest.fixture(scope="module")
def hostile(ca):
    with HttpsServer(ca, {}) as server:
        yield server


def challenges(server: HttpsServer):
    realm = f"{server.url}/token"
    return st.one_of(
        st.just(f'Bearer realm="{realm}",service="x",scope="repository:{HOSTILE_REPOSITORY}:pull"'),
        st.just(f'Bearer realm="{realm}"'), st.text(max_size=40),
        st.sampled_from(['Bearer realm="https://"', 'Bearer realm="https://[bad"',
                         'Bearer realm="https://x:99999/t"', 'Bearer realm="http://a b/"']),
        st.builds('Bearer realm="{}"'.format, st.text(max_size=20)))


def manifests(blob_digest: str):
    """Image manifests, well formed or not, naming a config blob."""
    config = st.fixed_dictionaries({
        "mediaType": st.sampled_from([oci.RELEASE_CONFIG_MEDIA_TYPE, "text/plain"]),
        "digest": st.sampled_from([blob_digest, "sha256:" + "0" * 64, "md5:abc"]),
        "size": st.integers(-1, 10)})
    return st.fixed_dictionaries({"schemaVersion": st.sampled_from([2, 1, "2"]),
                                  "config": config | json_values},
                                 optional={"mediaType": st.sampled_from([
                                     oci.MANIFEST_MEDIA_TYPE, oci_release.OCI_INDEX]),
                                           "layers": json_values}).map(
        lambda doc: json.dumps(doc).encode())


@settings(max_examples=150)
@given(data=st.data())
def test_nothing_a_server_answers_for_a_registry_crashes_the_resolver(hostile, data):
    blob = data.draw(bodies, label="config blob")
    blob_digest = oci_release.sha256(blob)
    manifest = data.draw(st.one_of(manifests(blob_digest), bodies), label="manifest")
    hostile.routes.clear()
    hostile.routes.update({
        f"/v2/{HOSTILE_REPOSITORY}/manifests/stable": Route(
            status=data.draw(statuses, label="manifest status"), body=manifest,
            headers=data.draw(st.fixed_dictionaries({}, optional={
                "WWW-Authenticate": challenges(hostile),
                "Docker-Content-Digest": st.sampled_from([oci_release.sha256(manifest), "x"]),
                "Location": st.sampled_from(["/elsewhere", "https://127.0.0.1:1/"]),
                "Content-Type": st.sampled_from(["text/html", oci.MANIFEST_MEDIA_TYPE])}),
                label="manifest headers")),
        "/token": Route(status=data.draw(statuses, label="token status"),
                        body=data.draw(bodies, label="token body")),
        f"/v2/{HOSTILE_REPOSITORY}/blobs/{blob_digest}": Route(
            status=data.draw(statuses, label="blob status"), body=blob,
            headers=data.draw(st.fixed_dictionaries({}, optional={"Location": st.sampled_from(
                ["/elsewhere", "https://127.0.0.1:1/", f"/v2/{HOSTILE_REPOSITORY}/blobs/"
                 f"{blob_digest}"])}), label="blob headers")),
    })
    session = https.session({"proxy": None}, Endpoints(ca_bundle=str(hostile.ca.ca_pem_path)))
    resolution = oci_release.Resolution(session, oci_release.Reference.parse(
        f"oci://127.0.0.1:{hostile.port}/{HOSTILE_REPOSITORY}"), "stable")
    try:
        for _, step in resolution.steps:
            step(2.0)
    except https.FetchError as exc:
        assert str(exc) and exc.category in ("release-source", "network")
