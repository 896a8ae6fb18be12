"""The nspawn tier's machine (marker systemd): a Debian 12 rootfs with the appliance's payload
installed by the ISO seed's own late-commands, booted with `systemd-nspawn -b` in a network
namespace of its own (support/netlab.py), so the real units run with their real sandboxing.
Used by tests/system/test_systemd_tier.py, tests/system/test_security_tier.py and
tests/system/test_self_update_tier.py."""

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import rootfs  # ci/ (tests/conftest.py puts it on sys.path)
from late_commands import run_late_commands

from host.core import paths
from isobuild.image import IsoImage
from support.machines import extract_payload
from support.netlab import NetNamespace

# The tier's marks (its modules' pytestmark): it skips itself, saying why, where it cannot run.
NSPAWN_TIER = [pytest.mark.systemd,
               pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
               pytest.mark.skipif(shutil.which("systemd-nspawn") is None,
                                  reason="no systemd-nspawn (apt install systemd-container)")]


class Container:
    def __init__(self, root: Path, node: NetNamespace, log: Path):
        self.root, self.node, self.log = root, node, log
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.root), "-b", "--register=no",
             "--keep-unit", f"--network-namespace-path=/run/netns/{self.node.name}",
             "--resolv-conf=off",
             # The k3s phase edits the firewall (ufw) in the node's network namespace.
             "--capability=CAP_NET_ADMIN",
             "--console=pipe"], stdin=subprocess.DEVNULL,
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # nspawn asks the guest to halt
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def power_off(self) -> None:
        """A power loss: every process of the container killed at once (its init, which takes
        the whole PID namespace with it), nothing shut down; the root stays as it was."""
        init = self._init_pid()
        if init is not None:
            with contextlib.suppress(ProcessLookupError):  # gone already
                os.kill(init, signal.SIGKILL)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def enter(self, *argv: str) -> list[str]:
        """The argv that runs `argv` inside the running container, as root there."""
        return ["nsenter", "-t", str(self._init_pid()), "-a", *argv]

    def run(self, *argv: str) -> str:
        """A command's output from inside the running container (for diagnostics)."""
        init = self._init_pid()
        if init is None:
            return "(container not running)"
        done = subprocess.run(self.enter(*argv), capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr

    def journal(self) -> str:
        return self.run("journalctl", "-b", "--no-pager", "-n", "150")

    def host_pid(self, unit: str) -> int:
        """The main process of `unit`, as the host numbers it (its /proc is readable from
        here, so it can be measured without entering the container)."""
        inside = int(self.run("systemctl", "show", "--property=MainPID", "--value", unit))
        assert inside, f"{unit} has no main process:\n{self.journal()}"
        namespace = os.readlink(f"/proc/{self._init_pid()}/ns/pid")
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):  # not a process, or gone while listed
                if entry.name.isdigit() and os.readlink(entry / "ns/pid") == namespace and \
                        _pid_in_namespace(entry) == inside:
                    return int(entry.name)
        raise AssertionError(f"process {inside} of {unit} not found from the host")

    def _init_pid(self) -> int | None:
        init = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                              text=True).stdout.split()
        return int(init[0]) if init else None

    @property
    def url(self) -> str:
        return f"http://{self.node.node_address}:{paths.WEB_PORT}"

    def token(self) -> str:
        """The token as its file holds it and the console shows it: grouped by dashes."""
        return (self.root / paths.TOKEN_FILE.lstrip("/")).read_text().strip()


def _pid_in_namespace(proc: Path) -> int:
    """A process's number in its own (innermost) PID namespace."""
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise OSError("no NSpid")


@contextlib.contextmanager
def booted_appliance(iso: Path, work: Path, units: dict[str, str] | None = None,
                     node: NetNamespace | None = None) -> Iterator[Container]:
    """The appliance ISO's payload installed by its seed's late-commands into a fresh copy of
    the cached Debian 12 root (and `units`: unit files or drop-ins by their path under
    /etc/systemd/system), booted in a network namespace of its own (`node`, for one whose
    addresses the ISO had to know: default a new one)."""
    root = work / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(rootfs.rootfs_tarball())], check=True)
    payload = extract_payload(iso, work / "payload")
    (payload / "bin/alga-appliance").chmod(0o755)
    with IsoImage(iso) as image:
        run_late_commands(image.read("/nocloud/user-data"), root, payload)
    for name, text in (units or {}).items():
        unit = root / "etc/systemd/system" / name
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(text)
    (root / "etc/hostname").write_text("alga-test\n")
    with contextlib.nullcontext(node) if node else NetNamespace() as node:
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text(f"nameserver {node.host_address}\n")
        container = Container(root, node, work / "console.log")
        container.start()
        try:
            yield container
        finally:
            container.stop()


def healthz(machine: Container) -> requests.Response | None:
    """The web unit's /healthz answer when it is 200, else None (for wait_for)."""
    try:
        response = requests.get(f"{machine.url}/healthz", timeout=2)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None
