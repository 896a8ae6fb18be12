"""The k3s phase: a pinned, checksum-verified binary from a real HTTPS release tree, its
configuration files, firewall rules and service, and the wait for a Ready node through
kubectl's interface."""

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from support.base import make_host_root
from support.netlab import ConnectProxy, HttpsServer, Route
from support.releases import K3S_BINARY, K3S_BINARY_PATH, K3S_SUMS_PATH, READY_NODE, k3s_sums

from host.core import state
from host.net import addresses
from host.setup import engine
from host.setup.phases import k3s as k3s_phase


@pytest.fixture
def lab(tmp_path, ca, fake_cluster):
    make_host_root(tmp_path, "usr/local/bin")
    fake_cluster.put(READY_NODE)
    routes = {K3S_BINARY_PATH: Route(body=K3S_BINARY),
              K3S_SUMS_PATH: Route(body=k3s_sums(K3S_BINARY))}
    with HttpsServer(ca, routes) as github:
        state.write(state.ENDPOINTS, {"k3s_release_base": f"{github.url}/k3s",
                                      "ca_bundle": str(ca.ca_pem_path)}, tmp_path)
        set_inputs(tmp_path)
        yield tmp_path, github


def set_inputs(root: Path, dns=None, proxy=None) -> None:
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://10.0.0.5:3000",
                                     "dns": dns or {"mode": "system"}, "proxy": proxy,
                                     "overrides": {}}, root)


def run_k3s(root: Path) -> dict:
    engine.run_phase("k3s", root, kubeconfig=str(root / "k3s.yaml"))
    return state.read(state.INSTALL_STATE, root)["phases"]["k3s"]


def log_lines(root: Path, name: str) -> list[str]:
    path = root / f"{name}.log"
    return path.read_text().splitlines() if path.exists() else []


def test_success(lab):
    root, _ = lab
    record = run_k3s(root)
    assert record["state"] == "succeeded", record["failure"]
    binary = root / "usr/local/bin/k3s"
    assert binary.read_bytes() == K3S_BINARY and binary.stat().st_mode & 0o777 == 0o755
    assert (root / "usr/local/bin/kubectl").readlink() == Path("k3s")
    config = root / "etc/rancher/k3s/config.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(config.read_text()) == {
        "write-kubeconfig": "/etc/rancher/k3s/k3s.yaml", "write-kubeconfig-mode": "0600",
        "disable": ["traefik", "servicelb"]}
    env = root / "etc/systemd/system/k3s.service.env"
    assert env.stat().st_mode & 0o777 == 0o600 and "PROXY" not in env.read_text()
    unit = (root / "etc/systemd/system/k3s.service").read_text()
    assert "ExecStart=/usr/local/bin/k3s server" in unit
    assert "EnvironmentFile=-/etc/systemd/system/k3s.service.env" in unit
    assert log_lines(root, "systemctl") == ["daemon-reload", "enable k3s.service",
                                            "restart k3s.service"]
    assert log_lines(root, "ufw") == [
        "allow from 10.42.0.0/16 to any", "allow from 10.43.0.0/16 to any",
        f"allow from {addresses.node_ip()} to any port 6443 proto tcp"]
    recorded = {f["path"] for f in state.read(state.HOST_CHANGES, root)["files"]}
    assert "/etc/rancher/k3s/config.yaml" in recorded and "/usr/local/bin/k3s" in recorded


HARD_USER, HARD_PASSWORD = "svc@corp", "p@ss:w/rd #1 %20 ü$HOME\\\"'"


def test_proxy_and_custom_dns_settings(lab):
    """The proxy demands a user and password full of URL and shell syntax: the download
    gets through it, and the env file carries them percent-encoded, 0600."""
    root, github = lab
    with ConnectProxy(credentials=(HARD_USER, HARD_PASSWORD)) as proxy:
        set_inputs(root, dns={"mode": "custom", "servers": ["10.0.0.53"]},
                   proxy={"url": proxy.url, "user": HARD_USER, "password": HARD_PASSWORD,
                          "no_proxy": ["localhost", "10.42.0.0/16", "10.43.0.0/16", ".svc",
                                       ".cluster.local"]})
        assert run_k3s(root)["state"] == "succeeded"
        assert ("127.0.0.1", github.port) in proxy.tunnels  # the download used the proxy
    config = yaml.safe_load((root / "etc/rancher/k3s/config.yaml").read_text())
    assert config["resolv-conf"] == "/etc/rancher/k3s/resolv.conf"
    env_file = root / "etc/systemd/system/k3s.service.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    env = env_file.read_text().splitlines()
    address = proxy.url.removeprefix("http://")
    encoded = "http://svc%40corp:p%40ss%3Aw%2Frd%20%231%20%2520%20%C3%BC%24HOME%5C%22%27@"
    assert f"HTTPS_PROXY={encoded}{address}" in env
    assert f"HTTP_PROXY={encoded}{address}" in env
    url = urlsplit(f"{encoded}{address}")
    assert (unquote(url.username), unquote(url.password)) == (HARD_USER, HARD_PASSWORD)
    assert HARD_PASSWORD not in env_file.read_text()
    no_proxy = next(line for line in env if line.startswith("NO_PROXY=")).split("=", 1)[1]
    assert set(no_proxy.split(",")) >= {"10.42.0.0/16", "10.43.0.0/16", ".svc",
                                        ".cluster.local", addresses.node_ip()}


def test_checksum_mismatch_is_refused_and_nothing_installed(lab):
    root, github = lab
    github.routes[K3S_SUMS_PATH] = Route(body=k3s_sums(b"the published binary"))
    record = run_k3s(root)
    assert record["state"] == "failed" and record["failure"]["category"] == "k3s"
    assert "never matched its checksum" in record["failure"]["suspected_cause"]
    assert "nothing was installed" in record["failure"]["suspected_cause"]
    assert not (root / "usr/local/bin/k3s").exists()
    assert [p for p in (root / "usr/local/bin").iterdir()] == []
    assert log_lines(root, "systemctl") == []
    downloads = [p for _, p, _ in github.requests if p == K3S_BINARY_PATH]
    assert len(downloads) == k3s_phase.DOWNLOAD_ATTEMPTS


def test_truncated_download_is_retried_and_never_installed(lab):
    root, github = lab
    github.routes[K3S_BINARY_PATH] = Route(body=K3S_BINARY[:1000],
                                       headers={"Content-Length": str(len(K3S_BINARY))})
    record = run_k3s(root)
    assert record["state"] == "failed" and "attempt 3" in record["failure"]["suspected_cause"]
    assert not (root / "usr/local/bin/k3s").exists()


def test_node_never_ready_times_out_as_k3s(lab, monkeypatch):
    root, _ = lab
    store_path = Path(os.environ["FAKE_KUBE_STORE"])
    store = json.loads(store_path.read_text())
    store["Node//alga-appliance"]["status"]["conditions"][1]["status"] = "False"
    store_path.write_text(json.dumps(store))
    monkeypatch.setattr(k3s_phase, "NODE_READY_TIMEOUT", 1.0)
    monkeypatch.setattr(k3s_phase, "POLL_SECONDS", 0.2)
    record = run_k3s(root)
    assert record["state"] == "failed" and record["failure"]["category"] == "k3s"
    assert "did not become Ready within 1 s (1 node(s), none Ready)" in (
        record["failure"]["suspected_cause"])


def test_rerun_with_the_binary_in_place_does_not_download_again(lab):
    root, github = lab
    run_k3s(root)
    set_inputs(root, dns={"mode": "custom", "servers": ["10.0.0.53"]})  # so it runs again
    assert run_k3s(root)["state"] == "succeeded"
    assert [p for _, p, _ in github.requests].count(K3S_BINARY_PATH) == 1
