"""Every path and account the appliance uses on the host, defined once.

The installer (isobuild's autoinstall late-commands) and the host code both read these.
Host code reaches a path through `on_host`, which puts it under the root prefix
(ALGA_APPLIANCE_ROOT, default /) that tests and a mounted system move.
"""

import os
from pathlib import Path

ROOT_ENV = "ALGA_APPLIANCE_ROOT"

# --- the appliance's own ---------------------------------------------------------------
INSTALL_DIR = "/opt/alga-appliance"  # the installed versions of the appliance software
# Each version side by side (code, vendored packages, units, UI, schemas, the payload's
# build-specific files); `current` names the one in use, a relative symlink to
# versions/<version> that a self-update replaces atomically (a new link renamed over it).
# Everything else (the CLI link, the units, the state registry) reaches the payload
# through `current`, never through a version directory.
VERSIONS_DIR = "/opt/alga-appliance/versions"
CURRENT_DIR = "/opt/alga-appliance/current"
# The self-update's journal (host/update/self_update.py): the step under way, written
# before each, so the boot-time recovery can finish or undo a switch a power loss cut.
SELF_UPDATE_DIR = "/var/lib/alga-appliance/self-update"
CONFIG_DIR = "/etc/alga-appliance"  # setup inputs and config
STATE_DIR = "/var/lib/alga-appliance"  # state files and tokens
LOG_DIR = "/var/log/alga-appliance"  # phase logs and the update log
SPOOL_DIR = "/var/lib/alga-appliance/spool"  # requests from the web service to systemd
SUPPORT_DIR = "/var/lib/alga-appliance/support"  # 0700: support bundles, the newest 5 kept
WEB_BUNDLE_DIR = "/var/lib/alga-appliance/web-bundles"  # 0750 root:alga-appliance
# 0750 root:alga-appliance: the logs the web service asked the log oneshot for, redacted
WEB_LOGS_DIR = "/var/lib/alga-appliance/web-logs"
# 0700 and 0600, owned by the service user: a directory of its own, so that the web
# service, which may write nowhere else but the spool, can replace the token atomically.
TOKEN_DIR = "/var/lib/alga-appliance/token"
TOKEN_FILE = f"{TOKEN_DIR}/setup-token"
# The web service's HTTPS certificate: self-signed on first boot (ensure-tls) or the
# customer's own (tls install). The key is 0640 root:alga-appliance.
TLS_DIR = "/etc/alga-appliance/tls"
TLS_CERT = "/etc/alga-appliance/tls/cert.pem"  # the certificate, then any chain
TLS_KEY = "/etc/alga-appliance/tls/key.pem"
SETUP_LOCK = "/var/lib/alga-appliance/setup.lock"  # one setup or update at a time
UPDATE_HISTORY_LOCK = "/var/lib/alga-appliance/update-history.lock"
UPDATE_LOG = "/var/log/alga-appliance/update.log"
CLI_LINK = "/usr/local/bin/alga-appliance"
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
SERVICE_USER = "alga-appliance"  # the unprivileged user the web service runs as
# The admin account the ISO's seed creates (isobuild --admin-user, this by default; the
# payload's admin-account.json names the one built in). Setup sets its password and keys.
DEFAULT_ADMIN_USER = "alga-admin"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-alga-appliance.conf"  # before cloud-init's 50-
SSHD_CONFIG = "/etc/ssh/sshd_config"
PASSWD_FILE = "/etc/passwd"
# The console banner, shown by agetty above the login prompt on tty1 and serial consoles.
# 0600: it holds the setup token.
ISSUE_FILE = "/etc/issue.d/50-alga-appliance.issue"
WEB_PORT = 8080
WEB_TLS_PORT = 8443  # the same service over HTTPS

# --- k3s, as the k3s phase installs it -------------------------------------------------
K3S_BINARY = "/usr/local/bin/k3s"
KUBECTL_LINK = "/usr/local/bin/kubectl"  # k3s acts as kubectl under this name
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
K3S_ENV = "/etc/systemd/system/k3s.service.env"
K3S_UNIT = "/etc/systemd/system/k3s.service"
K3S_DATA_DIR = "/var/lib/rancher"
K3S_TOKENS = ("/var/lib/rancher/k3s/server/token", "/var/lib/rancher/k3s/server/node-token",
              "/var/lib/rancher/k3s/server/agent-token")

# --- DNS ---------------------------------------------------------------------------------
RESOLV_CONF = "/etc/resolv.conf"
# systemd-resolved's upstream servers (its /etc/resolv.conf names only the 127.0.0.53 stub).
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
RESOLVED_DROPIN = "/etc/systemd/resolved.conf.d/alga-appliance-dns.conf"  # custom DNS
K3S_RESOLV_CONF = "/etc/rancher/k3s/resolv.conf"  # k3s config.yaml's resolv-conf

# --- the network, as the console's Network entry sets it ------------------------------------
NETPLAN_DIR = "/etc/netplan"
NETPLAN_FILE = "/etc/netplan/50-alga-appliance.yaml"  # the appliance's: every wired NIC
# The installer's and any other netplan files, moved here so that exactly one file defines
# each interface (networkd takes one .network per link): kept for the admin to look at.
NETPLAN_ASIDE_DIR = "/etc/alga-appliance/netplan-aside"
# What a pending change replaced (the netplan files and network.json), until it is confirmed.
NETWORK_PREVIOUS_DIR = "/var/lib/alga-appliance/network-previous"
NETWORK_LOG = "/var/log/alga-appliance/network.log"  # one line per change, no secrets
NETWORK_LOCK = "/var/lib/alga-appliance/network.lock"  # apply, confirm, rollback: one at a time
ROLLBACK_UNIT = "alga-appliance-network-rollback"  # the transient timer systemd-run makes
SYS_NET = "/sys/class/net"

# --- what the host says about itself -----------------------------------------------------
OS_RELEASE = "/etc/os-release"
HOSTNAME_FILE = "/etc/hostname"
KERNEL_RELEASE = "/proc/sys/kernel/osrelease"
UPTIME = "/proc/uptime"
MEMINFO = "/proc/meminfo"


def host_root(root: Path | None = None) -> Path:
    """The root prefix: `root`, else $ALGA_APPLIANCE_ROOT, else /."""
    return Path(root) if root is not None else Path(os.environ.get(ROOT_ENV, "/"))


def on_host(path: str, root: Path | None = None) -> Path:
    """`path` (absolute, one of the above) under the root prefix."""
    return host_root(root) / path.lstrip("/")
