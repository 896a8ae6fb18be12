"""The release phase from a git release source: an Alga repository tree on a real HTTPS
server (test CA) and kubectl's interface (tests/fakes/kubectl)."""

import base64
import dataclasses
from pathlib import Path

import pytest
import yaml
from support.base import make_host_root
from support.cluster import FakeCluster
from support.crds import assert_valid
from support.netlab import (
    HttpsServer,
    Route,
)
from support.releases import (
    CHANNEL,
    CHANNEL_PATH,
    MANIFEST,
    MANIFEST_PATH,
    PROFILE,
    VALUES_PATH,
    repo_routes,
)

from host.cluster import alga
from host.core import pins, state
from host.setup import engine
from host.setup.phases import release


@pytest.fixture
def lab(tmp_path, ca, fake_cluster):
    make_host_root(tmp_path)
    (tmp_path / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    with HttpsServer(ca, repo_routes()) as github:
        state.write(state.ENDPOINTS, {"raw_base": github.url, "ca_bundle": str(ca.ca_pem_path),
                                      "release_source": pins.ALGA_REPO_URL}, tmp_path)
        write_inputs(tmp_path)
        yield tmp_path, github, fake_cluster


def write_inputs(root: Path, app_url: str = "https://psa.example.com") -> None:
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": app_url,
                                     "dns": {"mode": "system"}, "proxy": None,
                                     "overrides": {}}, root)


def run_release(root: Path) -> tuple[int, dict]:
    status = engine.run_phase("release", root, kubeconfig=str(root / "kubeconfig"))
    return status, state.read(state.INSTALL_STATE, root)["phases"]["release"]


def values(cluster: FakeCluster, release: str) -> dict:
    configmap = cluster.get("ConfigMap", "alga-system", f"appliance-values-{release}")
    return yaml.safe_load(configmap["data"][f"{release}.{PROFILE}.yaml"])


def test_full_success(lab):
    root, github, cluster = lab
    status, record = run_release(root)
    assert status == 0, record
    stored = cluster.objects()
    assert len(stored) == 2 + 1 + len(alga.HELM_RELEASES) + 1 + 2
    for obj in stored.values():
        assert_valid(obj)
    repo = cluster.get("GitRepository", "flux-system", "alga-appliance")
    assert repo["spec"]["ref"] == {"branch": "release/1.0.0"}
    assert repo["spec"]["url"] == "https://github.com/Nine-Minds/alga-psa"
    core = values(cluster, "alga-core")
    assert core["server"]["image"]["tag"] == core["setup"]["image"]["tag"] == "eaec6253"
    assert (core["appUrl"], core["host"], core["domainSuffix"]) == (
        "https://psa.example.com", "psa.example.com", "")
    assert core["bootstrap"] == {"mode": "fresh"} and core["replicas"] == 1
    assert values(cluster, "email-service")["image"] == {
        "repository": "ghcr.io/nine-minds/email-service", "tag": "61e4a00e"}
    assert values(cluster, "pgbouncer")["image"]["tag"] == "from-profile"
    selection = cluster.get("ConfigMap", "alga-system", "appliance-release-selection")["data"]
    assert selection["releaseVersion"] == "1.0" and selection["temporalWorker"] == "a2cbb43"
    assert state.read(state.SELECTED_RELEASE, root)["repo_branch"] == "release/1.0.0"
    maintenance = state.read(state.MAINTENANCE, root)
    assert maintenance["os"] == {"id": "ubuntu", "version_id": "24.04"}
    assert maintenance["last_install"] and maintenance["last_update"] is None
    # k3s and Flux were not installed by these phases (a cluster of the admin's own).
    assert maintenance["k3s_version"] is None and maintenance["flux_version"] is None
    # Resolved from one ref: the manifest was read from main, values from repoBranch.
    paths = [path for _, path, _ in github.requests]
    assert MANIFEST_PATH in paths and not any("release/1.0.0/ee/appliance/releases" in p
                                              for p in paths)


def test_rerun_after_success_keeps_the_auth_key_and_switches_to_recover(lab):
    root, _, cluster = lab
    run_release(root)
    first = cluster.objects()
    key = cluster.get("Secret", "msp", "alga-psa-shared")["data"]["ALGA_AUTH_KEY"]
    write_inputs(root, app_url="https://psa2.example.com")  # a change, so it runs again
    status, record = run_release(root)
    assert status == 0 and record["state"] == "succeeded"
    second = cluster.objects()
    assert sorted(first) == sorted(second)  # no duplicate objects
    secret = cluster.get("Secret", "msp", "alga-psa-shared")
    assert secret["data"]["ALGA_AUTH_KEY"] == key
    assert secret["metadata"]["resourceVersion"] == "1"  # never applied again
    assert base64.b64decode(key)
    assert values(cluster, "alga-core")["bootstrap"] == {"mode": "recover"}
    assert values(cluster, "alga-core")["appUrl"] == "https://psa2.example.com"
    assert state.read(state.MAINTENANCE, root)["last_update"]


def test_flux_apply_error_is_classified_flux(lab, monkeypatch):
    root, _, _ = lab
    monkeypatch.setenv("FAKE_KUBE_REJECT", "Kustomization")
    status, record = run_release(root)
    assert status == engine.EXIT_FAILED
    assert record["failure"]["category"] == "flux"
    assert "failed calling webhook" in record["failure"]["suspected_cause"]
    assert state.read(state.MAINTENANCE, root) is None
    monkeypatch.delenv("FAKE_KUBE_REJECT")
    status, record = run_release(root)  # a retry resumes and converges
    assert status == 0


@pytest.mark.parametrize(("path", "route", "phrase"), [
    (CHANNEL_PATH, Route(body={"channel": "stable", "updatedAt": None, "repoBranch": "x"}),
     "releaseVersion"),
    (MANIFEST_PATH, Route(body={**MANIFEST, "app": {**MANIFEST["app"], "images": {
        **MANIFEST["app"]["images"], "algaCore": ""}}}), "algaCore"),
    (MANIFEST_PATH, Route(body={"releaseVersion": "1.0"}), "generatedAt"),
    (VALUES_PATH.format("temporal"), Route(status=404), "temporal single-node values not found"),
])
def test_bad_release_sources_are_refused(lab, path, route, phrase):
    root, github, cluster = lab
    github.routes[path] = route
    status, record = run_release(root)
    failure = record["failure"]
    assert status == engine.EXIT_FAILED and failure["category"] == "release-source"
    assert phrase in failure["suspected_cause"] and "choose another channel" in (
        failure["next_step"])
    assert cluster.objects() == {}  # nothing reached the cluster


def test_values_that_are_not_yaml_are_named_exactly(lab):
    root, github, cluster = lab
    path = VALUES_PATH.format("temporal")
    github.routes[path] = Route(body="replicas: [1,\n")
    status, record = run_release(root)
    assert status == engine.EXIT_FAILED
    assert record["failure"]["category"] == "release-source"
    assert record["failure"]["suspected_cause"].startswith(
        f"temporal single-node values at {github.url}{path} is not valid YAML: while parsing")
    assert cluster.objects() == {}


def test_values_that_never_come_hit_the_phases_timeout(lab, monkeypatch):
    root, github, cluster = lab
    monkeypatch.setattr(release, "FETCH_TIMEOUT", 0.5)
    path = VALUES_PATH.format("temporal")
    github.routes[path] = dataclasses.replace(github.routes[path], delay=3)
    status, record = run_release(root)
    assert status == engine.EXIT_FAILED
    assert (record["failure"]["category"], record["failure"]["suspected_cause"]) == (
        "network", f"{github.url}{path} did not answer within 0.5 s")
    assert cluster.objects() == {}


def test_unknown_channel_fields_are_accepted_and_logged(lab):
    root, github, _ = lab
    github.routes[CHANNEL_PATH] = Route(body={**CHANNEL, "rolloutPercent": 50})
    status, _ = run_release(root)
    assert status == 0
    log = (root / "var/log/alga-appliance/release.log").read_text()
    assert "has fields this version ignores: rolloutPercent" in log


def test_release_runs_against_any_kubeconfig(lab):
    root, _, cluster = lab
    other = root / "other-cluster.yaml"
    assert engine.run_phase("release", root, kubeconfig=str(other)) == 0
    [call, *_] = cluster.calls()
    assert call["argv"][:2] == ["--kubeconfig", str(other)]
