"""The setup phases, declared once: the units run them, the UI lists them, in this order.

Each phase names the failure category it maps to, whether a retry is safe, the state
files it reads (their contents decide whether a re-run can skip it) and writes, and one
entry point. The k3s, Flux and release phases plug in here.
"""

import datetime
import platform
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from host import channel, cluster_objects, endpoints, hostcmd, http, preflight, state
from host.failures import PhaseFailure
from host.kube import Kube, KubeError

FETCH_TIMEOUT = 30.0
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


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        profile = manifest["app"]["valuesProfile"]
        run.action(f"reading the {profile} values profile from {channel_file['repoBranch']}")
        profile_values = {release: _profile_values(session, source, channel_file, profile,
                                                   release)
                          for release in cluster_objects.HELM_RELEASES}
    except http.FetchError as exc:
        raise PhaseFailure(exc.category, str(exc), "check the channel and repository "
                           "override; if the release is broken upstream, choose another "
                           "channel", retry_safe=True) from exc
    selection = channel.selection(inputs["channel"], source, channel_file, manifest, _now())
    previous = state.read(state.MAINTENANCE, run.root)
    mode = "recover" if previous and previous["last_install"] else "fresh"
    _apply_release(run, inputs, manifest, profile_values, selection, mode)
    state.write(state.SELECTED_RELEASE, selection, run.root)
    state.write(state.MAINTENANCE, _maintenance(run, previous, selection), run.root)


def _profile_values(session, source, channel_file: dict, profile: str, release: str) -> dict:
    # The values profiles live on the branch Flux tracks, not on the resolution ref.
    url = source.url(PROFILE_VALUES_PATH.format(profile=profile, release=release),
                     ref=channel_file["repoBranch"])
    values = http.fetch_document(session, url, FETCH_TIMEOUT, f"{release} {profile} values",
                                 parse=yaml.safe_load, syntax="YAML")
    return values or {}


def _apply_release(run, inputs: dict, manifest: dict, profile_values: dict, selection: dict,
                   mode: str) -> None:
    kube = Kube(run.kubeconfig)
    requested_at = _now()
    try:
        run.action("checking for the app's auth key")
        objects = [cluster_objects.namespace(n) for n in (
            cluster_objects.ALGA_SYSTEM, cluster_objects.APP_NAMESPACE)]
        if kube.get("secret", cluster_objects.AUTH_SECRET, cluster_objects.APP_NAMESPACE) is None:
            objects.append(cluster_objects.auth_secret(secrets.token_urlsafe(48)))
        for release, values in profile_values.items():
            runtime = cluster_objects.runtime_values(release, manifest, inputs["app_url"], mode)
            rendered = yaml.safe_dump(cluster_objects.merged(values, runtime), sort_keys=False)
            objects.append(cluster_objects.values_configmap(
                release, manifest["app"]["valuesProfile"], rendered))
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


def _maintenance(run, previous: dict | None, selection: dict) -> dict:
    os_release = dict(line.split("=", 1) for line in (
        state.host_root(run.root) / "etc/os-release").read_text().splitlines() if "=" in line)
    now = _now()
    installed = previous["last_install"] if previous else None
    return {
        "os": {"id": os_release.get("ID", platform.system()).strip('"'),
               "version_id": os_release.get("VERSION_ID", "unknown").strip('"')},
        "k3s_version": previous["k3s_version"] if previous else None,
        "flux_version": previous["flux_version"] if previous else None,
        "app": {"channel": selection["channel"], "release_version": selection["release_version"]},
        "last_install": installed or now,
        "last_update": now if installed else None,
    }


PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Preflight checks", "network", True,
          reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(state.PREFLIGHT_REPORT, state.SELECTED_RELEASE), run=run_preflight),
    Phase("dns", "DNS", "dns", True, reads=(state.SETUP_INPUTS,),
          writes=(state.HOST_CHANGES,), run=run_dns),
    Phase("release", "Alga release", "github-release-source", True,
          reads=(state.SETUP_INPUTS, state.ENDPOINTS),
          writes=(state.SELECTED_RELEASE, state.MAINTENANCE), run=run_release),
)


def by_name(name: str) -> Phase:
    for phase in PHASES:
        if phase.name == name:
            return phase
    raise KeyError(f"no phase {name!r}; phases: {', '.join(p.name for p in PHASES)}")
