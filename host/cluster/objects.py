"""Every Kubernetes object the appliance creates, built as data.

Names, namespaces and intervals are the contract with the Alga repository
(shared/reference/alga-formats.md): the repository's Flux tree expects exactly these.
"""

import base64
from urllib.parse import urlsplit

FLUX_NAMESPACE = "flux-system"
ALGA_SYSTEM = "alga-system"
APP_NAMESPACE = "msp"
SOURCE_NAME = "alga-appliance"
FLUX_ROOT_PATH = "./ee/appliance/flux/base"
RELEASE_SELECTION = "appliance-release-selection"
AUTH_SECRET = "alga-psa-shared"
AUTH_KEY = "ALGA_AUTH_KEY"
RECONCILE_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
HELM_RELEASES = ("alga-core", "pgbouncer", "temporal", "email-service", "workflow-worker",
                 "temporal-worker")
# Which manifest image each release's chart runs.
RELEASE_IMAGES = {"workflow-worker": "workflowWorker", "email-service": "emailService",
                  "temporal-worker": "temporalWorker"}
LABELS = {"app.kubernetes.io/managed-by": "alga-appliance"}


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


def kustomization(requested_at: str) -> dict:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": _metadata(SOURCE_NAME, FLUX_NAMESPACE,
                              **{RECONCILE_ANNOTATION: requested_at}),
        "spec": {"interval": "5m", "path": FLUX_ROOT_PATH, "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": SOURCE_NAME}},
    }


def values_key(release: str, profile: str) -> str:
    """The ConfigMap key a HelmRelease's valuesFrom reads: its profile values file's name."""
    return f"{release}.{profile}.yaml"


def values_configmap(release: str, profile: str, values_yaml: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(f"appliance-values-{release}", ALGA_SYSTEM),
            "data": {values_key(release, profile): values_yaml}}


def runtime_values(release: str, manifest: dict, app_url: str, bootstrap_mode: str) -> dict:
    """The values the appliance sets on top of a release's profile values."""
    images = manifest["app"]["images"]
    if release == "alga-core":
        tag = {"image": {"tag": images["algaCore"]}}
        return {"setup": tag, "server": tag, "appUrl": app_url,
                "host": urlsplit(app_url).hostname, "domainSuffix": "",
                "bootstrap": {"mode": bootstrap_mode}}
    if release in RELEASE_IMAGES:
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


def release_selection(selection: dict) -> dict:
    images = selection["images"]
    data = {"releaseVersion": selection["release_version"], "channel": selection["channel"],
            "appVersion": selection["app_version"], "releaseBranch": selection["release_branch"],
            "algaCore": images["algaCore"], "workflowWorker": images["workflowWorker"],
            "emailService": images["emailService"], "temporalWorker": images["temporalWorker"]}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(RELEASE_SELECTION, ALGA_SYSTEM), "data": data}


def auth_secret(key: str) -> dict:
    """Created once: the release phase never applies it again once it exists."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(AUTH_SECRET, APP_NAMESPACE),
            "data": {AUTH_KEY: base64.b64encode(key.encode()).decode()}}
