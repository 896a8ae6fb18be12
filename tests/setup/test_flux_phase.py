"""The Flux phase: the pinned install.yaml from a real HTTPS release tree, checksum-verified,
applied server-side through kubectl's interface, with the proxy for source-controller."""

import base64
import json
from pathlib import Path

import pytest
from support.base import make_host_root
from support.netlab import ConnectProxy, HttpsServer, Route
from support.releases import FLUX_INSTALL, FLUX_INSTALL_PATH, FLUX_SUMS_PATH, flux_sums

from host.core import state
from host.setup import engine
from host.setup.phases import flux as flux_phase


@pytest.fixture
def lab(tmp_path, ca, fake_cluster):
    make_host_root(tmp_path)
    routes = {FLUX_INSTALL_PATH: Route(body=FLUX_INSTALL),
              FLUX_SUMS_PATH: Route(body=flux_sums(FLUX_INSTALL))}
    with HttpsServer(ca, routes) as github:
        state.write(state.ENDPOINTS, {"flux_release_base": f"{github.url}/flux",
                                      "ca_bundle": str(ca.ca_pem_path)}, tmp_path)
        set_proxy(tmp_path, None)
        yield tmp_path, github


def set_proxy(root: Path, proxy) -> None:
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://10.0.0.5:3000",
                                     "dns": {"mode": "system"}, "proxy": proxy,
                                     "overrides": {}}, root)


def run_flux(root: Path) -> dict:
    engine.run_phase("flux", root, kubeconfig=str(root / "k3s.yaml"))
    return state.read(state.INSTALL_STATE, root)["phases"]["flux"]


def store(root: Path) -> dict:
    path = root / "store.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_success(lab):
    root, _ = lab
    record = run_flux(root)
    assert record["state"] == "succeeded", record["failure"]
    objects = store(root)
    assert "Deployment/flux-system/source-controller" in objects
    assert "CustomResourceDefinition//gitrepositories.source.toolkit.fluxcd.io" in objects
    env = objects["Deployment/flux-system/source-controller"]["spec"]["template"]["spec"][
        "containers"][0]["env"]
    assert [e["name"] for e in env] == ["RUNTIME_NAMESPACE"]  # no proxy: untouched


def test_proxy_goes_to_source_controller_only_through_a_secret(lab):
    """The proxy demands a password full of URL syntax: the download gets through it, and
    source-controller reads the proxy from a Secret, never from its plain env."""
    root, github = lab
    user, password = "svc", "p@ss:w/rd #1 % ü"
    with ConnectProxy(credentials=(user, password)) as proxy:
        set_proxy(root, {"url": proxy.url, "user": user, "password": password,
                         "no_proxy": ["10.42.0.0/16", ".svc"]})
        assert run_flux(root)["state"] == "succeeded"
        assert ("127.0.0.1", github.port) in proxy.tunnels  # the download used it too
    objects = store(root)
    address = proxy.url.removeprefix("http://")
    url = f"http://svc:p%40ss%3Aw%2Frd%20%231%20%25%20%C3%BC@{address}"
    secret = objects["Secret/flux-system/alga-appliance-proxy"]
    assert secret["type"] == "Opaque"
    assert {name: base64.b64decode(value).decode() for name, value in
            secret["data"].items()} == {"HTTPS_PROXY": url, "HTTP_PROXY": url,
                                        "NO_PROXY": "10.42.0.0/16,.svc"}
    source = objects["Deployment/flux-system/source-controller"]["spec"]["template"]["spec"][
        "containers"][0]
    assert [e["name"] for e in source["env"]] == ["RUNTIME_NAMESPACE"]
    assert source["envFrom"] == [{"secretRef": {"name": "alga-appliance-proxy"}}]
    deployments = json.dumps([o for o in objects.values() if o["kind"] == "Deployment"])
    assert "p%40ss" not in deployments and address not in deployments
    helm = objects["Deployment/flux-system/helm-controller"]["spec"]["template"]["spec"][
        "containers"][0]
    assert [e["name"] for e in helm["env"]] == ["RUNTIME_NAMESPACE"] and "envFrom" not in helm

    set_proxy(root, None)  # the proxy dropped: a re-run removes the Secret and its password
    assert run_flux(root)["state"] == "succeeded"
    objects = store(root)
    assert "Secret/flux-system/alga-appliance-proxy" not in objects
    source = objects["Deployment/flux-system/source-controller"]["spec"]["template"]["spec"][
        "containers"][0]
    assert "envFrom" not in source


def test_checksum_mismatch_applies_nothing(lab):
    root, github = lab
    github.routes[FLUX_SUMS_PATH] = Route(body=flux_sums(b"the published install.yaml"))
    record = run_flux(root)
    assert record["state"] == "failed" and record["failure"]["category"] == "flux"
    assert "does not match the published checksum" in record["failure"]["suspected_cause"]
    assert "attempt 3" in record["failure"]["suspected_cause"]
    assert store(root) == {}


def test_apply_error_is_classified_flux(lab, monkeypatch):
    root, _ = lab
    monkeypatch.setenv("FAKE_KUBE_REJECT", "CustomResourceDefinition")
    record = run_flux(root)
    assert record["state"] == "failed" and record["failure"]["category"] == "flux"
    assert "applying Flux failed" in record["failure"]["suspected_cause"]


def test_controllers_never_available_time_out(lab, monkeypatch):
    root, _ = lab
    monkeypatch.setenv("FAKE_KUBE_UNAVAILABLE", "1")
    monkeypatch.setattr(flux_phase, "CONTROLLERS_TIMEOUT", 1.0)
    monkeypatch.setattr(flux_phase, "POLL_SECONDS", 0.2)
    record = run_flux(root)
    assert record["state"] == "failed" and record["failure"]["category"] == "flux"
    assert "not available within 1 s: source-controller, kustomize-controller, helm-controller" \
        in record["failure"]["suspected_cause"]
