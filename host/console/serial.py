"""The console menu on the kernel's serial console: the lines in
/sys/class/tty/console/active that are serial (ttyS0 on most cloud VMs; none on a VMware
VM without a serial port) each get an alga-appliance-console@ instance, which conflicts
with (and so replaces) systemd's serial-getty@ for that line. The menu's Shell entry runs
login, so the serial login is still there."""

import re
from pathlib import Path

from host.core import hostcmd, paths

ACTIVE_CONSOLES = "/sys/class/tty/console/active"
SERIAL = re.compile(r"(ttyS|ttyAMA|ttyUSB|hvc)[0-9]+")  # not tty1..: a VT has its own unit


def serial_lines(active: str) -> list[str]:
    """The serial lines named in the kernel's active console list."""
    return [name for name in active.split() if SERIAL.fullmatch(name)]


def start_consoles(root: Path | None = None) -> list[str]:
    """Start the console service on each serial console line; the lines started."""
    try:
        active = paths.on_host(ACTIVE_CONSOLES, root).read_text()
    except FileNotFoundError:  # no console list: nothing is serial
        return []
    lines = serial_lines(active)
    for line in lines:
        hostcmd.run(["systemctl", "start", "--no-block", f"alga-appliance-console@{line}.service"])
    return lines
