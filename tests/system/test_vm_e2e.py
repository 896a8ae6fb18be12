"""End to end as a customer meets the appliance, in a real VM (qemu TCG): a Debian 12 root
booted with the host's kernel, the payload installed by the ISO seed's own late-commands
(from the point the Ubuntu installer hands over). Runs in order:

0. the seed's user-data is byte for byte what the appliance ISO, booted under UEFI from
   disk, finds on its medium (the VM's ISO also pins the test host-release key and the
   registry repository, which are in the payload, not the seed);
1. the serial console and the VGA console (tty1) show the first-boot banner: an IP, the
   setup URL and a token;
2. the setup URL answers through the hostfwd on 127.0.0.1; the console's token works and a
   wrong one gets 401;
3. offline (restrict=on, no resolver), setup fails preflight cleanly: a classified failure
   through the API, and nothing on the host changed;
4. with no release source override, a fresh appliance resolves `stable` from the OCI
   source it was built with: the mirror in the guest answers as ghcr.io and its blob host
   (DNS, HTTPS with a test CA), support points only the k3s and Flux downloads at it. The
   guest reboots in the middle of the k3s phase's download; setup resumes by itself at
   boot from that phase (the phases before it skipped) and the whole unit chain succeeds,
   Flux gets the config bundle pinned by digest (objects valid against the Flux CRDs, no
   GitRepository), and /api/status rolls up;
5. after a reboot the web comes back with the state intact, nothing re-runs, and the
   banner shows the post-setup state;
6. a support bundle through the API holds neither the token nor a planted secret;
7. the shell commands of the admin, support and maintenance docs work on the appliance
   as written;
8. the tests' real OCI registry (on the site LAN) holds a signed host release of this
   working tree with a bumped version: the Updates page checks, shows it with its notes,
   applies it once the admin confirms and follows it through the web service's own restart
   to the outcome; the new version is installed, the history names the signer;
9. `alga-appliance self-update --check` and `--apply` at the shell apply a second one;
10. a third, whose /healthz fails for real, is applied: the appliance switches back by
    itself, its files and settings as before, the history says why, the old web serves;
11. a power loss (qemu's reset) in the middle of applying a fourth: after boot the
    appliance runs the old version or the new, whole, the journal gone, the history
    recording it, the web answering.

The test drives the guest only through the web API and, for what a support engineer would
do at a shell, the test agent (ci/vm_agent.py). Serial log and journal go to
test-artifacts/vm/ when a test fails.
"""

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import qemu_vm
import requests
import trustme
import vm_image
from late_commands import replay_network_and_users, run_late_commands
from playwright.sync_api import expect
from support import oci
from support import site_lan as site_lan_module
from support.answers import ADMIN, ADMIN_PASSWORD
from support.base import FAKES, ROOT
from support.browser import LAPTOP, Ui, fact
from support.docs import SHELL_DOCS, shell_blocks
from support.host_releases import REPOSITORY as HOST_REPOSITORY
from support.host_releases import tree_with_version
from support.images import TEST_OPTIONS
from support.machines import STAND_IN_STORE, assert_flux_objects_valid, extract_payload, wait_for
from support.published_host_release import publish_release
from support.registry import Registry
from support.releases import (
    CONFIG_REPOSITORY,
    K3S_BINARY_PATH,
    OCI_VERSION,
    RELEASE_REPOSITORY,
    download_routes,
    oci_release,
)
from support.site_lan import SiteLan

from host.console.banner import HEADLINES
from host.core import paths, pins, state
from host.core.paths import K3S_KUBECONFIG
from host.core.version import __version__
from host.setup import chain
from host.update import self_update
from isobuild.image import IsoImage

ARTIFACTS = ROOT / "test-artifacts" / "vm"
# The mirror answers as GitHub's stand-in and as GHCR itself, blobs from GHCR's blob host.
MIRROR_NAMES = ("github.test", "ghcr.io")
BLOB_HOST = "pkg-containers.githubusercontent.com"
# The canonical release as GHCR serves it: its manifest names ghcr.io's config repository.
CONFIG_BUNDLE, RELEASE = oci_release("ghcr.io")
# What the test adds to the guest, besides the agent: the mirror and a support engineer's
# override files, to be put in place in step 4.
TEST_FILES = "usr/local/lib/alga-test"
# While it exists the mirror holds the downloads it lists (fakes/mirror); /run is a tmpfs,
# so a reboot lets them go.
HOLD_FILE = "/run/alga-test-hold"
MIRROR_UNIT = f"""[Unit]
Description=Release sources for the VM test tier (GitHub, GHCR, DNS)
# The remote servers it stands in for do not go away when the guest shuts down: stopped
# after the setup phases, whose shutdown order is the reverse of this.
Before=alga-appliance-phase-preflight.service
[Service]
ExecStart=/usr/bin/python3 /{TEST_FILES}/mirror /{TEST_FILES}/docroot /{TEST_FILES}/cert.pem \
/{TEST_FILES}/key.pem {' '.join(MIRROR_NAMES)} --blob-host {BLOB_HOST} --hold-file {HOLD_FILE}
[Install]
WantedBy=multi-user.target
"""
# No release_source: the appliance uses the one its payload was built with.
ENDPOINTS = {"k3s_release_base": "https://github.test/k3s",
             "dockerhub_base": "https://ghcr.io",  # the mirror holds the pause image too
             "flux_release_base": "https://github.test/flux",
             "dns_names": [*MIRROR_NAMES, BLOB_HOST],
             "ca_bundle": "/etc/alga-appliance/mirror-ca.pem"}
ANSWERS = {**ADMIN, "channel": "stable"}
GUEST_ROOT = Path("/")  # the guest's own paths, whatever root prefix this process has
PLANTED_SECRET = f"K10{secrets.token_hex(24)}::server:{secrets.token_hex(16)}"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "building the guest needs root (chroot, mkfs of a root-owned tree)"
    try:
        vm_image.host_kernel()
    except FileNotFoundError as exc:
        return str(exc)
    return None


SKIP_REASON = skip_reason()
pytestmark = [pytest.mark.vm, pytest.mark.skipif(SKIP_REASON is not None,
                                                 reason=SKIP_REASON or "")]


@pytest.fixture(scope="module")
def site_lan():
    """The server VLAN on the guest's second NIC: no DHCP, the admin's workstation on it."""
    with SiteLan() as lan:
        yield lan


@pytest.fixture(scope="module")
def host_registry(site_lan, ca):
    """The tests' real OCI registry where the guest reaches it: on the host side of the
    site LAN (its blob host too), TLS from the test CA the guest trusts."""
    address = site_lan.serve_from_host()
    with Registry(ca, address=address, blob_address=address) as registry:
        yield registry


@pytest.fixture(scope="module")
def vm_appliance(replica_iso, build_appliance, signing_key, host_registry):
    """The appliance ISO as a release engineer builds it for this test's releases: the
    suite's options, pinning the test signing key and the repository on the registry."""
    options = dataclasses.replace(
        TEST_OPTIONS, host_release_keys=(str(signing_key.public),),
        host_release_repository=f"{host_registry.host}/{HOST_REPOSITORY}")
    return build_appliance(replica_iso, options, name="alga-vm.iso")


@pytest.fixture(scope="module")
def user_data(vm_appliance) -> bytes:
    with IsoImage(vm_appliance.output) as iso:
        return iso.read("/nocloud/user-data")


def mirror_docroot() -> dict[str, bytes]:
    """By path: the k3s and Flux releases, and the OCI release as a registry tree: the
    artifact tagged with its version and stable, its config bundle with its version."""
    pulled = {}  # the images preflight pulls, as multi-platform indexes
    for image in (pins.FLUX_SOURCE_CONTROLLER_IMAGE, pins.K3S_PAUSE_IMAGE):
        repository, _, tag = image.rpartition(":")
        index, platforms = oci.platform_image()
        pulled[repository] = [(index, (tag,)), *((platform, ()) for platform in platforms)]
    registry = oci.layout({RELEASE_REPOSITORY: [(RELEASE, (OCI_VERSION, "stable"))],
                           CONFIG_REPOSITORY: [(CONFIG_BUNDLE, (OCI_VERSION,))], **pulled})
    return {path: route.encoded_body()[0] for path, route in download_routes().items()} \
        | registry


def install_mirror(root: Path, ca) -> None:
    """The in-guest release sources and the files support would copy in step 4. The
    mirror's certificate is from the test CA `ca`, which the tests' registry uses too: the
    one CA support installs covers both."""
    files = root / TEST_FILES
    for path, data in mirror_docroot().items():
        target = files / "docroot" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    cert, key = ca.write_server_files(files, *MIRROR_NAMES, BLOB_HOST)
    cert.rename(files / "cert.pem")
    key.rename(files / "key.pem")
    shutil.copy(ca.ca_pem_path, files / "mirror-ca.pem")
    (files / "endpoints.json").write_text(json.dumps(ENDPOINTS))
    shutil.copy(FAKES / "mirror", files / "mirror")
    (root / "etc/systemd/system/alga-test-mirror.service").write_text(MIRROR_UNIT)
    subprocess.run(["chroot", str(root), "systemctl", "enable", "--quiet",
                    "alga-test-mirror.service"], check=True)


@pytest.fixture(scope="module")
def vm(vm_appliance, user_data, site_lan, ca, tmp_path_factory, request):
    work = tmp_path_factory.mktemp("vm")
    kernel = vm_image.host_kernel()
    root = work / "root"
    root.mkdir()
    vm_image.prepare_root(root, kernel)
    payload = extract_payload(vm_appliance.output, work / "payload")
    (payload / "bin/alga-appliance").chmod(0o755)
    run_late_commands(user_data, root, payload)
    replay_network_and_users(user_data, root)
    install_mirror(root, ca)
    image = vm_image.make_image(root, work / "root.img")
    shutil.rmtree(root)
    machine = qemu_vm.Vm(image, kernel, work, lan_tap=site_lan.tap)
    failures = request.session.testsfailed
    machine.start()
    try:
        yield machine
    finally:
        failed = request.session.testsfailed > failures
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError, RuntimeError, ValueError):  # qemu may be gone
                machine.screenshot(ARTIFACTS / "tty1.png")
        machine.stop()
        if failed:
            keep_artifacts(machine)


def keep_artifacts(machine: qemu_vm.Vm) -> None:
    shutil.copy(machine.serial_log, ARTIFACTS / "serial.log")
    shutil.rmtree(ARTIFACTS / "journal", ignore_errors=True)  # rdump makes it anew
    # -c: the image was not unmounted cleanly (qemu was stopped), so read it as it is.
    subprocess.run(["debugfs", "-c", "-R", f"rdump /var/log/journal {ARTIFACTS}",
                    str(machine.image)], capture_output=True)


def agent(machine, *argv: str, timeout: float = 60) -> str:
    result = machine.run(*argv, timeout=timeout)
    assert result.code == 0, (argv, result)
    return result.stdout


def api(machine, method: str, path: str, token: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{machine.url}{path}", timeout=30,
                            headers={"Authorization": f"Bearer {token}"}, **kwargs)


def healthz(machine) -> bool:
    try:
        return requests.get(f"{machine.url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


# The indented address lines, not the collector's "Next: open http://…" advice.
BANNER_URL = re.compile(r"(?m)^  http://(\d+\.\d+\.\d+\.\d+):8080/(setup|status)")
BANNER_TOKEN = re.compile(r"Setup token: (\S+)")


def banners(text: str) -> list[tuple[str, str, str]]:
    """(IP, page, token) of every banner agetty drew, in order."""
    return [(url[1], url[2], token[1]) for url, token in
            zip(BANNER_URL.finditer(text), BANNER_TOKEN.finditer(text), strict=False)]


@pytest.fixture(scope="module")
def console_token(vm) -> str:
    """The token as the serial console shows it, once the banner has the DHCP address."""
    first = wait_for(lambda: [b for b in banners(vm.serial_text()) if b[0] != "127.0.0.1"],
                     240, "the first-boot banner with an address on the serial console")
    return first[0][2]


def test_0_the_seed_installed_here_is_the_one_uefi_boots_from_disk(user_data, appliance_boot):
    # The Ubuntu installer would run the seed this boot found on the medium: the same bytes
    # whose late-commands built this guest.
    booted = appliance_boot("uefi", "disk")
    assert booted.done and booted.seed == "present", booted.log[-3000:]
    assert booted.userdata_sha256 == hashlib.sha256(user_data).hexdigest()


def lan_nic(machine) -> str:
    """The guest's name for its NIC on the site LAN."""
    links = json.loads(agent(machine, "ip", "-j", "link", "show"))
    return next(link["ifname"] for link in links if link.get("address") == qemu_vm.LAN_MAC)


def tty1_shows(machine, *texts: str) -> bool:
    """Whether the VGA console (tty1, agetty's screen) shows every text; /dev/vcs1 is its
    screen memory, row after row without line breaks."""
    screen = agent(machine, "cat", "/dev/vcs1")
    return all(text in screen for text in texts)


def test_1_serial_console_shows_the_first_boot_banner(vm, console_token, tmp_path):
    ip, page, token = next(b for b in banners(vm.serial_text()) if b[0] != "127.0.0.1")
    assert page == "setup"
    assert HEADLINES["setup_required"] in vm.serial_text()
    guest_addresses = agent(vm, "ip", "-4", "-o", "addr", "show", "scope", "global")
    assert f"inet {ip}/" in guest_addresses
    assert token == agent(vm, "cat", paths.TOKEN_FILE).strip()
    # And the screen a VMware console shows.
    wait_for(lambda: tty1_shows(vm, HEADLINES["setup_required"], f"http://{ip}:8080/setup",
                                f"Setup token: {token}"), 60, "the banner on tty1")
    # The second NIC is on a VLAN without DHCP: no address on it, and boot went on without:
    # waiting for the network ended when the first NIC was online.
    assert "inet " not in agent(vm, "ip", "-4", "-o", "addr", "show", "dev", lan_nic(vm))
    wait_online = agent(vm, "systemctl", "show", "--property=ActiveState,ExecStart",
                        "systemd-networkd-wait-online.service")
    assert "ActiveState=active" in wait_online and "--any --timeout=30" in wait_online
    vm.screenshot(tmp_path / "tty1.png")  # what keep_artifacts saves when a test fails
    assert (tmp_path / "tty1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_2_setup_url_answers_and_only_the_console_token_works(vm, console_token):
    wait_for(lambda: healthz(vm), 120, "the web service through the hostfwd")
    page = requests.get(f"{vm.url}/setup", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    install = api(vm, "GET", "/api/install", console_token)
    assert install.status_code == 200
    body = install.json()
    assert {key: body[key] for key in ("install", "preflight", "refused", "credentials",
                                       "waiting")} == dict.fromkeys(
        ("install", "preflight", "refused", "credentials", "waiting"))
    assert body["timing"]["steps"][0]["name"] == "preflight", body["timing"]
    assert api(vm, "GET", "/api/install", "not-" + console_token).status_code == 401


class SerialConsole:
    """The admin at the VM's serial port: types, and waits for what comes back after what
    it has already read."""

    def __init__(self, machine):
        self.machine = machine
        self.seen = len(machine.serial_text())

    def type(self, text: str) -> None:
        self.machine.type_serial(text)

    def expect(self, text: str, timeout: float = 60) -> str:
        """What the console wrote up to and including `text`, from where it was last read."""
        def found() -> int | None:
            at = self.machine.serial_text().find(text, self.seen)
            return None if at < 0 else at + len(text)
        end = wait_for(found, timeout, f"{text!r} on the serial console")
        shown, self.seen = self.machine.serial_text()[self.seen:end], end
        return shown

    def answer(self, *replies: str) -> None:
        """Each reply at the next `[default]: ` prompt."""
        for reply in replies:
            self.expect("]: ")
            self.type(f"{reply}\r")


# The appliance's address on the site LAN, set on the console; another, never confirmed.
LAN_ADDRESS = "198.51.100.10"
UNCONFIRMED_ADDRESS = "198.51.100.20"


def setup_page_from_the_workstation(site_lan: SiteLan, address: str) -> int | None:
    """The HTTP status of the setup page at `address` from the admin's workstation on the
    site LAN; None when it cannot be reached."""
    fetch = (f"import urllib.request as r; "
             f"print(r.urlopen('http://{address}:8080/setup', timeout=5).status)")
    done = site_lan.run([sys.executable, "-c", fetch], timeout=30)
    return int(done.stdout) if done.returncode == 0 else None


def reach_the_setup_page(machine, site_lan: SiteLan, address: str) -> None:
    try:
        wait_for(lambda: setup_page_from_the_workstation(site_lan, address) == 200, 30,
                 f"the setup page at {address} from the site LAN")
    except AssertionError as exc:
        seen = {"guest": agent(machine, "sh", "-c", "ip addr; ip route; networkctl; "
                               "ufw status verbose 2>&1; ls -l /etc/netplan"),
                "workstation": site_lan.run(["sh", "-c", f"ip addr; ping -c 2 -W 1 {address}"
                                             ]).stdout}
        raise AssertionError(f"{exc}\n{json.dumps(seen, indent=1)}") from None


def network_change(machine) -> str:
    """The status of the last network change, as the guest records it."""
    return guest_json(machine, str(state.NETWORK_CHANGE.path(GUEST_ROOT)))["status"]


def test_2b_a_static_address_set_on_the_serial_console_serves_the_setup_page(vm, site_lan,
                                                                            console_token):
    nic = lan_nic(vm)
    serial = SerialConsole(vm)
    serial.type("\r")  # Enter: the menu again
    menu = serial.expect("Choose 1-")
    assert "Network" in menu
    network = menu[menu.rindex(". Network\r\n") - 1]  # not "Network diagnostics"
    # interface, mode, IPv4 address and gateway, IPv6 address and gateway, DNS, VLAN, apply
    static = (nic, "static", f"{LAN_ADDRESS}/{site_lan_module.PREFIX}", site_lan_module.GATEWAY,
              "", "", "", "", "yes")
    # Applied, then not kept: rolled back at once.
    serial.type(f"{network}\r")
    serial.expect("Interface (number or name)")
    serial.answer(*static)
    serial.expect("Keep this configuration? [y/N]")
    serial.type("n\r")
    serial.expect("Rolled back to the previous configuration.")
    assert network_change(vm) == "rolled_back"
    wait_for(lambda: "inet " not in agent(vm, "ip", "-4", "-o", "addr", "show", "dev", nic), 60,
             f"{nic} without an address again")
    # Applied again, and kept.
    serial.expect("Choose 1-")
    serial.type(f"{network}\r")
    serial.expect("Interface (number or name)")
    serial.answer(*static)
    serial.expect("Keep this configuration? [y/N]")
    # In the window, before it is kept: the admin checks the page answers at the address
    # (networkd configures it in the background once netplan apply returns).
    reach_the_setup_page(vm, site_lan, LAN_ADDRESS)
    serial.type("y\r")
    serial.expect(f"Kept: {nic} static {LAN_ADDRESS}/")
    serial.type("\r")
    menu = serial.expect("Choose 1-")
    assert f"http://{LAN_ADDRESS}:8080/setup?token={console_token}" in menu  # the banner follows
    assert network_change(vm) == "confirmed"
    assert setup_page_from_the_workstation(site_lan, LAN_ADDRESS) == 200
    assert healthz(vm)  # the first NIC kept its DHCP address: the hostfwd still answers


def test_2c_a_change_nobody_confirms_is_rolled_back_by_systemd(vm, site_lan):
    nic = lan_nic(vm)
    agent(vm, "/usr/local/bin/alga-appliance", "network", "set", "--interface", nic,
          "--mode", "static", "--ipv4-address", f"{UNCONFIRMED_ADDRESS}/{site_lan_module.PREFIX}",
          "--ipv4-gateway", site_lan_module.GATEWAY, "--timeout", "20")
    reach_the_setup_page(vm, site_lan, UNCONFIRMED_ADDRESS)
    # Nobody confirms: the timer systemd holds puts the kept address back.
    wait_for(lambda: network_change(vm) != "pending", 120, "the rollback timer")
    assert network_change(vm) == "rolled_back"

    def back() -> bool:  # the record is settled once the files are back, then applied
        addresses = agent(vm, "ip", "-4", "-o", "addr", "show", "dev", nic)
        return f"inet {LAN_ADDRESS}/" in addresses and UNCONFIRMED_ADDRESS not in addresses
    wait_for(back, 60, f"{nic} back at {LAN_ADDRESS} alone")
    assert setup_page_from_the_workstation(site_lan, LAN_ADDRESS) == 200


def host_fingerprint(machine) -> str:
    """What setup would change on the host, were it to get past preflight."""
    return agent(machine, "sh", "-c", "cat /etc/resolv.conf; ls /etc /usr/local/bin; "
                 "ls /etc/rancher /var/lib/rancher 2>&1; systemctl is-active k3s ufw")


def submit_and_settle(machine, token: str, status: str, timeout: float) -> dict:
    """/api/install once the run this setup request starts has ended with `status`."""
    previous = api(machine, "GET", "/api/install", token).json()["install"]
    response = api(machine, "POST", "/api/setup", token, json=ANSWERS)
    assert response.status_code == 202, response.text
    doc = wait_for(lambda: settled(machine, token, previous), timeout,
                   "the setup chain to settle")
    assert doc["install"]["status"] == status, json.dumps(doc, indent=1)[:4000]
    return doc


def settled(machine, token: str, previous: dict | None) -> dict | None:
    """/api/install once a run other than `previous` has succeeded or failed."""
    doc = api(machine, "GET", "/api/install", token).json()
    install = doc["install"]
    return doc if install and install != previous and \
        install["status"] in ("failed", "succeeded") else None


def reboot_in_the_k3s_download(machine, token: str) -> dict:
    """Submit setup, reboot the guest while the k3s phase downloads k3s (the mirror holds
    that download), and wait for the next boot; the install state the reboot cut short."""
    agent(machine, "sh", "-c", f"echo '{K3S_BINARY_PATH}' > {HOLD_FILE}")
    first_boot = boot_id(machine)
    response = api(machine, "POST", "/api/setup", token, json=ANSWERS)
    assert response.status_code == 202, response.text
    partial = Path(paths.K3S_BINARY).with_name(f".{Path(paths.K3S_BINARY).name}.download")
    wait_for(lambda: machine.run("test", "-e", str(partial), timeout=10).code == 0, 240,
             "the k3s phase in the middle of its download")
    install = api(machine, "GET", "/api/install", token).json()["install"]
    assert (install["status"], install["phases"]["k3s"]["state"]) == ("running", "running")
    agent(machine, "systemctl", "reboot", "--no-block")
    wait_for(lambda: boot_id(machine) not in (None, first_boot), 240,
             "the guest to boot again")
    wait_for(lambda: healthz(machine), 120, "the web service after the reboot")
    return install


def test_3_preflight_fails_cleanly_offline(vm, console_token):
    before = host_fingerprint(vm)
    doc = submit_and_settle(vm, console_token, "failed", 180)
    failure = doc["install"]["phases"]["preflight"]["failure"]
    assert failure["category"] in ("dns", "network")
    assert failure["suspected_cause"].startswith("dns.github.com: github.com does not resolve")
    assert "retry_safe" not in failure  # no longer written
    assert any(check["status"] == "fail" for check in doc["preflight"]["checks"])
    assert [doc["install"]["phases"][p]["state"] for p in chain.NAMES[1:]] \
        == ["pending"] * 4
    # The install changed nothing. The admin's credentials are set at submission, before
    # preflight and outside that promise (docs/architecture.md), so a shell is available now.
    assert doc["credentials"]["result"] == "applied", doc["credentials"]
    assert host_fingerprint(vm) == before


def test_3b_the_admin_logs_in_on_the_serial_console_with_the_password_set_in_setup(vm):
    """The password test 3 chose through the web API (as the wizard sends it); a wrong one is
    refused. The console's Shell entry runs the real login."""
    serial = SerialConsole(vm)
    serial.type("\r")
    menu = serial.expect("Choose 1-")
    shell = re.search(r"(\d+)\. Shell", menu)[1]
    serial.type(f"{shell}\r")
    serial.expect("login: ")
    serial.type(f"{paths.DEFAULT_ADMIN_USER}\r")
    serial.expect("Password: ")
    serial.type("not the admin password\r")
    serial.expect("Login incorrect", timeout=30)
    serial.expect("login: ")
    serial.type(f"{paths.DEFAULT_ADMIN_USER}\r")
    serial.expect("Password: ")
    serial.type(f"{ADMIN_PASSWORD}\r")
    serial.expect("$ ", timeout=30)  # the admin's shell
    serial.type("echo logged-in-as-$(id -un); exit\r")
    serial.expect(f"logged-in-as-{paths.DEFAULT_ADMIN_USER}")
    serial.expect("Choose 1-")  # logging out returns to the menu


def guest_json(machine, path: str) -> dict:
    return json.loads(agent(machine, "cat", path))


def test_4_a_reboot_mid_install_resumes_and_stable_resolves_from_the_oci_source(
        vm, console_token, tmp_path):
    # Built with the default release source, and nothing overrides it.
    assert guest_json(vm, str(state.RELEASE_SOURCE.path(GUEST_ROOT))) == {
        "release_source": pins.RELEASE_SOURCE}
    # What support does at the appliance's shell: point the k3s and Flux downloads and the
    # DNS checks at the mirror and trust its CA.
    agent(vm, "install", "-m", "0644", f"/{TEST_FILES}/mirror-ca.pem",
          "/etc/alga-appliance/mirror-ca.pem")
    agent(vm, "install", "-m", "0644", f"/{TEST_FILES}/endpoints.json",
          "/etc/alga-appliance/endpoints.json")
    interrupted = reboot_in_the_k3s_download(vm, console_token)
    doc = wait_for(lambda: settled(vm, console_token, None), 300,
                   "the setup resumed after the reboot to settle")
    assert doc["install"]["status"] == "succeeded", json.dumps(doc, indent=1)[:4000]
    # Resumed from the phase the reboot stopped: the ones before it were not run again.
    phases = doc["install"]["phases"]
    assert [phases[p]["state"] for p in chain.NAMES] == ["skipped"] * 2 + ["succeeded"] * 3
    assert [phases[p]["started_at"] for p in chain.NAMES[:2]] == [
        interrupted["phases"][p]["started_at"] for p in chain.NAMES[:2]]
    assert "interrupted: the machine restarted while" in agent(
        vm, "cat", "/var/log/alga-appliance/k3s.log")
    recovered = agent(vm, "journalctl", "-b", "--no-pager", "-o", "cat",
                      "-u", "alga-appliance-recover-setup.service")
    assert "setup was interrupted by a reboot in k3s" in recovered, recovered
    passed = {check["id"] for check in doc["preflight"]["checks"] if check["status"] == "pass"}
    assert {"release.token", "release.manifest", "release.config", "release.bundle"} <= passed
    assert agent(vm, "systemctl", "is-active", "k3s.service").strip() == "active"
    selected = guest_json(vm, str(state.SELECTED_RELEASE.path(GUEST_ROOT)))
    assert (selected["source"], selected["manifest_digest"], selected["release_version"]) == (
        "oci", RELEASE.digest, OCI_VERSION)
    store = guest_json(vm, f"/{STAND_IN_STORE}")
    source = store["OCIRepository/flux-system/alga-appliance"]
    assert source["spec"]["url"] == f"oci://ghcr.io/{CONFIG_REPOSITORY}"
    assert source["spec"]["ref"] == {"digest": CONFIG_BUNDLE.digest}
    root_kustomization = store["Kustomization/flux-system/alga-appliance"]["spec"]
    assert (root_kustomization["path"], root_kustomization["sourceRef"]) == (
        "./base", {"kind": "OCIRepository", "name": "alga-appliance"})
    assert not [key for key in store if key.startswith("GitRepository/")]
    assert_flux_objects_valid(store, tmp_path)

    def rolled_up():
        status = api(vm, "GET", "/api/status", console_token).json()["status"]
        return status if status and status["host"]["k3s_state"] == "active" and \
            status["install"]["status"] == "succeeded" else None
    status = wait_for(rolled_up, 90, "a status snapshot of the finished install")
    assert status["rollup"]["state"] == "installing"  # no Alga workloads in the stand-in


def boot_id(machine) -> str | None:
    try:
        return agent(machine, "cat", "/proc/sys/kernel/random/boot_id", timeout=10).strip()
    except TimeoutError:
        return None


def test_5_reboot_keeps_the_state_and_reruns_nothing(vm, console_token):
    before = api(vm, "GET", "/api/install", console_token).json()
    phase_logs = agent(vm, "sh", "-c", "sha256sum /var/log/alga-appliance/*.log")
    first_boot = boot_id(vm)
    serial_before = len(vm.serial_text())
    agent(vm, "systemctl", "reboot", "--no-block")
    wait_for(lambda: boot_id(vm) not in (None, first_boot), 240, "the guest to boot again")
    wait_for(lambda: healthz(vm), 120, "the web service after the reboot")
    after = api(vm, "GET", "/api/install", console_token).json()
    # timing reads the clock (its "now", a running app step's elapsed time): the rest is kept
    assert {**after, "timing": None} == {**before, "timing": None}
    assert [s["finished_at"] for s in after["timing"]["steps"] if s["stage"] == "host"] == [
        s["finished_at"] for s in before["timing"]["steps"] if s["stage"] == "host"]
    assert agent(vm, "sh", "-c", "sha256sum /var/log/alga-appliance/*.log") == phase_logs
    started = agent(vm, "journalctl", "-b", "--no-pager", "-o", "cat",
                    "-u", "alga-appliance-phase-*", "-u", "alga-appliance-setup-request.service")
    assert "Starting" not in started, started
    wait_for(lambda: [b for b in banners(vm.serial_text()[serial_before:])
                      if b[1:] == ("status", console_token)], 120, "the post-setup banner")
    after_reboot = vm.serial_text()[serial_before:]
    assert HEADLINES["installing"] in after_reboot
    wait_for(lambda: tty1_shows(vm, ":8080/status", f"Setup token: {console_token}"), 60,
             "the post-setup banner on tty1")
    # k3s starting again after the boot is no fault: never "needs your attention".
    assert HEADLINES["failed_action_required"] not in after_reboot


def test_6_support_bundle_holds_neither_token_nor_planted_secret(vm, console_token):
    # A k3s server token on the host, and the same value in a log the bundle collects.
    agent(vm, "sh", "-c", "mkdir -p /var/lib/rancher/k3s/server && "
          f"echo '{PLANTED_SECRET}' > /var/lib/rancher/k3s/server/token && "
          f"echo 'joined with token {PLANTED_SECRET}' > /var/log/alga-appliance/canary.log")
    response = api(vm, "POST", "/api/support-bundle", console_token)
    assert response.status_code == 202, response.text

    def finished():
        status = api(vm, "GET", "/api/support-bundle", console_token).json()["status"]
        return status if status and status["state"] != "running" else None
    status = wait_for(finished, 180, "the support bundle")
    assert status["state"] == "succeeded", status
    archive = api(vm, "GET", "/api/support-bundle/download", console_token,
                  params={"name": status["archive"]})
    assert archive.status_code == 200 and archive.content[:2] == b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as bundle:
        members = {m.name: bundle.extractfile(m).read() for m in bundle.getmembers() if m.isfile()}
    assert any(name.endswith("logs/phases/canary.log") for name in members), sorted(members)
    for name, data in members.items():
        for secret in (console_token, PLANTED_SECRET):
            assert secret.encode() not in data, name


# What an admin or support engineer types from the docs at the appliance's shell: each
# shell block as written, with these changes (each must still apply somewhere).
AT_THE_SHELL_CHANGES = [
    (r"(?m)^sudo ", "", "the agent is root, and the guest has no sudo"),
    (r"\bless\b", "cat", "there is no terminal for a pager"),
    (r"/path/to/cluster\.kubeconfig", K3S_KUBECONFIG, "the cluster here is the appliance's"),
]


def as_typed_at_the_shell(block: str, applied: set[str], changes: list) -> str:
    for pattern, replacement, _ in changes:
        block, count = re.subn(pattern, replacement, block)
        applied.update([pattern] if count else [])
    return block


def copy_in_the_customers_certificate(vm) -> str:
    """What the admin guide's `tls install` takes: the customer's certificate and key, as an
    admin copies them to the appliance (to the shell's directory); their fingerprint."""
    issued = trustme.CA().issue_cert("psa-admin.example.com")
    pem = {"psa-admin.crt": b"".join(blob.bytes() for blob in issued.cert_chain_pems),
           "psa-admin.key": issued.private_key_pem.bytes()}
    for name, content in pem.items():
        written = vm.run("sh", "-ec", f"cat > /tmp/{name} <<'PEM'\n{content.decode()}PEM\n")
        assert written.code == 0, written
    der = ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def test_7_the_docs_shell_commands_work_on_the_appliance(vm, console_token):
    customers = copy_in_the_customers_certificate(vm)
    changes = [*AT_THE_SHELL_CHANGES,
               (r"\bens192\b", lan_nic(vm), "VMware's first NIC; here the site LAN's")]
    applied = set()
    for doc, expected in SHELL_DOCS.items():
        printed = ""
        for block in shell_blocks(ROOT / doc):
            typed = as_typed_at_the_shell(block, applied, changes)
            result = vm.run("sh", "-ec", f"cd /tmp; {typed}", timeout=180)
            assert result.code == 0, (doc, block, result)
            printed += result.stdout
        for text in expected:
            assert text in printed, (doc, text, printed[-3000:])
    assert applied == {pattern for pattern, _, _ in changes}, "a change is stale"
    # The certificate the admin guide installs is the customer's, not a self-signed one.
    assert customers in vm.run("alga-appliance", "tls", "show").stdout


# --- self-update (issue 23) -----------------------------------------------------------------

def bumped(patches: int) -> str:
    """This tree's version, `patches` patch releases later."""
    major, minor, patch = __version__.split(".")
    return f"{major}.{minor}.{int(patch) + patches}"


WEB_VERSION, CLI_VERSION, BROKEN_VERSION, RESET_VERSION = (bumped(n) for n in (1, 2, 3, 4))
WEB_NOTES = "Faster status page.\nThe Updates page shows these notes as text."
STEP_TEXTS = """window.stepTexts = [];
new MutationObserver(() => window.stepTexts.push(
    document.querySelector("#self-update-step").textContent)).observe(
  document.querySelector("#self-update-step"), {childList: true, characterData: true,
                                                subtree: true});"""
# The steps between the snapshot and the commit, during which a power loss must be undone.
MID_APPLY = (self_update.INSTALL, self_update.SWITCH, self_update.MIGRATE,
             self_update.RESTART, self_update.HEALTH)
HEALTHZ = "/healthz"


def publish(tree: Path, host_registry, ca, signing_key, notes: Path | None = None) -> Path:
    """`tree` published to the pinned repository as the release engineer does; the output
    directory (tarball, manifest, signature)."""
    out = tree.with_name(f"{tree.name}-out")
    publish_release(tree, ca, signing_key, f"{host_registry.host}/{HOST_REPOSITORY}", out,
                    notes)
    return out


def self_update_doc(machine, token: str) -> dict:
    response = api(machine, "GET", "/api/self-update", token)
    assert response.status_code == 200, response.text
    return response.json()


def current_link(machine) -> str:
    return agent(machine, "readlink", paths.CURRENT_DIR).strip()


def versions_fingerprint(machine) -> str:
    """Every file of every installed version, with its hash: what a self-update that did not
    happen leaves as it was. Not the bytecode python3 caches beside the modules a root
    command imports for the first time (the apply itself, run from the old version)."""
    return agent(machine, "sh", "-c", f"cd {paths.VERSIONS_DIR} && ls -A && find . -type f "
                 "-not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum")


def settings_fingerprint(machine) -> str:
    """The state files nothing but an admin or a self-update changes: the configuration,
    the install state and the selected release."""
    files = " ".join(str(f.path(GUEST_ROOT)) for f in (state.INSTALL_STATE,
                                                        state.SELECTED_RELEASE))
    return agent(machine, "sh", "-c", f"find {paths.CONFIG_DIR} -type f -print0 | sort -z | "
                 f"xargs -0 sha256sum; sha256sum {files}")


def web_pid(machine) -> str:
    return agent(machine, "systemctl", "show", "--property=MainPID", "--value",
                 "alga-appliance.service").strip()


def assert_runs(machine, token: str, version: str) -> dict:
    """The appliance is on `version` (the API, `current`), no apply under way; the API's
    answer."""
    doc = self_update_doc(machine, token)
    assert (doc["installed"], doc["running"]) == (version, None), doc
    assert current_link(machine) == f"versions/{version}"
    assert machine.run("test", "-e", str(self_update.journal_path(GUEST_ROOT))).code == 1
    return doc


@pytest.fixture(scope="module")
def back_on_the_site_lan(vm):
    """Test 7 followed the admin guide's example, which moved the LAN NIC to the guide's
    address: the admin puts it back on the site LAN, where the registry is, and keeps it."""
    nic = lan_nic(vm)
    agent(vm, "alga-appliance", "network", "set", "--interface", nic, "--mode", "static",
          "--ipv4-address", f"{LAN_ADDRESS}/{site_lan_module.PREFIX}",
          "--ipv4-gateway", site_lan_module.GATEWAY, "--timeout", "120")
    wait_for(lambda: f"inet {LAN_ADDRESS}/" in agent(vm, "ip", "-4", "-o", "addr", "show",
                                                      "dev", nic), 60, f"{nic} at {LAN_ADDRESS}")
    agent(vm, "alga-appliance", "network", "confirm")
    assert network_change(vm) == "confirmed"


@pytest.mark.usefixtures("back_on_the_site_lan")
def test_8_the_updates_page_applies_a_signed_release_through_the_web_services_restart(
        vm, console_token, browser, host_registry, ca, signing_key, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text(WEB_NOTES)
    publish(tree_with_version(tmp_path, WEB_VERSION), host_registry, ca, signing_key, notes)
    pid_before = web_pid(vm)
    ui = Ui(browser, vm.url, console_token, GUEST_ROOT, LAPTOP)
    try:
        page = ui.page
        page.set_default_timeout(60_000)  # TCG: every request runs on an emulated CPU
        ui.open("/updates")
        facts = page.locator("#self-update-facts")
        expect(fact(facts, "Installed")).to_have_text(__version__)
        page.click("#self-update-check")
        offered = page.locator("#self-update-offer article")
        expect(offered).to_have_count(1, timeout=180_000)
        expect(offered.locator("h4")).to_contain_text(f"Version {WEB_VERSION}")
        expect(offered.locator(".notes")).to_have_text(WEB_NOTES)
        page.evaluate(STEP_TEXTS)
        page.click(f"#self-update-offer button[data-version='{WEB_VERSION}']")
        expect(page.locator("#self-update-yes")).to_have_text(
            f"Update {__version__} → {WEB_VERSION}")
        page.click("#self-update-yes")
        expect(page.locator("#self-update-outcome")).to_contain_text(
            f"The appliance software was updated from {__version__} to {WEB_VERSION}",
            timeout=600_000)
        expect(fact(facts, "Installed")).to_have_text(WEB_VERSION)
        ui.shot("vm-updates-self-update-applied")
        followed = page.evaluate("window.stepTexts")
    finally:
        ui.context.close()
    assert ui.errors == [], ui.errors
    # The page followed the apply's steps as the journal named them.
    assert any(text.startswith(f"Updating from {__version__} to {WEB_VERSION}: ")
               for text in followed), followed
    doc = assert_runs(vm, console_token, WEB_VERSION)
    applied = doc["history"][0]
    assert (applied["action"], applied["outcome"], applied["from_version"],
            applied["to_version"], applied["signer"]) == (
        "apply", "applied", __version__, WEB_VERSION, signing_key.fingerprint), applied
    assert web_pid(vm) != pid_before  # the web service was restarted onto the new version
    assert agent(vm, "cat", f"{paths.CURRENT_DIR}/VERSION").strip() == WEB_VERSION


@pytest.mark.usefixtures("back_on_the_site_lan")
def test_9_the_cli_checks_and_applies_a_second_release(vm, console_token, host_registry, ca,
                                                        signing_key, tmp_path):
    publish(tree_with_version(tmp_path, CLI_VERSION), host_registry, ca, signing_key)
    checked = agent(vm, "alga-appliance", "self-update", "--check", timeout=300)
    assert f"installed: {WEB_VERSION}" in checked and f"available: {CLI_VERSION}" in checked
    assert f"self-update --apply {CLI_VERSION}" in checked
    applied = agent(vm, "alga-appliance", "self-update", "--apply", CLI_VERSION, timeout=900)
    assert f"apply {WEB_VERSION} → {CLI_VERSION}: applied" in applied, applied
    assert f"signed by {signing_key.fingerprint}" in applied
    doc = assert_runs(vm, console_token, CLI_VERSION)
    assert doc["history"][0]["signer"] == signing_key.fingerprint
    # The new version and the one before it, for support's way back.
    assert agent(vm, "ls", paths.VERSIONS_DIR).split() == sorted([WEB_VERSION, CLI_VERSION])
    wait_for(lambda: healthz(vm), 120, "the web service on the new version")


def broken_tree(base: Path, version: str) -> Path:
    """This tree at `version`, its web service answering /healthz with 503: a release whose
    health check fails for real once it runs."""
    tree = tree_with_version(base, version)
    web = tree / "host/web.py"
    working = '("GET", "/healthz"): lambda environ: (200, {"status": "ok"}),'
    assert web.read_text().count(working) == 1, "the /healthz route moved: break it anew"
    web.write_text(web.read_text().replace(
        working, '("GET", "/healthz"): lambda environ: (503, {"status": "broken"}),'))
    return tree


@pytest.mark.usefixtures("back_on_the_site_lan")
def test_10_a_release_whose_health_check_fails_is_rolled_back_by_itself(
        vm, console_token, host_registry, ca, signing_key, tmp_path):
    publish(broken_tree(tmp_path, BROKEN_VERSION), host_registry, ca, signing_key)
    versions, settings = versions_fingerprint(vm), settings_fingerprint(vm)
    result = vm.run("alga-appliance", "self-update", "--apply", BROKEN_VERSION, timeout=900)
    assert result.code == 1, result
    assert f"apply {CLI_VERSION} → {BROKEN_VERSION}: rolled-back" in result.stdout, result
    wait_for(lambda: healthz(vm), 120, "the old version's web service")
    doc = assert_runs(vm, console_token, CLI_VERSION)
    entry = doc["history"][0]
    assert (entry["outcome"], entry["to_version"], entry["signer"]) == (
        "rolled-back", BROKEN_VERSION, signing_key.fingerprint), entry
    assert f"the web service did not answer http://127.0.0.1:{paths.WEB_PORT}{HEALTHZ}" \
        in entry["reason"], entry
    assert f"back on {CLI_VERSION} with its state files as they were" in entry["reason"]
    assert versions_fingerprint(vm) == versions  # the broken version's directory is gone
    assert settings_fingerprint(vm) == settings


def journal_step(machine) -> str | None:
    """The step the self-update journal names, None without one."""
    read = machine.run("cat", str(self_update.journal_path(GUEST_ROOT)), timeout=10)
    return json.loads(read.stdout)["step"] if read.code == 0 else None


def assert_whole(machine, version: str, release_out: Path) -> None:
    """Every file of `version`'s release in its directory, as the signed manifest lists it
    (but the site files and pins the installed version keeps)."""
    manifest = json.loads(next(release_out.glob("*.manifest.json")).read_text())
    kept = {*self_update.SITE_FILES, state.HOST_RELEASE_TRUST.filename}
    listed = "".join(f"{f['sha256']}  ./{f['path']}\n" for f in manifest["files"]
                     if Path(f["path"]).name not in kept)
    result = machine.run("sh", "-ec", f"cd {paths.VERSIONS_DIR}/{version}; "
                         f"sha256sum --quiet -c - <<'LIST'\n{listed}LIST\n", timeout=120)
    assert result.code == 0, result


@pytest.mark.usefixtures("back_on_the_site_lan")
def test_11_a_power_loss_mid_apply_leaves_the_old_or_the_new_version_whole(
        vm, console_token, host_registry, ca, signing_key, tmp_path):
    out = publish(tree_with_version(tmp_path, RESET_VERSION), host_registry, ca, signing_key)
    versions = versions_fingerprint(vm)
    first_boot = boot_id(vm)
    agent(vm, "systemd-run", "--unit=alga-test-self-update", "--collect",
          "/usr/local/bin/alga-appliance", "self-update", "--apply", RESET_VERSION)
    cut_at = wait_for(lambda: (step := journal_step(vm)) in MID_APPLY and step, 600,
                      "the apply in the middle of its steps")
    vm.reset()
    wait_for(lambda: boot_id(vm) not in (None, first_boot), 240, "the guest to boot again")
    wait_for(lambda: healthz(vm), 180, "the web service after the power loss")
    entry = self_update_doc(vm, console_token)["history"][0]
    assert (entry["action"], entry["to_version"]) == ("apply", RESET_VERSION), entry
    recovered = agent(vm, "journalctl", "-b", "--no-pager", "-o", "cat",
                      "-u", "alga-appliance-self-update-recover.service")
    if entry["outcome"] == "rolled-back":  # cut short before its commit: undone
        interrupted = re.match(r"interrupted during step (\w+) ", entry["reason"])
        assert interrupted, entry
        steps = [*MID_APPLY, self_update.COMMIT]
        assert steps.index(interrupted[1]) >= steps.index(cut_at), (cut_at, entry)
        assert_runs(vm, console_token, CLI_VERSION)
        assert versions_fingerprint(vm) == versions
        assert f"to {RESET_VERSION} was cut short: undone" in recovered, recovered
    else:  # the reset came as it committed: finished
        assert entry["outcome"] == "applied", entry
        assert_runs(vm, console_token, RESET_VERSION)
        assert_whole(vm, RESET_VERSION, out)
    assert agent(vm, "systemctl", "is-active", "alga-appliance.service").strip() == "active"
