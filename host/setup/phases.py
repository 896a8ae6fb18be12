"""The setup phases, declared once: the units run them, the UI lists them, in this order.

Each phase names the failure category it maps to, whether a retry is safe, the state
files it reads (their contents decide whether a re-run can skip it) and writes, and one
entry point. The k3s, Flux and release phases plug in here.
"""

import hashlib
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import yaml

from host.cluster import objects as cluster_objects
from host.cluster.kube import Kube, KubeError
from host.core import hostcmd, pins, state
from host.core.failures import PhaseFailure
from host.net import addresses as netinfo
from host.net import endpoints
from host.net import https as http
from host.releases import git_source as channel
from host.setup import preflight

FETCH_TIMEOUT = 30.0
K3S_BINARY = "/usr/local/bin/k3s"
KUBECTL_LINK = "/usr/local/bin/kubectl"  # k3s acts as kubectl under this name
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_ENV = "/etc/systemd/system/k3s.service.env"
K3S_UNIT = "/etc/systemd/system/k3s.service"
DOWNLOAD_ATTEMPTS = 3
NODE_READY_TIMEOUT = 300.0
NODE_POLL_SECONDS = 2.0
# The unit k3s's install script writes for a server, with our env file.
K3S_UNIT_TEXT = """[Unit]
Description=Lightweight Kubernetes (installed by alga-appliance)
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-/etc/systemd/system/k3s.service.env
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
ExecStart=/usr/local/bin/k3s server

[Install]
WantedBy=multi-user.target
"""
FLUX_CONTROLLERS_TIMEOUT = 300.0
FLUX_SOURCE_CONTROLLER = "source-controller"
RESOLVED_DROPIN = "/etc/systemd/resolved.conf.d/alga-appliance-dns.conf"
K3S_RESOLV_CONF = "/etc/rancher/k3s/resolv.conf"  # k3s config.yaml's resolv-conf
PROFILE_VALUES_PATH = "ee/appliance/flux/profiles/{profile}/values/{release}.{profile}.yaml"


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    category: str
    retry_safe: bool
    reads: tuple[state.StateFile, ...]
    writes: tuple[state.StateFile, ...]
    run: Callable[["PhaseRun"], None]  # noqa: F821 - host.engine.PhaseRun


def _setup_inputs(run) -> dict:
    inputs = state.read(state.SETUP_INPUTS, run.root)
    if inputs is None:
        raise PhaseFailure("network", "setup has not been submitted yet",
                           "complete setup in the web UI or on the console", retry_safe=True)
    return inputs


def run_preflight(run) -> None:
    inputs = _setup_inputs(run)
    run.action("checking DNS, GitHub, GHCR, the proxy and the channel")
    result = preflight.run_checks(inputs, endpoints.load(run.root), run.root)
    for check in result.report["checks"]:
        run.log(f"{check['status']:4} {check['id']}: {check['message']}")
    if result.failure is not None:
        failure = result.failure
        raise PhaseFailure(failure.category, f"{failure.check_id}: {failure.message}",
                           failure.remediation, retry_safe=True)
    run.action("recording the selected release")
    state.write(state.SELECTED_RELEASE, result.selected_release, run.root)


def run_dns(run) -> None:
    """Custom DNS: the admin's resolvers for the host (a systemd-resolved drop-in) and for
    k3s (its own resolv.conf, so CoreDNS never forwards to the 127.0.0.53 stub). System
    DNS changes nothing, and undoes an earlier custom setup."""
    dns = _setup_inputs(run)["dns"]
    root = state.host_root(run.root)
    ours = [root / RESOLVED_DROPIN.lstrip("/"), root / K3S_RESOLV_CONF.lstrip("/")]
    if dns["mode"] == "system":
        run.action("system DNS: leaving the host's resolvers as they are")
        if any(path.exists() for path in ours):
            run.action("removing the custom DNS files of an earlier setup")
            for path in ours:
                path.unlink(missing_ok=True)
            _restart_resolved(run)
        _record_changes(run, "dns", [])
        return
    servers = dns["servers"]
    run.action(f"configuring custom resolvers {', '.join(servers)}")
    for path, text in zip(ours, (
            "# Written by alga-appliance setup (custom DNS). Delete this file and restart "
            f"systemd-resolved to undo.\n[Resolve]\nDNS={' '.join(servers)}\n",
            "# Written by alga-appliance setup: the resolvers k3s gives CoreDNS.\n"
            + "".join(f"nameserver {server}\n" for server in servers)), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        state.write_atomically(path, text.encode(), 0o644)
    _restart_resolved(run)
    _record_changes(run, "dns", [
        {"path": RESOLVED_DROPIN, "phase": "dns", "purpose": "custom resolvers for the host",
         "undo": "delete it, then: systemctl restart systemd-resolved"},
        {"path": K3S_RESOLV_CONF, "phase": "dns", "purpose": "the resolvers k3s gives CoreDNS",
         "undo": "delete it and the resolv-conf line of /etc/rancher/k3s/config.yaml"}])


def _restart_resolved(run) -> None:
    run.action("restarting systemd-resolved")
    try:
        hostcmd.run(["systemctl", "try-restart", "systemd-resolved.service"])
    except hostcmd.CommandFailed as exc:
        raise PhaseFailure("dns", f"systemd-resolved did not restart: {exc}",
                           "check `journalctl -u systemd-resolved`, then retry",
                           retry_safe=True) from exc


def _record_changes(run, phase: str, files: list[dict]) -> None:
    """Replace `phase`'s entries in the host-changes record with `files`."""
    current = state.read(state.HOST_CHANGES, run.root) or {"files": []}
    kept = [entry for entry in current["files"] if entry["phase"] != phase]
    state.write(state.HOST_CHANGES, {"files": kept + files}, run.root)


def run_k3s(run) -> None:
    """Pinned, checksum-verified single-node k3s with every setting in config.yaml."""
    inputs = _setup_inputs(run)
    site = endpoints.load(run.root)
    root = state.host_root(run.root)
    binary = root / K3S_BINARY.lstrip("/")
    run.action(f"downloading k3s {pins.K3S_VERSION} and verifying its checksum")
    _install_verified_k3s(run, http.session(inputs, site), site, binary)
    link = root / KUBECTL_LINK.lstrip("/")
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to("k3s")
    run.action("writing the k3s configuration")
    _write(root, K3S_CONFIG, yaml.safe_dump(k3s_config(inputs), sort_keys=False), 0o600)
    _write(root, K3S_ENV, k3s_environment(inputs, netinfo.node_ip()), 0o600)
    _write(root, K3S_UNIT, K3S_UNIT_TEXT, 0o644)
    run.action("opening the firewall to the cluster networks")
    for rule in firewall_rules(netinfo.node_ip()):
        _host(run, ["ufw", *rule], "k3s", "check `ufw status verbose`")
    run.action("starting k3s")
    for command in (["daemon-reload"], ["enable", "k3s.service"], ["restart", "k3s.service"]):
        _host(run, ["systemctl", *command], "k3s", "check `journalctl -u k3s`")
    _record_changes(run, "k3s", [
        {"path": path, "phase": "k3s", "purpose": purpose,
         "undo": "systemctl disable --now k3s.service, then delete this file"}
        for path, purpose in ((K3S_BINARY, "the k3s binary"), (KUBECTL_LINK, "kubectl"),
                              (K3S_CONFIG, "k3s settings"), (K3S_ENV, "k3s proxy settings"),
                              (K3S_UNIT, "the k3s service"))])
    _wait_for_ready_node(run)


def k3s_config(inputs: dict) -> dict:
    config = {
        "write-kubeconfig": "/etc/rancher/k3s/k3s.yaml",
        "write-kubeconfig-mode": "0600",
        # No ingress controller or service load balancer: the app uses host networking.
        # The bundled local-path provisioner stays: the one default StorageClass.
        "disable": ["traefik", "servicelb"],
    }
    if inputs["dns"]["mode"] == "custom":
        config["resolv-conf"] = K3S_RESOLV_CONF
    return config


def k3s_environment(inputs: dict, node_ip: str) -> str:
    lines = ["# Written by alga-appliance setup: k3s's proxy settings (empty without a proxy)."]
    proxy = inputs["proxy"]
    if proxy:
        no_proxy = list(dict.fromkeys([*proxy["no_proxy"], node_ip]))
        lines += [f"HTTP_PROXY={proxy['url']}", f"HTTPS_PROXY={proxy['url']}",
                  f"NO_PROXY={','.join(no_proxy)}"]
    return "\n".join(lines) + "\n"


def firewall_rules(node_ip: str) -> list[list[str]]:
    """k3s's documented ufw rules: pods, services and the node's own API server access."""
    return [["allow", "from", "10.42.0.0/16", "to", "any"],
            ["allow", "from", "10.43.0.0/16", "to", "any"],
            ["allow", "from", node_ip, "to", "any", "port", "6443", "proto", "tcp"]]


def _write(root, path: str, text: str, mode: int) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    state.write_atomically(target, text.encode(), mode)


def _host(run, argv: list[str], category: str, next_step: str) -> None:
    try:
        hostcmd.run(argv)
    except hostcmd.CommandFailed as exc:
        raise PhaseFailure(category, str(exc), next_step, retry_safe=True) from exc


def _install_verified_k3s(run, session, site, binary) -> None:
    try:
        sums = http.fetch_document(session, site.k3s_checksums(), FETCH_TIMEOUT,
                                   "the k3s checksum file", parse=bytes.decode, syntax="text")
    except http.FetchError as exc:
        raise PhaseFailure(exc.category, str(exc), "check access to the k3s release",
                           retry_safe=True) from exc
    expected = next((line.split()[0] for line in sums.splitlines()
                     if line.split()[1:] == ["k3s"]), None)
    if expected is None:
        raise PhaseFailure("k3s", f"{site.k3s_checksums()} lists no k3s binary",
                           "check the k3s release mirror", retry_safe=True)
    if binary.exists() and _sha256(binary) == expected:
        run.log("the pinned k3s binary is already installed")
        return
    binary.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        problem = _download_to(session, site.k3s_binary(), binary, expected)
        if problem is None:
            return
        problems.append(f"attempt {attempt}: {problem}")
        run.log(problems[-1])
    raise PhaseFailure("k3s", "the k3s download never matched its checksum (" +
                       "; ".join(problems) + "); nothing was installed",
                       "retry; if it persists, check the proxy or mirror for altered downloads",
                       retry_safe=True)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download_to(session, url: str, target, expected: str) -> str | None:
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


def _wait_for_ready_node(run) -> None:
    run.action(f"waiting up to {NODE_READY_TIMEOUT:.0f} s for the node to be Ready")
    kube, deadline, last = Kube(run.kubeconfig), time.monotonic() + NODE_READY_TIMEOUT, ""
    while time.monotonic() < deadline:
        try:
            nodes = kube.list("nodes")
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for node in nodes for c in node.get("status", {}).get("conditions", [])):
                return
            last = f"{len(nodes)} node(s), none Ready"
        except KubeError as exc:
            last = str(exc)
        time.sleep(NODE_POLL_SECONDS)
    raise PhaseFailure("k3s", f"the node did not become Ready within {NODE_READY_TIMEOUT:.0f} s"
                       f" ({last})", "check `journalctl -u k3s` and free memory and disk, "
                       "then retry", retry_safe=True)


def run_flux(run) -> None:
    """The pinned Flux release's install.yaml, checksum-verified, applied server-side."""
    inputs = _setup_inputs(run)
    site = endpoints.load(run.root)
    session = http.session(inputs, site)
    run.action(f"downloading Flux {pins.FLUX_VERSION} install.yaml and verifying its checksum")
    objects = [doc for doc in yaml.safe_load_all(_verified_flux_install(run, session, site))
               if doc]
    if inputs["proxy"]:
        _give_proxy(objects, inputs["proxy"])
    kube = Kube(run.kubeconfig)
    run.action(f"applying {len(objects)} Flux objects")
    try:
        kube.apply(objects)
    except KubeError as exc:
        raise PhaseFailure("flux", f"applying Flux failed: {exc}", "check the cluster "
                           "(kubectl get nodes) and retry", retry_safe=True) from exc
    _wait_for_controllers(run, kube, [o["metadata"]["name"] for o in objects
                                      if o.get("kind") == "Deployment"])


def _verified_flux_install(run, session, site) -> bytes:
    """install.yaml, once its sha256 matches the release's checksum file (bounded retries:
    a truncated or altered download is never applied)."""
    problems = []
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            sums = http.fetch_document(session, site.flux_checksums(), FETCH_TIMEOUT,
                                       "the Flux checksum file", parse=bytes.decode,
                                       syntax="text")
            response = http.fetch(session, site.flux_install_manifest(), FETCH_TIMEOUT)
        except http.FetchError as exc:
            problems.append(f"attempt {attempt}: {exc}")
            continue
        expected = next((line.split()[0] for line in sums.splitlines()
                         if line.split()[1:] == ["install.yaml"]), None)
        actual = hashlib.sha256(response.content).hexdigest()
        if response.status_code == 200 and expected is not None and actual == expected:
            return response.content
        problems.append(f"attempt {attempt}: install.yaml ({response.status_code}, sha256 "
                        f"{actual}) does not match the published checksum {expected}")
        run.log(problems[-1])
    raise PhaseFailure("flux", "; ".join(problems) + "; nothing was applied",
                       "retry; if it persists, check the proxy or mirror", retry_safe=True)


def _give_proxy(objects: list[dict], proxy: dict) -> None:
    """The source-controller fetches the Alga repository, so it gets the proxy."""
    env = [{"name": name, "value": value} for name, value in (
        ("HTTPS_PROXY", proxy["url"]), ("HTTP_PROXY", proxy["url"]),
        ("NO_PROXY", ",".join(proxy["no_proxy"])))]
    for obj in objects:
        if obj.get("kind") == "Deployment" and obj["metadata"]["name"] == FLUX_SOURCE_CONTROLLER:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                kept = [e for e in container.get("env", []) if e["name"] not in
                        {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}]
                container["env"] = kept + env


def _wait_for_controllers(run, kube: Kube, names: list[str]) -> None:
    run.action(f"waiting up to {FLUX_CONTROLLERS_TIMEOUT:.0f} s for the Flux controllers")
    deadline, waiting = time.monotonic() + FLUX_CONTROLLERS_TIMEOUT, names
    while time.monotonic() < deadline:
        try:
            deployments = {d["metadata"]["name"]: d for d in
                           kube.list("deployments", cluster_objects.FLUX_NAMESPACE)}
        except KubeError as exc:
            run.log(str(exc))
            deployments = {}
        waiting = [n for n in names if not _available(deployments.get(n))]
        if not waiting:
            return
        time.sleep(NODE_POLL_SECONDS)
    raise PhaseFailure("flux", f"Flux controllers not available within "
                       f"{FLUX_CONTROLLERS_TIMEOUT:.0f} s: {', '.join(waiting)}",
                       "check `kubectl -n flux-system get pods` and retry", retry_safe=True)


def _available(deployment: dict | None) -> bool:
    if deployment is None:
        return False
    wanted = deployment.get("spec", {}).get("replicas", 1)
    return deployment.get("status", {}).get("availableReplicas", 0) >= wanted


def run_release(run) -> None:
    inputs = _setup_inputs(run)
    site = endpoints.load(run.root)
    session = http.session(inputs, site)
    source = channel.Source.for_inputs(inputs, site)
    try:
        run.action(f"resolving the {inputs['channel']} channel and its manifest from "
                   f"{source.ref}")
        channel_file = channel.fetch_channel(session, source, inputs["channel"], FETCH_TIMEOUT)
        if channel.unknown_fields(channel_file):
            run.log(f"channel file has fields this version ignores: "
                    f"{', '.join(channel.unknown_fields(channel_file))}")
        manifest = channel.fetch_manifest(session, source, channel_file["releaseVersion"],
                                          FETCH_TIMEOUT)
        run.action(f"reading the {manifest['app']['valuesProfile']} values profile from "
                   f"{channel_file['repoBranch']}")
        profile_values = fetch_profile_values(session, source, channel_file["repoBranch"],
                                              manifest["app"]["valuesProfile"])
    except http.FetchError as exc:
        raise PhaseFailure(exc.category, str(exc), "check the channel and repository "
                           "override; if the release is broken upstream, choose another "
                           "channel", retry_safe=True) from exc
    selection = channel.selection(inputs["channel"], source, channel_file, manifest,
                                  state.timestamp())
    previous = state.read(state.MAINTENANCE, run.root)
    # Recover once an install has completed (recorded with that success, so a run killed
    # after applying but before its success is recorded converges on "fresh" again).
    mode = "recover" if run.install.get("completed_at") else "fresh"
    _apply_release(run, inputs, manifest, profile_values, selection, mode)
    state.write(state.SELECTED_RELEASE, selection, run.root)
    done = {name for name, record in run.install["phases"].items()
            if record["state"] in ("succeeded", "skipped")}
    # None when this cluster's k3s or Flux were not installed by these phases.
    state.write(state.MAINTENANCE, maintenance_record(
        run.root, previous, selection, "install",
        k3s_version=pins.K3S_VERSION if "k3s" in done else None,
        flux_version=pins.FLUX_VERSION if "flux" in done else None), run.root)


def fetch_profile_values(session, source, repo_branch: str, profile: str) -> dict:
    """Each Helm release's values from `profile` (the release phase and app updates render
    the same way)."""
    return {release: _profile_values(session, source, repo_branch, profile, release)
            for release in cluster_objects.HELM_RELEASES}


def _profile_values(session, source, repo_branch: str, profile: str, release: str) -> dict:
    # The values profiles live on the branch Flux tracks, not on the resolution ref.
    url = source.url(PROFILE_VALUES_PATH.format(profile=profile, release=release),
                     ref=repo_branch)
    values = http.fetch_document(session, url, FETCH_TIMEOUT, f"{release} {profile} values",
                                 parse=yaml.safe_load, syntax="YAML")
    return values or {}


def values_configmaps(inputs: dict, manifest: dict, profile_values: dict,
                      mode: str) -> list[dict]:
    """The appliance-values-<release> ConfigMaps: each profile's values with the runtime
    values (image tags, app URL, bootstrap mode) laid over them."""
    configmaps = []
    for release, values in profile_values.items():
        runtime = cluster_objects.runtime_values(release, manifest, inputs["app_url"], mode)
        rendered = yaml.safe_dump(cluster_objects.merged(values, runtime), sort_keys=False)
        configmaps.append(cluster_objects.values_configmap(
            release, manifest["app"]["valuesProfile"], rendered))
    return configmaps


def _apply_release(run, inputs: dict, manifest: dict, profile_values: dict, selection: dict,
                   mode: str) -> None:
    kube = Kube(run.kubeconfig)
    requested_at = state.timestamp()
    try:
        run.action("checking for the app's auth key")
        objects = [cluster_objects.namespace(n) for n in (
            cluster_objects.ALGA_SYSTEM, cluster_objects.APP_NAMESPACE)]
        if kube.get("secret", cluster_objects.AUTH_SECRET, cluster_objects.APP_NAMESPACE) is None:
            objects.append(cluster_objects.auth_secret(secrets.token_urlsafe(48)))
        objects += values_configmaps(inputs, manifest, profile_values, mode)
        objects += [cluster_objects.release_selection(selection),
                    cluster_objects.git_repository(selection["repo_url"],
                                                   selection["repo_branch"], requested_at),
                    cluster_objects.kustomization(requested_at)]
        run.action(f"applying release {selection['release_version']} ({mode}) to the cluster")
        kube.apply(objects)
    except KubeError as exc:
        raise PhaseFailure("flux", f"the cluster refused the release objects: {exc}",
                           "check that Flux is installed and its controllers run "
                           "(kubectl -n flux-system get pods), then retry", retry_safe=True
                           ) from exc


def maintenance_record(root, previous: dict | None, selection: dict, event: str,
                       k3s_version: str | None, flux_version: str | None) -> dict:
    """What is installed and the last maintenance event (`event`: install or update)."""
    os_release = dict(line.split("=", 1) for line in (
        state.host_root(root) / "etc/os-release").read_text().splitlines() if "=" in line)
    now = state.timestamp()
    installed = previous["last_install"] if previous else None
    return {
        "os": {"id": os_release.get("ID", platform.system()).strip('"'),
               "version_id": os_release.get("VERSION_ID", "unknown").strip('"')},
        "kernel": _kernel(root),
        "k3s_version": k3s_version,
        "flux_version": flux_version,
        "app": {"channel": selection["channel"], "release_version": selection["release_version"]},
        "last_install": now if event == "install" and not installed else installed,
        "last_update": now if installed else None,
        "last_event": {"kind": event, "at": now, "to_release": selection["release_version"],
                       "from_release": previous["app"]["release_version"] if previous else None},
    }


def _kernel(root) -> str:
    # The host's own record under a root prefix (tests, a mounted system), else this kernel.
    osrelease = state.host_root(root) / "proc/sys/kernel/osrelease"
    return osrelease.read_text().strip() if osrelease.is_file() else platform.release()


PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Preflight checks", "network", True,
          reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(state.PREFLIGHT_REPORT, state.SELECTED_RELEASE), run=run_preflight),
    Phase("dns", "DNS", "dns", True, reads=(state.SETUP_INPUTS,),
          writes=(state.HOST_CHANGES,), run=run_dns),
    Phase("k3s", "k3s", "k3s", True, reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(state.HOST_CHANGES,), run=run_k3s),
    Phase("flux", "Flux", "flux", True, reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(), run=run_flux),
    Phase("release", "Alga release", "github-release-source", True,
          reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(state.SELECTED_RELEASE, state.MAINTENANCE), run=run_release),
)


def by_name(name: str) -> Phase:
    for phase in PHASES:
        if phase.name == name:
            return phase
    raise KeyError(f"no phase {name!r}; phases: {', '.join(p.name for p in PHASES)}")
