"""Readiness tiers from the cluster's own structured fields (conditions, readyReplicas,
observedGeneration), never from text. Definitions: docs/reference/alga-formats.md.

platform → core → bootstrap → login, and background beside them; fully healthy is login
and background. A background problem never takes login away.
"""

from dataclasses import dataclass, field

from host.cluster.alga import (
    ALGA_CORE,
    ALGA_SYSTEM,
    APP_NAMESPACE,
    BACKGROUND,
    BOOTSTRAP_JOB_PREFIX,
    CORE_DEPLOYMENTS,
    CORE_STATEFULSETS,
    FLUX_NAMESPACE,
    PLATFORM_KUSTOMIZATION,
    SOURCE_NAME,
)
from host.cluster.kube import KubeError
from host.core import words

TIERS = ("platform", "core", "bootstrap", "login", "background", "fully_healthy")
# Reasons Flux gives for Ready=False while it is still working rather than failed. A
# HelmRelease says SourceNotReady while its HelmChart is being made and pulled (seen from
# helm-controller v1.4 on every fresh install): a chart that cannot be pulled is reported as
# its HelmChart's own failure, so waiting on it is no failure of the release.
FLUX_IN_PROGRESS = ("Progressing", "ProgressingWithRetry", "DependencyNotReady",
                    "SourceNotReady")
# kustomize-controller's Ready=False reason while it cannot get its source's artifact. It
# says so from the moment it first sees a Kustomization whose source has not pulled yet
# ("Source artifact not found, retrying"), on every fresh install.
ARTIFACT_FAILED = "ArtifactFailed"


@dataclass
class ClusterView:
    """`kubectl get -o json` items, by kind."""

    nodes: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    statefulsets: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    gitrepositories: list[dict] = field(default_factory=list)
    ocirepositories: list[dict] = field(default_factory=list)
    kustomizations: list[dict] = field(default_factory=list)
    helmreleases: list[dict] = field(default_factory=list)
    helmrepositories: list[dict] = field(default_factory=list)
    helmcharts: list[dict] = field(default_factory=list)

    def flux_objects(self) -> dict[str, list[dict]]:
        """The Flux objects by kind, each after what it comes from (a failing source
        before the Kustomizations it fails, a chart before its release)."""
        return {"GitRepository": self.gitrepositories, "OCIRepository": self.ocirepositories,
                "Kustomization": self.kustomizations, "HelmRepository": self.helmrepositories,
                "HelmChart": self.helmcharts, "HelmRelease": self.helmreleases}


def read_view(kube) -> ClusterView:
    """What the tiers are worked out from, read from the cluster (`kube`: a cluster.kube.Kube;
    KubeError when the API does not answer)."""
    return ClusterView(
        nodes=kube.list("nodes"), deployments=kube.list("deployments", APP_NAMESPACE),
        statefulsets=kube.list("statefulsets", APP_NAMESPACE),
        jobs=kube.list("jobs", APP_NAMESPACE),
        gitrepositories=_flux_list(kube, "gitrepositories", FLUX_NAMESPACE),
        ocirepositories=_flux_list(kube, "ocirepositories", FLUX_NAMESPACE),
        kustomizations=_flux_list(kube, "kustomizations", FLUX_NAMESPACE),
        helmreleases=_flux_list(kube, "helmreleases", ALGA_SYSTEM),
        # A HelmChart lives beside the HelmRepository its release takes charts from.
        helmrepositories=_flux_list(kube, "helmrepositories", FLUX_NAMESPACE),
        helmcharts=_flux_list(kube, "helmcharts", FLUX_NAMESPACE))


def _flux_list(kube, resource: str, namespace: str) -> list[dict]:
    """Flux's objects of one kind: none yet while its CRD is not installed (k3s runs, the
    flux phase has not), which is installing, not an API that does not answer."""
    try:
        return kube.list(resource, namespace)
    except KubeError as exc:
        if exc.no_such_resource:
            return []
        raise


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str


def _named(items: list[dict], name: str) -> dict | None:
    return next((i for i in items if i["metadata"]["name"] == name), None)


def condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind),
                None)


def workload(items: list[dict], name: str) -> Verdict:
    obj, label = _named(items, name), words.label(name)
    if obj is None:
        return Verdict(False, f"{label} does not exist yet")
    status, wanted = obj.get("status", {}), obj.get("spec", {}).get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
        return Verdict(False, f"{label} is rolling out a change")
    if ready < wanted:
        return Verdict(False, f"{label}: {ready}/{wanted} ready")
    return Verdict(True, f"{label}: {ready}/{wanted} ready")


def flux_object(items: list[dict], kind: str, name: str) -> Verdict:
    """A Flux object's verdict, named as admins know it; Flux's reason and message when it
    says it is not Ready."""
    obj, label = _named(items, name), words.flux_label(kind, name)
    if obj is None:
        return Verdict(False, f"{label} does not exist yet")
    ready = condition(obj, "Ready")
    if ready is None:
        return Verdict(False, f"{label} has not reported yet")
    current = obj.get("status", {}).get("observedGeneration") == obj["metadata"].get(
        "generation")
    if ready["status"] != "True":
        return Verdict(False, f"{label} is not ready: {ready.get('reason', 'NotReady')}: "
                              f"{ready.get('message', '')}".rstrip(": "))
    if not current:
        return Verdict(False, f"{label} has not applied its latest change")
    return Verdict(True, f"{label} is ready")


def flux_failure(obj: dict, view: ClusterView) -> dict | None:
    """The Ready condition that says Flux failed `obj`, or None while it is at work. A
    Kustomization whose source has no artifact yet is waiting on that source, which reports
    its own failure if it has one."""
    ready = condition(obj, "Ready")
    if not ready or ready["status"] != "False" or ready.get("reason") in FLUX_IN_PROGRESS:
        return None
    if ready.get("reason") == ARTIFACT_FAILED and obj.get("kind") == "Kustomization":
        source_ref = obj.get("spec", {}).get("sourceRef", {})
        source = _named(view.flux_objects().get(source_ref.get("kind"), []),
                        source_ref.get("name"))
        if source is None or "artifact" not in source.get("status", {}):
            return None
    return ready


def _all(verdicts: list[Verdict]) -> Verdict:
    failing = [v.reason for v in verdicts if not v.ready]
    return Verdict(not failing, "; ".join(failing) or "; ".join(v.reason for v in verdicts))


def node_ready(view: ClusterView) -> Verdict:
    for node in view.nodes:
        ready = condition(node, "Ready")
        if ready and ready["status"] == "True":
            return Verdict(True, "the cluster node is ready")
    return Verdict(False, "the cluster node is not ready" if view.nodes
                   else "the cluster node has not registered")


def bootstrap_job(view: ClusterView) -> dict | None:
    """The newest bootstrap Job (one per Helm revision of alga-core), if any is left: by
    revision number, as r10 comes after r9 (and before it by name)."""
    revisions = {}
    for job in view.jobs:
        name = job["metadata"]["name"]
        if name.startswith(BOOTSTRAP_JOB_PREFIX) and name[len(BOOTSTRAP_JOB_PREFIX):].isdecimal():
            revisions[int(name[len(BOOTSTRAP_JOB_PREFIX):])] = job
    return revisions[max(revisions)] if revisions else None


def bootstrap(view: ClusterView, seen_before: bool) -> Verdict:
    job = bootstrap_job(view)
    if job:
        if (condition(job, "Failed") or {}).get("status") == "True":
            return Verdict(False, "the app's first-run setup failed")
        if (condition(job, "Complete") or {}).get("status") == "True":
            return Verdict(True, "the app's first-run setup completed")
        return Verdict(False, "the app's first-run setup is running")
    # The job deletes itself 300 s after finishing: then alga-core's release stands in.
    release = flux_object(view.helmreleases, "HelmRelease", "alga-core")
    if release.ready:
        return Verdict(True, "the app's first-run setup finished (the Alga web app is "
                             "installed)")
    if seen_before:
        return Verdict(True, "the app's first-run setup completed earlier")
    return Verdict(False, "the app's first-run setup has not started")


def source_kind(view: ClusterView) -> str | None:
    """The kind of the release's Flux source: what the root Kustomization reconciles from
    (an OCIRepository for an OCI release, a GitRepository for a git one). Before that
    Kustomization exists, the kind of the source that does; None while neither does."""
    sources = {"OCIRepository": view.ocirepositories, "GitRepository": view.gitrepositories}
    root = _named(view.kustomizations, SOURCE_NAME) or {}
    referenced = root.get("spec", {}).get("sourceRef", {}).get("kind")
    if referenced in sources:
        return referenced
    return next((kind for kind, items in sources.items() if _named(items, SOURCE_NAME)), None)


def release_source(view: ClusterView) -> Verdict:
    """The release's Flux source, named by its kind: both kinds carry the same name."""
    kind = source_kind(view)
    if kind is None:
        return Verdict(False, f"{words.flux_label('OCIRepository', SOURCE_NAME)} does not "
                              f"exist yet")
    return flux_object(view.flux_objects()[kind], kind, SOURCE_NAME)


def node_address(view: ClusterView) -> str | None:
    """The node's InternalIP: where host-network pods such as alga-core's server answer."""
    for node in view.nodes:
        for address in node.get("status", {}).get("addresses", []):
            if address.get("type") == "InternalIP":
                return address.get("address")
    return None


def k3s_version(view: ClusterView) -> str | None:
    """The version k3s runs, as its node reports it (kubeletVersion, e.g. v1.33.3+k3s1)."""
    for node in view.nodes:
        return node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion")
    return None


def tiers(view: ClusterView, login_probe: Verdict, bootstrap_seen: bool) -> dict[str, Verdict]:
    platform = _all([node_ready(view), release_source(view),
                     flux_object(view.kustomizations, "Kustomization", PLATFORM_KUSTOMIZATION)])
    core = _all([workload(view.statefulsets, n) for n in CORE_STATEFULSETS]
                + [workload(view.deployments, n) for n in CORE_DEPLOYMENTS])
    boot = bootstrap(view, bootstrap_seen)
    login = _all([core, boot, workload(view.deployments, ALGA_CORE), login_probe])
    background = _all([workload(view.deployments, n) for n in BACKGROUND])
    return {"platform": platform, "core": core, "bootstrap": boot, "login": login,
            "background": background, "fully_healthy": _all([login, background])}
