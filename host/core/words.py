"""The words an admin reads for the appliance's parts, declared once.

The status collector writes these into status.json (rollup labels, tier titles, the plain
name of each blocker's component); the web status page and the console's status view show
what the snapshot says and invent no wording of their own. The Kubernetes names stay in
the snapshot as detail, one click away.

Each component is keyed by the name the cluster gives it (a workload, a Helm release, or
one of the collector's own names such as kubernetes-api), with the name of its log in
`alga-appliance logs` and on the Logs page.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    label: str  # what it is called in a sentence: "the database"
    what: str  # what it does, for the docs and the detail
    log: str | None  # its log's name (`alga-appliance logs NAME`); None: it has none


COMPONENTS = {
    "db": Component("the database", "PostgreSQL: where Alga keeps its data", "db"),
    "redis": Component("the cache", "Redis: sessions, caches and queues", "redis"),
    "pgbouncer": Component("the database connection pool",
                           "PgBouncer: shares the database's connections", "pgbouncer"),
    "alga-core-sebastian": Component("the Alga web app", "alga-core: the app you log in to",
                                     "alga-core"),
    "alga-core": Component("the Alga web app", "alga-core: the app you log in to", "alga-core"),
    "bootstrap": Component("the app's first-run setup",
                           "the bootstrap job: sets up the database on the first install",
                           "bootstrap"),
    "temporal": Component("the workflow engine", "Temporal: runs Alga's workflows", "temporal"),
    "workflow-worker": Component("background workflow service",
                                 "workflow-worker: carries out workflow steps", "workers"),
    "email-service": Component("background email service",
                               "email-service: sends and receives email", "workers"),
    "temporal-worker": Component("background job service",
                                 "temporal-worker: runs scheduled and long jobs", "workers"),
    "kubernetes-api": Component("the cluster API",
                                "k3s's Kubernetes API: how the appliance runs the app", "k3s"),
    "node": Component("this appliance's cluster node", "k3s's node: runs the app's containers",
                      "k3s"),
    "app-url": Component("the app's public address",
                         "the app URL given at setup, as seen from the appliance", None),
}
# Flux objects by kind: what each does for the app, and the controller whose log says why.
FLUX_KINDS = {
    "OCIRepository": ("the release download", "source-controller"),
    "GitRepository": ("the release download", "source-controller"),
    "HelmRepository": ("the chart download", "source-controller"),
    "HelmChart": ("the chart of {}", "source-controller"),
    "HelmRelease": ("the installation of {}", "helm-controller"),
    "Kustomization": ("the app's configuration", "kustomize-controller"),
}
# The Flux objects whose name says more than their kind.
KUSTOMIZATIONS = {"alga-platform": "the app's platform configuration",
                  "alga-background": "the background services' configuration"}

ROLLUP = {
    "setup_required": "Setup required",
    "installing": "Installing",
    "failed_action_required": "Action required",
    "ready_to_log_in": "Ready to log in",
    "ready_with_background_issues": "Ready to log in, with background issues",
    "fully_healthy": "Fully healthy",
}
# The status ladder: each tier's title and what it means, in the order shown.
TIERS = {
    "platform": ("Platform", "the appliance's system services: k3s and Flux"),
    "core": ("Core", "the database, the cache and the connection pool"),
    "bootstrap": ("Bootstrap", "first-run setup of the app"),
    "login": ("Login", "you can log in to Alga"),
    "background": ("Background", "email, workflows and other background services"),
    "fully_healthy": ("Fully healthy", "everything is running"),
}
API_DOWN = "unknown: the cluster API is not answering"
API_STARTING = "unknown: k3s is starting; the cluster API answers once it has started"


def label(component: str) -> str:
    """The component as admins know it; a name we do not know is shown as it is."""
    known = COMPONENTS.get(component)
    return known.label if known else component


def flux_label(kind: str, name: str) -> str:
    """A Flux object as admins know it: what it does for the app."""
    if kind == "Kustomization" and name in KUSTOMIZATIONS:
        return KUSTOMIZATIONS[name]
    if kind not in FLUX_KINDS:  # a kind Flux may add: shown as Kubernetes names it
        return f"{kind} {name}"
    release = name.removeprefix("alga-system-")  # a HelmChart is named after its release
    return FLUX_KINDS[kind][0].format(label(release))


def log_of(component: str) -> str | None:
    known = COMPONENTS.get(component)
    return known.log if known else None


def flux_log(kind: str) -> str:
    return FLUX_KINDS[kind][1]


def flux_logs(text: str) -> str:
    """The next step that reads Flux's controllers' logs (the one that applies the app's
    configuration first)."""
    return (f"{read_log('kustomize-controller', text)}; the other controllers' logs are "
            f"source-controller, helm-controller and notification-controller")


def read_log(log: str, text: str) -> str:
    """The next step that reads a log: on the status page, or at the appliance's shell."""
    return f"{text}: open the Logs page > {log}, or run `sudo alga-appliance logs {log}`"
