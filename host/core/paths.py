"""Every path and account the appliance uses on the host, defined once.

The installer (isobuild's autoinstall late-commands) and the host code both read these.
"""

INSTALL_DIR = "/opt/alga-appliance"  # code, vendored packages, units, UI, schemas
CONFIG_DIR = "/etc/alga-appliance"  # setup inputs and config
STATE_DIR = "/var/lib/alga-appliance"  # state files and tokens
LOG_DIR = "/var/log/alga-appliance"  # phase logs
SPOOL_DIR = "/var/lib/alga-appliance/spool"  # requests from the web service to systemd
SETUP_REQUEST = "setup.request"  # in SPOOL_DIR; its appearance starts the setup chain
UPDATE_REQUEST = "update.request"  # in SPOOL_DIR: an app update check or apply (web UI)
SUPPORT_DIR = "/var/lib/alga-appliance/support"  # 0700: support bundles, the newest 5 kept
TOKEN_FILE = "/var/lib/alga-appliance/setup-token"  # 0600, owned by the service user
CLI_LINK = "/usr/local/bin/alga-appliance"
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
SERVICE_USER = "alga-appliance"  # the unprivileged user the web service runs as
# The console banner, shown by agetty above the login prompt on tty1 and serial consoles.
# 0600: it holds the setup token.
ISSUE_FILE = "/etc/issue.d/50-alga-appliance.issue"
WEB_PORT = 8080
