"""The netplan file `alga-appliance network set` writes, on a real systemd-networkd: in a
network namespace the test creates (its NIC ens3 one end of a veth pair), networkd runs
with what the real `netplan generate` makes of that file, and the kernel must then hold the
static addresses and the default route, and networkd's link state the DNS servers.

networkd runs in a mount namespace of its own, so the networkd files, its runtime
directory and a read-only /sys (which tells networkd that no udev runs, as in a container,
so it takes links as they are) are private to it. VLANs are left out here: this kernel may
have no 8021q module; their networkd files are checked in test_netconfig.py."""

import json
import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.network import network_host

from host import cli
from host.core import paths, token
from host.net import netconfig

NETWORKD = Path("/lib/systemd/systemd-networkd")
DEADLINE = 60  # seconds for networkd to configure the link: generous on 2 loaded cores


@pytest.fixture
def namespace():
    if not NETWORKD.exists() or shutil.which("unshare") is None:
        pytest.skip("systemd-networkd or unshare is not installed")
    name = f"alga-nd-{uuid.uuid4().hex[:8]}"
    added = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if added.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {added.stderr.strip()}")
    try:
        for argv in (["link", "set", "lo", "up"],
                     ["link", "add", "ens3", "type", "veth", "peer", "name", "pens3"],
                     ["link", "set", "pens3", "up"]):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def start_networkd(namespace: str, files: dict[str, str], work: Path, log) -> subprocess.Popen:
    """networkd in `namespace` with `files` as its /run/systemd/network; its link state is
    bind-mounted from work/netif for the test to read."""
    (work / "network").mkdir()
    for name, text in files.items():
        (work / "network" / name).write_text(text)
    netif = work / "netif"
    netif.mkdir(mode=0o755)
    shutil.chown(netif, "systemd-network", "systemd-network")
    script = "; ".join([
        "set -e",
        "mkdir -p /run/systemd/network /run/systemd/netif",
        f"mount --bind {shlex.quote(str(work / 'network'))} /run/systemd/network",
        f"mount --bind {shlex.quote(str(netif))} /run/systemd/netif",
        "mount -o remount,bind,ro /sys",
        f"exec {NETWORKD}",
    ])
    return subprocess.Popen(["ip", "netns", "exec", namespace, "unshare", "-m",
                             "--propagation", "private", "sh", "-c", script],
                            stdout=log, stderr=subprocess.STDOUT)


def ip_json(namespace: str, *argv: str) -> list:
    done = subprocess.run(["ip", "-n", namespace, "-j", *argv], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout or "[]")


def link_state(namespace: str) -> tuple[set[str], set[str]]:
    """ens3's global addresses and the default routes' gateways, as the kernel has them."""
    addresses = {f"{a['local']}/{a['prefixlen']}"
                 for link in ip_json(namespace, "address", "show", "dev", "ens3")
                 for a in link["addr_info"] if a.get("scope") == "global"}
    gateways = {route["gateway"] for family in ("-4", "-6")
                for route in ip_json(namespace, family, "route", "show", "default")
                if "gateway" in route}
    return addresses, gateways


def wait_until(done, deadline: float) -> None:
    while not done() and time.monotonic() < deadline:
        time.sleep(0.5)


def test_a_static_address_set_by_the_appliance_is_what_networkd_configures(
        namespace, tmp_path, monkeypatch):
    root = tmp_path / "root"
    network_host(root, monkeypatch, nics=("ens3",))
    token.ensure_token(root, owner=os.environ.get("USER", "root"))
    result = CliRunner().invoke(cli.main, [
        "network", "set", "--interface", "ens3", "--mode", "static",
        "--ipv4-address", "192.0.2.10/24", "--ipv4-gateway", "192.0.2.1",
        "--ipv6-address", "2001:db8::10/64", "--ipv6-gateway", "2001:db8::1",
        "--dns", "192.0.2.53, 2001:db8::53"])
    assert result.exit_code == 0, result.output
    written = paths.on_host(paths.NETPLAN_FILE, root).read_text()
    wanted = ({"192.0.2.10/24", "2001:db8::10/64"}, {"192.0.2.1", "2001:db8::1"})
    index = ip_json(namespace, "link", "show", "ens3")[0]["ifindex"]
    link_file = tmp_path / "netif" / "links" / str(index)
    with open(tmp_path / "networkd.log", "w") as log:
        networkd = start_networkd(namespace, netconfig.networkd_files(written), tmp_path, log)
        try:
            deadline = time.monotonic() + DEADLINE
            wait_until(lambda: link_state(namespace) == wanted or networkd.poll() is not None,
                       deadline)
            wait_until(lambda: link_file.exists() and "DNS=" in link_file.read_text(),
                       deadline)
            configured, dns = link_state(namespace), link_file.read_text().splitlines()
        finally:
            networkd.terminate()
            networkd.wait(timeout=30)
    said = (tmp_path / "networkd.log").read_text()
    assert configured == wanted, said
    assert "DNS=192.0.2.53 2001:db8::53" in dns, said
