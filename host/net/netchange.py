"""Applying a network change with automatic rollback, like `netplan try`.

A change is written, applied with `netplan apply`, and kept only if confirmed within the
window (60 s). The rollback never depends on the process that applied the change: before
anything changes, a transient systemd timer is scheduled to run `alga-appliance network
rollback --if-pending`, and the change is recorded as pending in network-change.json, which
alga-appliance-network-recover.service rolls back at boot (a reboot inside the window comes
back with the previous configuration). A rollback puts back exactly the netplan files and
network.json the change replaced, kept in NETWORK_PREVIOUS_DIR until the change settles.
"""

import contextlib
import datetime
import fcntl
import shutil
from pathlib import Path

from host.core import hostcmd, paths, state
from host.net import netconfig

CONFIRM_SECONDS = 60
TIMED_OUT = "not confirmed in time"


class ChangeRefused(Exception):
    """The change was not applied (or was rolled back at once); names why and what next."""


class NothingPending(Exception):
    def __init__(self):
        super().__init__("no network change is waiting for confirmation (sudo alga-appliance "
                         "network show says what is set)")


def pending(root: Path | None = None) -> dict | None:
    change = state.read(state.NETWORK_CHANGE, root)
    return change if change and change["status"] == "pending" else None


def summary(interface: str, settings: dict) -> str:
    """The change in one line, as the journal and the console's review say it."""
    words = [interface if "vlan" not in settings else f"{interface} VLAN {settings['vlan']}",
             "DHCP" if settings["mode"] == "dhcp" else "static"]
    words += settings.get("addresses", [])
    words += [f"gateway {settings[key]}" for key in ("gateway4", "gateway6") if key in settings]
    if settings.get("dns"):
        words.append(f"DNS {', '.join(settings['dns'])}")
    return " ".join(words)


def apply(interface: str, settings: dict, root: Path | None = None,
          window: int = CONFIRM_SECONDS) -> dict:
    """Apply `settings` to `interface` and leave the change pending for `window` seconds;
    returns the pending record. Raises ChangeRefused when nothing could be applied."""
    with _locked(root):
        waiting = pending(root)
        if waiting:
            raise ChangeRefused(
                f"the change applied at {waiting['applied_at']} ({waiting['summary']}) is "
                "still waiting for confirmation: confirm it (sudo alga-appliance network "
                "confirm) or roll it back (sudo alga-appliance network rollback) first")
        wanted, text = _configuration_with(interface, settings, root)
        _keep_previous(root)
        change = _record_pending(interface, settings, window, root)
        try:
            _schedule_rollback(window)
        except hostcmd.CommandFailed as exc:
            _settle(change, "rolled_back", root, reason="the rollback timer could not be set")
            raise ChangeRefused(f"the rollback timer could not be scheduled ({exc}), so "
                                "nothing was changed: check that systemd is running "
                                "(systemctl is-system-running)") from exc
        _write_configuration(wanted, text, change["moved_aside"], root)
        _journal(root, f"applied, pending until {change['deadline']}: {change['summary']}")
        _netplan_apply_or_roll_back(root)
    return change


def confirm(root: Path | None = None) -> dict:
    """Keep the pending change: stop its rollback timer and forget what it replaced."""
    with _locked(root):
        change = pending(root)
        if change is None:
            raise NothingPending
        _stop_rollback_timer()
        return _settle(change, "confirmed", root)


def rollback(root: Path | None = None, reason: str = "rolled back by the admin",
             at_boot: bool = False) -> dict:
    """Put back what the pending change replaced and apply it. At boot, before networkd
    starts (netplan apply would wait on it), the files are only generated."""
    with _locked(root):
        return _roll_back(root, reason, at_boot)


def _roll_back(root: Path | None, reason: str, at_boot: bool) -> dict:
    change = pending(root)
    if change is None:
        raise NothingPending
    _restore_previous(change["moved_aside"], root)
    # Settled once the files are back: they are what the next boot uses, even if applying
    # them now fails (hostcmd.CommandFailed, for the caller to report).
    settled = _settle(change, "rolled_back", root, reason=reason)
    if at_boot:
        hostcmd.run(["netplan", "generate", "--root-dir", str(paths.host_root(root))])
    else:
        _stop_rollback_timer()
        hostcmd.run(["netplan", "apply"])
    return settled


def _configuration_with(interface: str, settings: dict, root: Path | None) -> tuple[dict, str]:
    """The settings with `interface` changed (those of NICs no longer there dropped) and
    their netplan file, which the real netplan must accept before anything changes."""
    interfaces = [found.name for found in netconfig.wired_interfaces(root)]
    current = netconfig.read_settings(root)["interfaces"]
    wanted = {"interfaces": {name: kept for name, kept in {**current, interface: settings}.items()
                             if name in interfaces}}
    text = netconfig.render(wanted, interfaces)
    try:
        netconfig.networkd_files(text)
    except netconfig.NetplanRefused as exc:
        raise ChangeRefused(f"netplan refused the new configuration ({exc}); nothing was "
                            "changed: send a support bundle with this message") from exc
    return wanted, text


def _record_pending(interface: str, settings: dict, window: int, root: Path | None) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    change = {"status": "pending", "interface": interface,
              "summary": summary(interface, settings), "applied_at": state.timestamp(now),
              "deadline": state.timestamp(now + datetime.timedelta(seconds=window)),
              "moved_aside": _other_netplan_files(root)}
    state.write(state.NETWORK_CHANGE, change, root)
    return change


def _netplan_apply_or_roll_back(root: Path | None) -> None:
    try:
        hostcmd.run(["netplan", "apply"])
    except hostcmd.CommandFailed as exc:
        try:
            _roll_back(root, f"netplan apply failed: {exc}", at_boot=False)
        except hostcmd.CommandFailed:
            raise ChangeRefused(f"netplan apply failed ({exc}); the previous files are back "
                                f"in {paths.NETPLAN_DIR} but could not be applied either: "
                                "reboot to use them") from exc
        raise ChangeRefused(f"netplan apply failed ({exc}); the previous configuration "
                            "was restored") from exc


@contextlib.contextmanager
def _locked(root: Path | None):
    """One of apply, confirm and rollback at a time: the timer may fire while the console
    confirms."""
    lock = paths.on_host(paths.NETWORK_LOCK, root)
    with open(lock, "a") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        yield


# --- the files ----------------------------------------------------------------------------


def _netplan_files(root: Path | None) -> list[Path]:
    return sorted(paths.on_host(paths.NETPLAN_DIR, root).glob("*.yaml"))


def _other_netplan_files(root: Path | None) -> list[str]:
    """The netplan files besides the appliance's: the installer's, cloud-init's, an admin's."""
    own = paths.on_host(paths.NETPLAN_FILE, root)
    return [f.name for f in _netplan_files(root) if f != own]


def _keep_previous(root: Path | None) -> None:
    previous = paths.on_host(paths.NETWORK_PREVIOUS_DIR, root)
    shutil.rmtree(previous, ignore_errors=True)
    (previous / "netplan").mkdir(parents=True, mode=0o700)
    previous.chmod(0o700)  # netplan files may hold Wi-Fi or 802.1X secrets
    for netplan_file in _netplan_files(root):
        shutil.copy2(netplan_file, previous / "netplan" / netplan_file.name)
    settings = state.NETWORK.path(root)
    if settings.exists():
        shutil.copy2(settings, previous / settings.name)
    state.fsync_directory(previous / "netplan")
    state.fsync_directory(previous)


def _write_configuration(wanted: dict, text: str, others: list[str], root: Path | None) -> None:
    """Move the other netplan files aside, then write the settings and the netplan file."""
    aside = paths.on_host(paths.NETPLAN_ASIDE_DIR, root)
    aside.mkdir(parents=True, exist_ok=True, mode=0o700)
    netplan_dir = paths.on_host(paths.NETPLAN_DIR, root)
    for name in others:
        (netplan_dir / name).replace(aside / name)
    state.write(state.NETWORK, wanted, root)
    netplan_dir.mkdir(parents=True, exist_ok=True)
    state.write_atomically(paths.on_host(paths.NETPLAN_FILE, root), text.encode(), 0o600)


def _restore_previous(moved_aside: list[str], root: Path | None) -> None:
    previous = paths.on_host(paths.NETWORK_PREVIOUS_DIR, root)
    for netplan_file in _netplan_files(root):
        netplan_file.unlink()
    for kept in sorted((previous / "netplan").glob("*.yaml")):
        state.write_atomically(paths.on_host(paths.NETPLAN_DIR, root) / kept.name,
                               kept.read_bytes(), kept.stat().st_mode & 0o777)
    for name in moved_aside:  # back in /etc/netplan: no second copy to confuse anyone
        (paths.on_host(paths.NETPLAN_ASIDE_DIR, root) / name).unlink(missing_ok=True)
    settings = previous / state.NETWORK.filename
    if settings.exists():
        state.write_atomically(state.NETWORK.path(root), settings.read_bytes(), state.NETWORK.mode)
    else:
        state.NETWORK.path(root).unlink(missing_ok=True)


def _settle(change: dict, status: str, root: Path | None, reason: str | None = None) -> dict:
    settled = {**change, "status": status, "settled_at": state.timestamp()}
    if reason:
        settled["reason"] = reason[:400]
    state.write(state.NETWORK_CHANGE, settled, root)
    shutil.rmtree(paths.on_host(paths.NETWORK_PREVIOUS_DIR, root), ignore_errors=True)
    said = status.replace("_", " ") + (f" ({reason})" if reason else "")
    _journal(root, f"{said}: {change['summary']}")
    return settled


def _journal(root: Path | None, line: str) -> None:
    log = paths.on_host(paths.NETWORK_LOG, root)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fp:
        fp.write(f"{state.timestamp()} {line}\n")


# --- the rollback timer -------------------------------------------------------------------


def _schedule_rollback(window: int) -> None:
    """A transient timer in systemd, so the rollback happens even if the console that
    applied the change dies or its terminal hangs up. --collect: a failed run of an earlier
    one must not block the name."""
    hostcmd.run(["systemd-run", f"--unit={paths.ROLLBACK_UNIT}", f"--on-active={window}s",
                 "--timer-property=AccuracySec=1s", "--collect",
                 "--description=Roll back an unconfirmed Alga appliance network change",
                 paths.CLI_LINK, "network", "rollback", "--if-pending", "--timed-out"])


def _stop_rollback_timer() -> None:
    # Gone already (it fired, or a reboot came between) is fine: it only acts on a pending
    # change, and the caller settles that.
    with contextlib.suppress(hostcmd.CommandFailed):
        hostcmd.run(["systemctl", "stop", f"{paths.ROLLBACK_UNIT}.timer"])
