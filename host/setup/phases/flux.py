"""The pinned Flux release's install.yaml, checksum-verified, applied server-side."""

import hashlib

import yaml

from host.cluster import alga
from host.cluster import objects as cluster_objects
from host.cluster.kube import Kube, KubeError
from host.core import pins, state, words
from host.core.failures import OperationFailed
from host.core.wait import TimedOut, wait_until
from host.net import endpoints, https

K3S_DOWN = "check that k3s runs; if not, its log says why"
CONTROLLERS_DOWN = "the log of the controller not available says why"
READS = (state.SETUP_INPUTS, state.ENDPOINTS)
FETCH_TIMEOUT = 30.0
DOWNLOAD_ATTEMPTS = 3
CONTROLLERS_TIMEOUT = 300.0
POLL_SECONDS = 2.0
SOURCE_CONTROLLER = "source-controller"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")


def execute(ctx) -> None:
    inputs = ctx.inputs()
    site = endpoints.load(ctx.root)
    session = https.session(inputs, site)
    ctx.action(f"downloading Flux {pins.FLUX_VERSION} install.yaml and verifying its checksum")
    objects = [doc for doc in yaml.safe_load_all(_verified_install(ctx, session, site))
               if doc]
    if inputs["proxy"]:
        _give_proxy(objects, inputs["proxy"])
    kube = Kube(ctx.kubeconfig)
    ctx.action(f"applying {len(objects)} Flux objects")
    try:
        kube.apply(objects)
        if not inputs["proxy"]:  # a proxy dropped since: its password goes with it
            kube.delete("secret", cluster_objects.PROXY_SECRET, alga.FLUX_NAMESPACE)
    except KubeError as exc:
        raise OperationFailed("flux", f"applying Flux failed: {exc}",
                              f"{words.read_log('k3s', K3S_DOWN)}; then retry") from exc
    _wait_for_controllers(ctx, kube, [o["metadata"]["name"] for o in objects
                                      if o.get("kind") == "Deployment"])


def _verified_install(ctx, session, site) -> bytes:
    """install.yaml, once its sha256 matches the release's checksum file (bounded retries:
    a truncated or altered download is never applied)."""
    problems = []
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            sums = https.fetch_document(session, site.flux_checksums(), FETCH_TIMEOUT,
                                        "the Flux checksum file", parse=bytes.decode,
                                        syntax="text")
            response = https.fetch(session, site.flux_install_manifest(), FETCH_TIMEOUT)
        except https.FetchError as exc:
            problems.append(f"attempt {attempt}: {exc}")
            continue
        expected = next((line.split()[0] for line in sums.splitlines()
                         if line.split()[1:] == ["install.yaml"]), None)
        actual = hashlib.sha256(response.content).hexdigest()
        if response.status_code == 200 and expected is not None and actual == expected:
            return response.content
        problems.append(f"attempt {attempt}: install.yaml ({response.status_code}, sha256 "
                        f"{actual}) does not match the published checksum {expected}")
        ctx.log(problems[-1])
    raise OperationFailed("flux", "; ".join(problems) + "; nothing was applied",
                          "retry; if it persists, check the proxy or mirror")


def _give_proxy(objects: list[dict], proxy: dict) -> None:
    """The source-controller fetches the Alga repository, so it gets the proxy: from a
    Secret, since the URL may carry the proxy password."""
    url = https.proxy_url_with_credentials(proxy)
    objects.append(cluster_objects.proxy_secret(dict(zip(PROXY_VARIABLES, (
        url, url, ",".join(proxy["no_proxy"])), strict=True))))
    from_secret = {"secretRef": {"name": cluster_objects.PROXY_SECRET}}
    for obj in objects:
        if obj.get("kind") == "Deployment" and obj["metadata"]["name"] == SOURCE_CONTROLLER:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container["env"] = [e for e in container.get("env", [])
                                    if e["name"] not in PROXY_VARIABLES]
                container["envFrom"] = [*container.get("envFrom", []), from_secret]


def _wait_for_controllers(ctx, kube: Kube, names: list[str]) -> None:
    ctx.action(f"waiting up to {CONTROLLERS_TIMEOUT:.0f} s for the Flux controllers")

    def unavailable() -> str | None:
        try:
            deployments = {d["metadata"]["name"]: d for d in
                           kube.list("deployments", alga.FLUX_NAMESPACE)}
        except KubeError as exc:
            ctx.log(str(exc))
            deployments = {}
        return ", ".join(n for n in names if not _available(deployments.get(n))) or None

    try:
        wait_until(unavailable, CONTROLLERS_TIMEOUT, POLL_SECONDS)
    except TimedOut as exc:
        raise OperationFailed("flux", f"Flux controllers not available within "
                              f"{exc.timeout:.0f} s: {exc.pending}",
                              f"{words.flux_logs(CONTROLLERS_DOWN)}; then retry") from exc


def _available(deployment: dict | None) -> bool:
    if deployment is None:
        return False
    wanted = deployment.get("spec", {}).get("replicas", 1)
    return deployment.get("status", {}).get("availableReplicas", 0) >= wanted
