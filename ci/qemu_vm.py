"""A running qemu (TCG) VM for the VM test tier: the host's kernel booting an ext4 root
image, its serial console logged to a file and typed into through a socket, a VGA screen
(tty1) that QMP can capture, a reset button (QMP), one TCP port forwarded from 127.0.0.1,
and the test agent (ci/vm_agent.py) on a virtio serial port.

The guest's first NIC is `restrict=on`: it reaches nothing outside, only the forwarded port
reaches it. A second NIC can sit on a tap device (`lan_tap`) that the caller wires to a
network of its own, with no DHCP. Stdlib only.
"""

import contextlib
import itertools
import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vm_image import AGENT_PORT, Kernel

# The second NIC's MAC, by which a test finds its name in the guest.
LAN_MAC = "52:54:00:a1:9a:01"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class AgentResult:
    code: int
    stdout: str
    stderr: str


def _discard(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while connection.recv(65536):
            pass


class Vm:
    def __init__(self, image: Path, kernel: Kernel, work: Path, guest_port: int = 8080,
                 lan_tap: str | None = None):
        self.image, self.kernel, self.work = image, kernel, work
        self.guest_port, self.host_port = guest_port, free_port()
        self.lan_tap = lan_tap
        self.serial_log = work / "serial.log"
        self.serial_socket = work / "serial.sock"
        self._serial: socket.socket | None = None
        self.agent_socket = work / "agent.sock"
        self.qmp_socket = work / "qmp.sock"
        self.process: subprocess.Popen | None = None
        self._agent: socket.socket | None = None
        self._ids = itertools.count()

    def command(self) -> list[str]:
        forward = f"tcp:127.0.0.1:{self.host_port}-:{self.guest_port}"
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-smp", "2", "-m", "1536",
            "-display", "none", "-nodefaults", "-monitor", "none", "-vga", "std",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            # Everything the guest writes goes to the log, connected or not.
            "-chardev", f"socket,id=serial0,path={self.serial_socket},server=on,wait=off,"
                        f"logfile={self.serial_log}",
            "-serial", "chardev:serial0",
            "-kernel", str(self.kernel.vmlinuz), "-initrd", str(self.kernel.initrd),
            # console=ttyS0 makes systemd start serial-getty@ttyS0; getty@tty1 runs on the
            # VGA screen. Both draw /etc/issue.d.
            "-append", "root=/dev/vda rw console=ttyS0 quiet",
            "-drive", f"file={self.image},format=raw,if=virtio",
            "-netdev", f"user,id=n0,restrict=on,hostfwd={forward}",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_socket},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}",
            *self._lan_nic(),
        ]  # fmt: skip

    def _lan_nic(self) -> list[str]:
        if self.lan_tap is None:
            return []
        return ["-netdev", f"tap,id=n1,ifname={self.lan_tap},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=n1,mac={LAN_MAC},romfile="]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL,
                                        stderr=open(self.work / "qemu.log", "ab"))  # noqa: SIM115

    def stop(self) -> None:
        self._disconnect()
        if self._serial is not None:
            self._serial.close()
            self._serial = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    def serial_text(self) -> str:
        if not self.serial_log.exists():
            return ""
        return self.serial_log.read_bytes().decode("utf-8", "replace")

    def type_serial(self, text: str) -> None:
        """Type `text` on the serial console, as an admin at the VM's serial port would."""
        if self._serial is None:
            serial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            serial.connect(str(self.serial_socket))
            # What the guest writes comes here too once connected (the log has it): read
            # and drop it, or the socket fills and the guest's serial port stalls.
            threading.Thread(target=_discard, args=(serial,), daemon=True).start()
            self._serial = serial
        for char in text.encode():  # key by key: a line discipline reads what a person types
            self._serial.sendall(bytes([char]))
            time.sleep(0.01)

    def screenshot(self, png: Path) -> None:
        """The VGA screen (tty1) as a PNG, through QMP's screendump."""
        self._qmp("screendump", {"filename": str(png), "format": "png"})

    def reset(self) -> None:
        """Press the reset button: the guest restarts at once, nothing flushed or shut down,
        as after a power loss."""
        self._qmp("system_reset")

    def _qmp(self, command: str, arguments: dict | None = None) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as qmp:
            qmp.settimeout(20)
            qmp.connect(str(self.qmp_socket))
            channel = qmp.makefile("rwb", buffering=0)
            channel.readline()  # the greeting
            for request in ({"execute": "qmp_capabilities"},
                            {"execute": command, **({"arguments": arguments} if arguments
                                                    else {})}):
                channel.write(json.dumps(request).encode() + b"\n")
                while "return" not in (reply := json.loads(channel.readline())):
                    if "error" in reply:  # (events may come first)
                        raise RuntimeError(f"QMP {request['execute']}: {reply['error']}")

    def run(self, *argv: str, timeout: float = 60) -> AgentResult:
        """Run `argv` in the guest as root through the agent. Raises TimeoutError when no
        answer comes (the guest is still booting, or rebooting)."""
        request_id = next(self._ids)
        agent = self._connect()
        agent.settimeout(timeout + 5)
        agent.sendall(json.dumps({"id": request_id, "argv": list(argv),
                                  "timeout": timeout}).encode() + b"\n")
        deadline = time.monotonic() + timeout + 5
        buffered = b""
        while time.monotonic() < deadline:
            try:
                chunk = agent.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                answer = json.loads(line)
                if answer["id"] == request_id:  # earlier answers arrive late after a reboot
                    return AgentResult(answer["code"], answer["stdout"], answer["stderr"])
        self._disconnect()  # a late answer must not be read as the next request's
        raise TimeoutError(f"no answer from the guest agent to {argv}")

    def _disconnect(self) -> None:
        if self._agent is not None:
            self._agent.close()
            self._agent = None

    def _connect(self) -> socket.socket:
        if self._agent is None:
            agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
                    agent.connect(str(self.agent_socket))
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"qemu never opened {self.agent_socket}")
                time.sleep(0.2)
            self._agent = agent
        return self._agent
