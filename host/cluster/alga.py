"""What Alga's Flux tree deploys and expects, by name: namespaces, the objects the appliance
creates for it, its Helm releases and workloads, and which of them are background services.
The contract with the Alga repository (docs/reference/alga-formats.md), declared once."""

FLUX_NAMESPACE = "flux-system"
ALGA_SYSTEM = "alga-system"  # the Helm releases and the appliance's ConfigMaps
APP_NAMESPACE = "msp"  # the app's workloads
SOURCE_NAME = "alga-appliance"  # the Flux source and the root Kustomization
PLATFORM_KUSTOMIZATION = "alga-platform"
# The child Kustomization that applies the background services' Helm releases.
BACKGROUND_KUSTOMIZATION = "alga-background"
FLUX_ROOT_PATH = "./ee/appliance/flux/base"  # in the git repository
OCI_ROOT_PATH = "./base"  # in the OCI config bundle, pushed from ee/appliance/flux/
RELEASE_SELECTION = "appliance-release-selection"
AUTH_SECRET = "alga-psa-shared"
AUTH_KEY = "ALGA_AUTH_KEY"
RECONCILE_ANNOTATION = "reconcile.fluxcd.io/requestedAt"

HELM_RELEASES = ("alga-core", "pgbouncer", "temporal", "email-service", "workflow-worker",
                 "temporal-worker")
# Which release manifest image each release's chart runs.
RELEASE_IMAGES = {"workflow-worker": "workflowWorker", "email-service": "emailService",
                  "temporal-worker": "temporalWorker"}
IMAGES = ("algaCore", "workflowWorker", "emailService", "temporalWorker")

CORE_STATEFULSETS = ("db", "redis")
CORE_DEPLOYMENTS = ("pgbouncer",)
ALGA_CORE = "alga-core-sebastian"  # the app's Deployment: login depends on it
# alga-core's server uses host networking: it answers on the node's address at this port,
# whatever the public app URL says.
APP_PORT = 3000
BOOTSTRAP_JOB_PREFIX = f"{ALGA_CORE}-bootstrap-r"
# Background services: each is a Helm release of this name running a Deployment of this
# name. A background problem never takes login away.
BACKGROUND = ("temporal", "workflow-worker", "email-service", "temporal-worker")
