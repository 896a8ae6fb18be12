"""Alga-shaped Helm charts and config bundle for the real Flux tier (plain helpers): the tests'
own charts, named and laid out as docs/reference/alga-formats.md describes Alga's (release
names, namespaces, values keys, workloads, the bootstrap Job as a post-install hook), pushed
to the tests' OCI registry as Helm pushes a chart, and the config bundle's `base/` tree that
the root Kustomization reconciles. Nothing here is Alga's: the charts only create the
workloads the appliance's readiness reads.
"""

import json

import yaml

from host.cluster import alga
from support import oci

CHARTS_REPOSITORY = "nine-minds/charts"  # oci://ghcr.io/nine-minds/charts on GHCR
CHARTS_SOURCE = "alga-charts"
# What `helm push` writes (helm.sh/helm pkg/registry: ConfigMediaType, ChartLayerMediaType).
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

# HelmRelease -> (chart, Kustomization it belongs to, releases it depends on), as Alga's.
RELEASES = {
    "alga-core": ("sebastian", "core", ()),
    "pgbouncer": ("pgbouncer", "core", ("alga-core",)),
    "temporal": ("temporal", "background", ("alga-core",)),
    "email-service": ("email-service", "background", ("alga-core", "pgbouncer")),
    "workflow-worker": ("workflow-worker", "background", ("alga-core", "pgbouncer")),
    "temporal-worker": ("temporal-worker", "background", ("alga-core", "pgbouncer", "temporal")),
}
# Child Kustomization -> (path, timeout, depends on).
CHILDREN = {
    "alga-platform": ("./base/platform", "10m", None),
    "alga-core": ("./base/core", "30m", "alga-platform"),
    "alga-background": ("./base/background", "30m", "alga-core"),
}

_IMAGE = "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
# alga-core's server and its bootstrap take their tags from the keys the installer patches.
_SERVER_IMAGE = "{{ .Values.server.image.repository }}:{{ .Values.server.image.tag }}"
_REPLICAS = "{{ .Values.replicas | default 1 }}"
_WORKLOAD = """\
apiVersion: apps/v1
kind: %(kind)s
metadata:
  name: %(name)s
spec:
  %(identity)s
  replicas: %(replicas)s
  selector:
    matchLabels: {app: %(name)s}
  template:
    metadata:
      labels: {app: %(name)s}
    spec:
      containers:
        - name: main
          image: "%(image)s"
"""


def _deployment(name: str, image: str) -> str:
    return _WORKLOAD % {"kind": "Deployment", "name": name, "image": image,
                        "identity": "", "replicas": _REPLICAS}


def _stateful_set(name: str, image: str) -> str:
    return _WORKLOAD % {"kind": "StatefulSet", "name": name, "image": image,
                        "identity": f"serviceName: {name}", "replicas": 1}


# The bootstrap runs after install and after every upgrade, one Job per Helm revision; the
# alga-core Deployment would wait for its work, which is why Alga sets disableWait.
_BOOTSTRAP_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-sebastian-bootstrap-r{{ .Release.Revision }}
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: bootstrap
          image: "{{ .Values.server.image.repository }}:{{ .Values.setup.image.tag }}"
          args: ["bootstrap", "--mode={{ .Values.bootstrap.mode | default "fresh" }}"]
"""


# The database password in sebastian's default values: it lands in a Secret the chart renders
# and in Helm's own release Secret (the chart and values, gzipped and base64-encoded), as a
# real chart's secrets do; a support bundle must carry it in neither.
DB_PASSWORD = "DBPASSCANARY_flux-tier-7f3a"
_DB_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
stringData:
  password: {{ .Values.db.password | quote }}
"""


def _templates(chart: str) -> dict[str, str]:
    if chart == "sebastian":
        return {"deployment.yaml": _deployment("{{ .Release.Name }}-sebastian", _SERVER_IMAGE),
                "db.yaml": _stateful_set("db", "postgres:16"),
                "redis.yaml": _stateful_set("redis", "redis:7"),
                "bootstrap-job.yaml": _BOOTSTRAP_JOB, "db-secret.yaml": _DB_SECRET}
    return {"deployment.yaml": _deployment("{{ .Release.Name }}", _IMAGE)}


def chart_archive(chart: str, version: str, broken: bool = False) -> bytes:
    """`helm package`'s output for the chart: <chart>/Chart.yaml, values.yaml, templates/.
    A `broken` chart renders an object the API server refuses (a real InstallFailed)."""
    metadata = {"apiVersion": "v2", "name": chart, "version": version, "type": "application",
                "appVersion": version}
    values = {"replicas": 1, "image": {"repository": f"ghcr.io/nine-minds/{chart}",
                                       "tag": "latest"}}
    if chart == "sebastian":
        values.update(server={"image": {"repository": "ghcr.io/nine-minds/alga-psa-ee",
                                        "tag": "latest"}},
                      setup={"image": {"tag": "latest"}}, bootstrap={"mode": "fresh"},
                      db={"password": DB_PASSWORD})
    files = {f"{chart}/Chart.yaml": yaml.safe_dump(metadata).encode(),
             f"{chart}/values.yaml": yaml.safe_dump(values).encode()}
    templates = _templates(chart)
    if broken:
        templates["deployment.yaml"] = templates["deployment.yaml"].replace(
            f"replicas: {_REPLICAS}", "replicas: not-a-number")
    for name, text in templates.items():
        files[f"{chart}/templates/{name}"] = text.encode()
    return oci.tar_gz(files)


def chart_artifact(chart: str, version: str, broken: bool = False) -> oci.Artifact:
    """The chart as `helm push` stores it: Chart.yaml as JSON config, the archive as layer."""
    config = json.dumps({"apiVersion": "v2", "name": chart, "version": version,
                         "type": "application", "appVersion": version}).encode()
    return oci.image_manifest(oci.Blob(HELM_CONFIG_MEDIA_TYPE, config),
                              [oci.Blob(HELM_CHART_MEDIA_TYPE,
                                        chart_archive(chart, version, broken))])


def push_charts(registry, versions: dict[str, str], broken: frozenset[str] = frozenset()):
    """Push each chart at its version to <registry>/nine-minds/charts/<chart>."""
    for chart, version in versions.items():
        registry.push(f"{CHARTS_REPOSITORY}/{chart}",
                      chart_artifact(chart, version, chart in broken), version)


def _yaml(*documents: dict) -> bytes:
    return yaml.safe_dump_all(documents, sort_keys=False).encode()


def _kustomization(*resources: str) -> bytes:
    return _yaml({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                  "resources": list(resources)})


def _child(name: str) -> dict:
    path, timeout, depends_on = CHILDREN[name]
    spec = {"interval": "5m", "path": path, "prune": True, "wait": True, "timeout": timeout,
            "sourceRef": {"kind": "OCIRepository", "name": alga.SOURCE_NAME}}
    if depends_on:
        spec["dependsOn"] = [{"name": depends_on}]
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": alga.FLUX_NAMESPACE}, "spec": spec}


def _helm_release(name: str, chart_versions: dict[str, str]) -> dict:
    chart, _, depends_on = RELEASES[name]
    spec = {
        "interval": "5m", "releaseName": name, "targetNamespace": alga.APP_NAMESPACE,
        "chart": {"spec": {"chart": chart, "version": chart_versions[chart],
                           "sourceRef": {"kind": "HelmRepository", "name": CHARTS_SOURCE,
                                         "namespace": alga.FLUX_NAMESPACE}}},
        "install": {"remediation": {"retries": 0}},
        "upgrade": {"remediation": {"retries": 0}},
        "valuesFrom": [{"kind": "ConfigMap", "name": f"appliance-values-{name}",
                        "valuesKey": f"{name}.single-node.yaml"}],
    }
    if name == "alga-core":  # the Deployment waits for the bootstrap hook: waiting deadlocks
        spec["install"]["disableWait"] = spec["upgrade"]["disableWait"] = True
    if depends_on:
        spec["dependsOn"] = [{"name": release} for release in depends_on]
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": alga.ALGA_SYSTEM}, "spec": spec}


def bundle_files(registry_host: str, chart_versions: dict[str, str],
                 unbuildable: bool = False) -> dict[str, bytes]:
    """The config bundle's tree (`flux push artifact` of ee/appliance/flux/): base/ with the
    namespaces, the chart source and the three child Kustomizations, each child's folder with
    its HelmReleases. An `unbuildable` bundle's core folder names a file it lacks (a real
    BuildFailed)."""
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                  for name in (alga.ALGA_SYSTEM, "appliance-system", alga.APP_NAMESPACE)]
    charts = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
              "metadata": {"name": CHARTS_SOURCE, "namespace": alga.FLUX_NAMESPACE},
              "spec": {"type": "oci", "interval": "10m",
                       "url": f"oci://{registry_host}/{CHARTS_REPOSITORY}"}}
    platform = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "alga-platform", "namespace": "appliance-system"},
                "data": {"tier": "platform"}}
    files = {
        "base/kustomization.yaml": _kustomization("namespaces.yaml", "charts.yaml",
                                                  "kustomizations.yaml"),
        "base/namespaces.yaml": _yaml(*namespaces),
        "base/charts.yaml": _yaml(charts),
        "base/kustomizations.yaml": _yaml(*(_child(name) for name in CHILDREN)),
        "base/platform/kustomization.yaml": _kustomization("platform.yaml"),
        "base/platform/platform.yaml": _yaml(platform),
        "profiles/single-node/kustomization.yaml": _kustomization("../../base"),
    }
    for folder in ("core", "background"):
        names = [name for name, (_, where, _) in RELEASES.items() if where == folder]
        resources = [f"{name}.yaml" for name in names]
        if unbuildable and folder == "core":
            resources.append("missing.yaml")
        files[f"base/{folder}/kustomization.yaml"] = _kustomization(*resources)
        for name in names:
            files[f"base/{folder}/{name}.yaml"] = _yaml(_helm_release(name, chart_versions))
    return files
