"""Pinned, checksum-verified single-node k3s with every setting in config.yaml."""

import hashlib
from pathlib import Path

import requests
import yaml

from host.cluster.kube import Kube, KubeError
from host.core import paths, pins, state, words
from host.core.failures import OperationFailed
from host.core.wait import TimedOut, wait_until
from host.net import addresses, endpoints, https

READS = (state.SETUP_INPUTS, state.ENDPOINTS)
FETCH_TIMEOUT = 30.0
DOWNLOAD_ATTEMPTS = 3
NODE_READY_TIMEOUT = 300.0
POLL_SECONDS = 2.0
# The unit k3s's install script writes for a server, with our env file.
K3S_UNIT_TEXT = f"""[Unit]
Description=Lightweight Kubernetes (installed by alga-appliance)
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-{paths.K3S_ENV}
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart={paths.K3S_BINARY} server

[Install]
WantedBy=multi-user.target
"""
K3S_LOG = words.read_log("k3s", "the log of k3s says why")
INSTALLED = ((paths.K3S_BINARY, "the k3s binary"), (paths.KUBECTL_LINK, "kubectl"),
             (paths.K3S_CONFIG, "k3s settings"), (paths.K3S_ENV, "k3s proxy settings"),
             (paths.K3S_UNIT, "the k3s service"))


def execute(ctx) -> None:
    inputs = ctx.inputs()
    site = endpoints.load(ctx.root)
    ctx.action(f"downloading k3s {pins.K3S_VERSION} and verifying its checksum")
    _install_verified_k3s(ctx, https.session(inputs, site), site,
                          paths.on_host(paths.K3S_BINARY, ctx.root))
    link = paths.on_host(paths.KUBECTL_LINK, ctx.root)
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to("k3s")
    ctx.action("writing the k3s configuration")
    node_ip = addresses.node_ip()
    ctx.write_file(paths.K3S_CONFIG, yaml.safe_dump(k3s_config(inputs), sort_keys=False), 0o600)
    ctx.write_file(paths.K3S_ENV, k3s_environment(inputs, node_ip), 0o600)
    ctx.write_file(paths.K3S_UNIT, K3S_UNIT_TEXT, 0o644)
    ctx.action("opening the firewall to the cluster networks")
    for rule in firewall_rules(node_ip):
        ctx.run_host_command(["ufw", *rule], "k3s", "check `ufw status verbose`")
    ctx.action("starting k3s")
    for command in (["daemon-reload"], ["enable", "k3s.service"], ["restart", "k3s.service"]):
        ctx.run_host_command(["systemctl", *command], "k3s", K3S_LOG)
    ctx.record_host_changes([
        {"path": path, "phase": "k3s", "purpose": purpose,
         "undo": "systemctl disable --now k3s.service, then delete this file"}
        for path, purpose in INSTALLED])
    _wait_for_ready_node(ctx)


def k3s_config(inputs: dict) -> dict:
    config = {
        "write-kubeconfig": paths.K3S_KUBECONFIG,
        "write-kubeconfig-mode": "0600",
        # No ingress controller or service load balancer: the app uses host networking.
        # The bundled local-path provisioner stays: the one default StorageClass.
        "disable": ["traefik", "servicelb"],
    }
    if inputs["dns"]["mode"] == "custom":
        config["resolv-conf"] = paths.K3S_RESOLV_CONF
    return config


def k3s_environment(inputs: dict, node_ip: str) -> str:
    lines = ["# Written by alga-appliance setup: k3s's proxy settings (empty without a proxy)."]
    proxy = inputs["proxy"]
    if proxy:
        no_proxy = list(dict.fromkeys([*proxy["no_proxy"], node_ip]))
        url = https.proxy_url_with_credentials(proxy)
        lines += [f"HTTP_PROXY={url}", f"HTTPS_PROXY={url}", f"NO_PROXY={','.join(no_proxy)}"]
    return "\n".join(lines) + "\n"


def firewall_rules(node_ip: str) -> list[list[str]]:
    """k3s's documented ufw rules: pods, services and the node's own API server access."""
    return [["allow", "from", "10.42.0.0/16", "to", "any"],
            ["allow", "from", "10.43.0.0/16", "to", "any"],
            ["allow", "from", node_ip, "to", "any", "port", "6443", "proto", "tcp"]]


def _install_verified_k3s(ctx, session, site, binary: Path) -> None:
    try:
        sums = https.fetch_document(session, site.k3s_checksums(), FETCH_TIMEOUT,
                                    "the k3s checksum file", parse=bytes.decode, syntax="text")
    except https.FetchError as exc:
        raise OperationFailed(exc.category, str(exc), "check access to the k3s release"
                              ) from exc
    expected = next((line.split()[0] for line in sums.splitlines()
                     if line.split()[1:] == ["k3s"]), None)
    if expected is None:
        raise OperationFailed("k3s", f"{site.k3s_checksums()} lists no k3s binary",
                              "check the k3s release mirror")
    if binary.exists() and _sha256(binary) == expected:
        ctx.log("the pinned k3s binary is already installed")
        return
    binary.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        problem = _download_to(session, site.k3s_binary(), binary, expected)
        if problem is None:
            return
        problems.append(f"attempt {attempt}: {problem}")
        ctx.log(problems[-1])
    raise OperationFailed("k3s", "the k3s download never matched its checksum (" +
                          "; ".join(problems) + "); nothing was installed",
                          "retry; if it persists, check the proxy or mirror for altered "
                          "downloads")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download_to(session, url: str, target: Path, expected: str) -> str | None:
    """Download `url` beside `target` and move it into place only if its sha256 is
    `expected`; otherwise say what was wrong."""
    partial = target.with_name(f".{target.name}.download")
    digest, received = hashlib.sha256(), 0
    try:
        with session.get(url, stream=True, timeout=FETCH_TIMEOUT) as response:
            if response.status_code != 200:
                return f"{url} answered {response.status_code}"
            length = int(response.headers.get("Content-Length", 0))
            with open(partial, "wb") as fp:
                for chunk in response.iter_content(1 << 20):
                    fp.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        if length and received != length:
            return f"truncated: {received} of {length} bytes"
        if digest.hexdigest() != expected:
            return f"sha256 {digest.hexdigest()} is not the published {expected}"
        partial.chmod(0o755)
        partial.replace(target)
        return None
    except requests.RequestException as exc:
        return f"download failed: {exc}"
    finally:
        partial.unlink(missing_ok=True)


def _wait_for_ready_node(ctx) -> None:
    ctx.action(f"waiting up to {NODE_READY_TIMEOUT:.0f} s for the node to be Ready")
    kube = Kube(ctx.kubeconfig)

    def not_ready() -> str | None:
        nodes = kube.list("nodes")
        if any(c["type"] == "Ready" and c["status"] == "True"
               for node in nodes for c in node.get("status", {}).get("conditions", [])):
            return None
        return f"{len(nodes)} node(s), none Ready"

    try:
        wait_until(not_ready, NODE_READY_TIMEOUT, POLL_SECONDS, transient=(KubeError,))
    except TimedOut as exc:
        raise OperationFailed("k3s", f"the node did not become Ready within "
                              f"{exc.timeout:.0f} s ({exc.pending})",
                              f"{K3S_LOG}; check free memory and disk, then retry") from exc
