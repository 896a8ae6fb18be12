"""A machine's network as the Network entry sees it, under a test's root prefix: wired
interfaces in a stand-in /sys/class/net (what the kernel shows for a NIC: a device link, type
1, a MAC and an operstate), the installer's netplan file, and the stand-ins for netplan apply,
systemd-run and systemctl on PATH (netplan generate stays the real one)."""

import os
from pathlib import Path

from host.core import paths
from support.base import FAKES, make_host_root

# What isobuild's seed writes today: every en*/eth* NIC by DHCP.
INSTALLER_NETPLAN = """network:
  version: 2
  ethernets:
    wired:
      match:
        name: "en*"
      dhcp4: true
      dhcp6: true
"""


def add_nic(root: Path, name: str, mac: str = "52:54:00:12:34:56", link: str = "up",
            physical: bool = True) -> None:
    entry = paths.on_host(paths.SYS_NET, root) / name
    entry.mkdir(parents=True)
    if physical:
        (entry / "device").mkdir()
    (entry / "type").write_text("1\n" if name != "lo" else "772\n")
    (entry / "address").write_text(f"{mac}\n")
    (entry / "operstate").write_text(f"{link}\n")


def network_host(root: Path, monkeypatch, nics: tuple[str, ...] = ("ens3", "ens4")) -> Path:
    """`root` as an installed appliance with `nics`, and the stand-ins on PATH; returns the
    directory the stand-ins log to."""
    make_host_root(root, paths.NETPLAN_DIR)
    add_nic(root, "lo", "00:00:00:00:00:00", "unknown", physical=False)
    add_nic(root, "veth1a2b", physical=False)
    add_nic(root, "cni0")
    for index, name in enumerate(nics):
        add_nic(root, name, f"52:54:00:00:00:{index:02x}")
    installer = paths.on_host(paths.NETPLAN_DIR, root) / "50-cloud-init.yaml"
    installer.write_text(INSTALLER_NETPLAN)
    installer.chmod(0o600)
    logs = root / "fake-logs"
    logs.mkdir()
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    for tool in ("NETPLAN", "SYSTEMD_RUN", "SYSTEMCTL", "AGETTY"):
        monkeypatch.setenv(f"FAKE_{tool}_LOG", str(logs / tool.lower()))
    return logs


def logged(logs: Path, tool: str) -> list[str]:
    path = logs / tool
    return path.read_text().splitlines() if path.exists() else []
