"""The NoCloud autoinstall seed, built as data and checked against subiquity's schema.

The document is the contract with Ubuntu's installer, so it is assembled from the
build options and the payload's unit list as plain data, validated in code (subiquity
only warns about unknown top-level keys), and only then rendered to YAML.
"""

import shlex
from pathlib import Path

import yaml

from host.core import paths
from host.core.validation import DocumentInvalid, load_schema, validate
from host.core.version import __version__
from isobuild.errors import IsoBuildError
from isobuild.grubcfg import INSTALLED_MARKER
from isobuild.options import BuildOptions

AUTOINSTALL_SCHEMA = "external/subiquity-autoinstall-24.04.json"
MEDIUM_PAYLOAD = "/cdrom/alga"  # where the installer sees the payload directory
TARGET = "/target"  # where subiquity mounts the system being installed
# Distro packages the host code needs; everything else it uses is vendored.
# openssl makes the web service's self-signed certificate.
HOST_PACKAGES = ("python3", "python3-yaml", "python3-requests", "python3-jsonschema", "ufw",
                 "openssl")
# Inbound TCP the host firewall allows: SSH, the appliance UI (HTTP and HTTPS), and the Alga
# app (host port).
INBOUND_TCP_PORTS = (22, paths.WEB_PORT, paths.WEB_TLS_PORT, 3000)


def autoinstall(options: BuildOptions, units: list[str], enabled_units: list[str]) -> dict:
    """The `autoinstall:` mapping: `units` are installed, `enabled_units` enabled, in order."""
    doc = {
        "version": 1,
        "locale": "en_US.UTF-8",
        "keyboard": {"layout": "us"},
        "timezone": options.timezone,
        "network": _network(),
        # direct: a plain ext4 root holding /boot, where the ISO's GRUB finds the marker.
        "storage": {"layout": {"name": "direct"}},
        "ssh": {"install-server": True, "allow-pw": False},
        "packages": list(HOST_PACKAGES),
        "updates": "security",
        "user-data": _user_data(options),
        "late-commands": _late_commands(units, enabled_units),
        "shutdown": "reboot",
    }
    if options.installer_proxy:
        doc["proxy"] = options.installer_proxy
    return doc


def _network() -> dict:
    # DHCP on every wired NIC, whatever the naming scheme. Not optional: boot waits for any
    # one of them, 30 s at most (units/systemd-networkd-wait-online.service.d). On a network
    # without DHCP the admin sets a static address in the console's Network entry
    # (host/net/netconfig.py), which moves this file aside for the appliance's own.
    wired = {"dhcp4": True, "dhcp6": True}
    return {"version": 2, "ethernets": {
        "wired-en": {"match": {"name": "en*"}, **wired},
        "wired-eth": {"match": {"name": "eth*"}, **wired},
    }}


def _user_data(options: BuildOptions) -> dict:
    admin = {
        "name": options.admin_user,
        "gecos": "Alga appliance administrator",
        "groups": ["adm", "sudo"],
        "shell": "/bin/bash",
        "lock_passwd": True,
        # The password is locked, so sudo must not ask for one.
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "ssh_authorized_keys": list(options.ssh_authorized_keys),
    }
    return {"hostname": options.hostname, "disable_root": True, "users": [admin]}


def _in_target(*argv: str) -> str:
    return shlex.join(["curtin", "in-target", "--target", TARGET, "--", *argv])


def _late_commands(units: list[str], enabled_units: list[str]) -> list[str]:
    version_dir = f"{TARGET}{paths.VERSIONS_DIR}/{__version__}"
    current = paths.CURRENT_DIR
    commands = [
        shlex.join(["mkdir", "-p", version_dir]),
        shlex.join(["cp", "-R", f"{MEDIUM_PAYLOAD}/.", version_dir + "/"]),
        shlex.join(["chown", "-R", "root:root", TARGET + paths.INSTALL_DIR]),
        shlex.join(["chmod", "-R", "u+w,go-w", TARGET + paths.INSTALL_DIR]),
        # Relative, as a self-update writes it: it holds under any root (a mounted disk).
        shlex.join(["ln", "-sfn", _relative_version_link(__version__), TARGET + current]),
        _in_target("useradd", "--system", "--user-group", "--no-create-home",
                   "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                   paths.SERVICE_USER),
        # setgid: files the root phases write there stay readable by the web service's group.
        _in_target("install", "-d", "-m", "2750", "-o", "root", "-g", paths.SERVICE_USER,
                   paths.CONFIG_DIR, paths.STATE_DIR, paths.LOG_DIR),
        # The web service (group alga-appliance) drops requests here for the .path units.
        _in_target("install", "-d", "-m", "0770", "-o", "root", "-g", paths.SERVICE_USER,
                   paths.SPOOL_DIR),
        # agetty shows /etc/issue.d/*.issue; the console banner unit may only write there.
        _in_target("install", "-d", "-m", "0755", str(Path(paths.ISSUE_FILE).parent)),
        shlex.join(["ln", "-sfn", f"{current}/bin/alga-appliance", TARGET + paths.CLI_LINK]),
    ]
    # Linked through `current`, so a self-update's switch changes the units with the code.
    for parent in sorted({str(Path(unit).parent) for unit in units} - {"."}):
        commands.append(shlex.join(["mkdir", "-p", f"{TARGET}{paths.SYSTEMD_UNIT_DIR}/{parent}"]))
    for unit in units:
        commands.append(shlex.join([
            "ln", "-sfn", f"{current}/units/{unit}", f"{TARGET}{paths.SYSTEMD_UNIT_DIR}/{unit}"]))
    commands += [_in_target("systemctl", "enable", unit) for unit in enabled_units]
    # tty1 shows the console menu (alga-appliance-console@tty1, enabled above) instead.
    commands.append(_in_target("systemctl", "disable", "getty@tty1.service"))
    commands += _firewall_commands()
    # Last, so only a finished install makes the ISO's menu boot the disk instead.
    commands.append(shlex.join(["install", "-D", "-m", "0644", f"{MEDIUM_PAYLOAD}/VERSION",
                                TARGET + INSTALLED_MARKER]))
    return commands


def _relative_version_link(version: str) -> str:
    return str(Path(paths.VERSIONS_DIR, version).relative_to(Path(paths.CURRENT_DIR).parent))


def _firewall_commands() -> list[str]:
    # ufw only writes its rule files while disabled, which is all a chroot allows;
    # the rules load on the installed system's first boot.
    commands = [_in_target("ufw", "default", "deny", "incoming"),
                _in_target("ufw", "default", "allow", "outgoing")]
    commands += [_in_target("ufw", "allow", f"{port}/tcp") for port in INBOUND_TCP_PORTS]
    commands.append(shlex.join(["sed", "-i", "s/^ENABLED=.*/ENABLED=yes/",
                                f"{TARGET}/etc/ufw/ufw.conf"]))
    return commands


def check_autoinstall(doc: dict) -> None:
    """Fail the build unless `doc` is an autoinstall document subiquity 24.04 accepts."""
    known = set(load_schema(AUTOINSTALL_SCHEMA)["properties"])
    unknown = sorted(set(doc) - known)
    if unknown:
        raise IsoBuildError(f"autoinstall has unknown top-level keys {unknown}",
                            "use only keys from subiquity's 24.04 autoinstall schema")
    try:
        validate(doc, AUTOINSTALL_SCHEMA, name="autoinstall", source="generated seed")
    except DocumentInvalid as exc:
        raise IsoBuildError(str(exc), "this is a bug in the seed generator; report it") from exc


def render_user_data(doc: dict) -> bytes:
    check_autoinstall(doc)
    body = yaml.safe_dump({"autoinstall": doc}, sort_keys=False, width=4096)
    return ("#cloud-config\n" + body).encode("utf-8")


def parse_user_data(data: bytes) -> dict:
    """The `autoinstall:` mapping of a user-data file (raises ValueError if malformed)."""
    text = data.decode("utf-8")
    if not text.startswith("#cloud-config"):
        raise ValueError("user-data does not start with #cloud-config")
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or not isinstance(document.get("autoinstall"), dict):
        raise ValueError("user-data has no top-level autoinstall mapping")
    return document["autoinstall"]


META_DATA = b"instance-id: alga-appliance-installer\n"
