"""The console banner: what an admin at the VT or serial console needs to start.

agetty shows /etc/issue.d/*.issue above the login prompt on tty1 and on serial gettys;
`agetty --reload` makes the waiting gettys redraw. alga-appliance-console.timer re-renders
every 15 s, so a new DHCP address or a state change shows without a reboot. The setup token
is only in that root-only file: never printed to stdout or the journal, never served.
The HTTPS address comes with the certificate's SHA-256 fingerprint, for the admin to check
against the one the browser shows before trusting it.
"""

import textwrap
from pathlib import Path

from host.core import hostcmd, paths, state, tls, token
from host.net import addresses

WIDTH = 78
HEADLINES = {
    "setup_required": "Ubuntu is installed. Appliance setup is waiting for your input.",
    "installing": "Setup is running.",
    "failed_action_required": "Setup needs your attention.",
    "ready_to_log_in": "Alga is ready: you can log in.",
    "ready_with_background_issues": "Alga is ready to log in; a background service has a "
                                    "problem.",
    "fully_healthy": "Alga is up and fully healthy.",
}


def rollup(root: Path | None) -> dict:
    """The collector's rollup; before its first run, what the install state alone says."""
    status = state.read(state.STATUS, root)
    if status:
        return status["rollup"]
    install = state.read(state.INSTALL_STATE, root)
    if install is None:
        return {"state": "setup_required", "message": "", "next_action": ""}
    if install["status"] == "failed":
        return {"state": "failed_action_required", "message": "", "next_action": ""}
    return {"state": "installing", "message": "", "next_action": ""}


def render(ips: list[str], current: dict, setup_token: str, fingerprint: str | None) -> str:
    """The banner text (agetty issue format: backslashes escaped); `fingerprint` is the
    HTTPS certificate's, None when there is no usable one."""
    page = "setup" if current["state"] in ("setup_required", "failed_action_required") \
        else "status"
    lines = ["", "Alga appliance", "==============", HEADLINES[current["state"]]]
    lines += _wrapped(current["message"])
    # Before setup the next action is to open the setup URL, which the lines below give.
    wanted = current["next_action"] and current["state"] != "setup_required"
    lines += _wrapped(f"Next: {current['next_action']}" if wanted else "")
    lines.append("")
    if ips:
        lines.append("In a browser on this network, open:")
        lines += [f"  http://{ip}:{paths.WEB_PORT}/{page}" for ip in ips]
        lines += _https_lines(ips, page, fingerprint)
        lines.append(f"Setup token: {setup_token}")
    else:
        lines += ["This node has no network address yet. Check the network cable or the VM's",
                  "network adapter. On a network without DHCP, set a static address in the",
                  "console's Network entry (or: sudo alga-appliance network set). The setup",
                  "address appears here once the node has one.",
                  f"Setup token: {setup_token}"]
    lines += ["",
              "No browser? Log in here and run:  sudo alga-appliance console",
              "Logs: journalctl -u 'alga-appliance*'  and  /var/log/alga-appliance/",
              "", ""]
    return "\n".join(lines).replace("\\", "\\\\")


def _https_lines(ips: list[str], page: str, fingerprint: str | None) -> list[str]:
    if fingerprint is None:
        return ["HTTPS is off: no usable certificate (sudo alga-appliance ensure-tls)"]
    half = len(fingerprint) // 2 + 1  # after a colon: 16 of the 32 bytes on each line
    return ["or, encrypted (the token does not cross the network in clear):",
            *[f"  https://{ip}:{paths.WEB_TLS_PORT}/{page}" for ip in ips],
            "  if the browser's certificate SHA-256 fingerprint is:",
            f"  {fingerprint[:half]}", f"  {fingerprint[half:]}"]


def _fingerprint(root: Path | None) -> str | None:
    try:
        tls.check_pair(tls.cert_path(root), tls.key_path(root))
        return tls.fingerprint(tls.cert_path(root).read_bytes())
    except (tls.CertificateProblem, OSError):  # shown on the banner as HTTPS off
        return None


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH) if text else []


def update(root: Path | None = None) -> bool:
    """Re-render the banner; True when it changed (and the gettys were told to redraw).
    A broken state file is shown on the banner (the console admin needs the setup address
    and token all the more), then raised for the caller to report."""
    broken = None
    try:
        current = rollup(root)
    except state.StateFileInvalid as exc:
        broken = exc
        current = {"state": "failed_action_required",
                   "message": f"The {exc.state.name} file {exc.path} is {exc.problem}.",
                   "next_action": exc.next_step}
    changed = _write(render(addresses.node_addresses(), current, token.read_token(root),
                            _fingerprint(root)), root)
    if broken is not None:
        raise broken
    return changed


def refresh(root: Path | None = None) -> str | None:
    """Re-render at once after the address changed (the timer would take up to 15 s): None,
    or why the banner could not be updated, for the caller to show (the timer retries)."""
    try:
        update(root)
    except (state.StateFileInvalid, token.NoValidToken, hostcmd.CommandFailed, OSError) as exc:
        return f"the console banner was not updated ({exc}); it retries within 15 s"
    return None


def _write(text: str, root: Path | None) -> bool:
    issue = paths.on_host(paths.ISSUE_FILE, root)
    if issue.exists() and issue.read_text() == text:
        return False
    issue.parent.mkdir(parents=True, exist_ok=True)
    state.write_atomically(issue, text.encode(), 0o600)
    hostcmd.run(["agetty", "--reload"])
    return True
