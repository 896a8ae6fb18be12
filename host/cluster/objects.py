"""Every Kubernetes object the appliance creates, built as data, and the release's values
rendered for them (the release phase and app updates render the same way).

Names and namespaces come from host/cluster/alga.py, the contract with the Alga repository.
"""

import base64
import datetime
from urllib.parse import urlsplit

import yaml

from host.cluster.alga import (
    ALGA_SYSTEM,
    APP_NAMESPACE,
    AUTH_KEY,
    AUTH_SECRET,
    FLUX_NAMESPACE,
    FLUX_ROOT_PATH,
    OCI_ROOT_PATH,
    RECONCILE_ANNOTATION,
    RELEASE_IMAGES,
    RELEASE_SELECTION,
    SOURCE_NAME,
)

LABELS = {"app.kubernetes.io/managed-by": "alga-appliance"}
# The proxy settings Flux's source-controller reads as its environment (they may hold the
# proxy password, so never in a Deployment's plain env).
PROXY_SECRET = "alga-appliance-proxy"


def reconcile_requested_at() -> str:
    """A new value for Flux's reconcile annotation. Sub-second, as `flux reconcile` writes it:
    Flux acts only on a changed value, so two requests within a second must still differ."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _metadata(name: str, namespace: str | None = None, **annotations: str) -> dict:
    metadata = {"name": name, "labels": dict(LABELS)}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(name)}


def git_repository(repo_url: str, branch: str, requested_at: str) -> dict:
    """Flux's source for the Alga repository; `ref.branch` is always explicit (Flux's
    default is master)."""
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": _metadata(SOURCE_NAME, FLUX_NAMESPACE,
                              **{RECONCILE_ANNOTATION: requested_at}),
        "spec": {"url": repo_url, "ref": {"branch": branch}, "interval": "1m"},
    }


def oci_repository(repository: str, digest: str, requested_at: str) -> dict:
    """Flux's source for an OCI release: the config bundle, always pinned by digest."""
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": _metadata(SOURCE_NAME, FLUX_NAMESPACE,
                              **{RECONCILE_ANNOTATION: requested_at}),
        "spec": {"url": f"oci://{repository}", "ref": {"digest": digest}, "interval": "1m"},
    }


def flux_source(selection: dict, requested_at: str) -> dict:
    """The Flux source a selected release is reconciled from."""
    if selection["source"] == "oci":
        return oci_repository(selection["config"]["repository"], selection["config"]["digest"],
                              requested_at)
    return git_repository(selection["repo_url"], selection["repo_branch"], requested_at)


def kustomization(source: dict, requested_at: str) -> dict:
    """The root Kustomization, on `source` (a GitRepository or an OCIRepository)."""
    path = OCI_ROOT_PATH if source["kind"] == "OCIRepository" else FLUX_ROOT_PATH
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": _metadata(SOURCE_NAME, FLUX_NAMESPACE,
                              **{RECONCILE_ANNOTATION: requested_at}),
        "spec": {"interval": "5m", "path": path, "prune": True,
                 "sourceRef": {"kind": source["kind"], "name": SOURCE_NAME}},
    }


def values_key(release: str, profile: str) -> str:
    """The ConfigMap key a HelmRelease's valuesFrom reads: its profile values file's name."""
    return f"{release}.{profile}.yaml"


def values_configmap(release: str, profile: str, values_yaml: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(f"appliance-values-{release}", ALGA_SYSTEM),
            "data": {values_key(release, profile): values_yaml}}


def runtime_values(release: str, selection: dict, app_url: str, bootstrap_mode: str) -> dict:
    """The values the appliance sets on top of a release's profile values (an image the
    release does not name keeps the tag its profile sets)."""
    images = selection["images"]
    if release == "alga-core":
        tag = {"image": {"tag": images["algaCore"]}}
        return {"setup": tag, "server": tag, "appUrl": app_url,
                "host": urlsplit(app_url).hostname, "domainSuffix": "",
                "bootstrap": {"mode": bootstrap_mode}}
    if RELEASE_IMAGES.get(release) in images:
        return {"image": {"tag": images[RELEASE_IMAGES[release]]}}
    return {}


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it, recursively for mappings."""
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def values_configmaps(inputs: dict, selection: dict, profile_values: dict,
                      bootstrap_mode: str) -> list[dict]:
    """The appliance-values-<release> ConfigMaps: each profile's values with the runtime
    values (image tags, app URL, bootstrap mode) laid over them."""
    configmaps = []
    for release, values in profile_values.items():
        runtime = runtime_values(release, selection, inputs["app_url"], bootstrap_mode)
        rendered = yaml.safe_dump(merged(values, runtime), sort_keys=False)
        configmaps.append(values_configmap(release, selection["values_profile"], rendered))
    return configmaps


def release_selection(selection: dict) -> dict:
    """What the app reads about its own release (images it does not name are left out)."""
    data = {"releaseVersion": selection["release_version"], "channel": selection["channel"],
            "appVersion": selection["app_version"], **selection["images"]}
    if selection["source"] == "oci":
        data |= {"registryHost": selection["registry"], "repository": selection["repository"],
                 "manifestDigest": selection["manifest_digest"]}
    else:
        data["releaseBranch"] = selection["release_branch"]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(RELEASE_SELECTION, ALGA_SYSTEM), "data": data}


def auth_secret(key: str) -> dict:
    """Created once: the release phase never applies it again once it exists."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(AUTH_SECRET, APP_NAMESPACE),
            "data": {AUTH_KEY: base64.b64encode(key.encode()).decode()}}


def proxy_secret(variables: dict[str, str]) -> dict:
    """HTTPS_PROXY and the like, for a container's envFrom."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(PROXY_SECRET, FLUX_NAMESPACE),
            "data": {name: base64.b64encode(value.encode()).decode()
                     for name, value in variables.items()}}
