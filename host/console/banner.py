"""The console banner: what an admin at the VT or serial console needs to start.

agetty shows /etc/issue.d/*.issue above the login prompt on tty1 and on serial gettys;
`agetty --reload` makes the waiting gettys redraw. alga-appliance-console.timer re-renders
every 15 s, so a new DHCP address or a state change shows without a reboot; `token rotate`
re-renders it at once. The setup token is only in that root-only file: never printed to
stdout or the journal, never served. The plain HTTP links carry it (`?token=`, which the UI
moves out of the address bar), so a link copied from the screen signs in by itself.
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


def link(ip: str, page: str, setup_token: str) -> str:
    """The address of the UI's `page` that signs in with the token (at most 76 characters:
    the banner's lines stay within WIDTH)."""
    return f"http://{ip}:{paths.WEB_PORT}/{page}?token={token.for_people(setup_token)}"


def token_lines(setup_token: str) -> tuple[list[str], str | None]:
    """The grouped token and the setup link that carries it (None when the node has no
    address yet), for `token show` and the console's Token entry."""
    lines = [f"Setup token: {token.for_people(setup_token)}"]
    ips = addresses.node_addresses()
    if not ips:
        return [*lines, "No setup link: this node has no network address yet (the banner "
                        "says what to check)."], None
    # /setup whatever the state: once setup is done the UI shows the status page there.
    setup_link = link(ips[0], "setup", setup_token)
    return [*lines, f"Setup link: {setup_link}"], setup_link


def render(ips: list[str], current: dict, setup_token: str, fingerprint: str | None,
           notice: list[str] = ()) -> str:
    """The banner text (agetty issue format: backslashes escaped); `fingerprint` is the
    HTTPS certificate's, None when there is no usable one; `notice` the update notice's
    lines (notice_lines)."""
    lines = ["", "Alga appliance", "==============",
             *summary(ips, current, setup_token, fingerprint), *notice,
             "",
             "No browser? Log in here and run:  sudo alga-appliance console",
             "Logs: the Logs page, or run  sudo alga-appliance logs appliance",
             "", ""]
    return "\n".join(lines).replace("\\", "\\\\")


def summary(ips: list[str], current: dict, setup_token: str | None, fingerprint: str | None
            ) -> list[str]:
    """The state, the addresses to open and the token (None: there is no valid one): the
    banner's body, which the console menu shows above its entries too."""
    page = "setup" if current["state"] in ("setup_required", "failed_action_required") \
        else "status"
    shown = f"Setup token: {token.for_people(setup_token)}" if setup_token else \
        "Setup token: none yet (choose Token below to make one)"
    lines = [HEADLINES[current["state"]]]
    lines += _wrapped(current["message"])
    # Before setup the next action is to open the setup URL, which the lines below give.
    wanted = current["next_action"] and current["state"] != "setup_required"
    lines += _wrapped(f"Next: {current['next_action']}" if wanted else "")
    lines.append("")
    if ips:
        lines.append("In a browser on this network, open:")
        lines += [f"  {link(ip, page, setup_token)}" if setup_token else
                  f"  http://{ip}:{paths.WEB_PORT}/{page}" for ip in ips]
        lines += _https_lines(ips, page, fingerprint)
        lines.append(shown)
    else:
        lines += ["This node has no network address yet. Check the network cable or the VM's",
                  "network adapter. On a network without DHCP, set a static address in the",
                  "console's Network entry (or: sudo alga-appliance network set). The setup",
                  "address appears here once the node has one.",
                  shown]
    return lines


def _https_lines(ips: list[str], page: str, fingerprint: str | None) -> list[str]:
    if fingerprint is None:
        return ["HTTPS is off: no usable certificate (sudo alga-appliance ensure-tls)"]
    half = len(fingerprint) // 2 + 1  # after a colon: 16 of the 32 bytes on each line
    return ["or, encrypted (the token does not cross the network in clear):",
            *[f"  https://{ip}:{paths.WEB_TLS_PORT}/{page}" for ip in ips],
            "  if the browser's certificate SHA-256 fingerprint is:",
            f"  {fingerprint[:half]}", f"  {fingerprint[half:]}"]


def notice_lines(root: Path | None) -> list[str]:
    """The update notice, when the installed channel names a newer release: its headline
    and next step as written (the status page shows the same words). A broken notice file
    is named; the next check writes it again."""
    try:
        notice = state.read(state.UPDATE_NOTICE, root)
    except state.StateFileInvalid as exc:
        return ["", *_wrapped(f"The {exc.state.name} file {exc.path} is {exc.problem}. "
                              f"{exc.next_step}")]
    if notice is None or notice["headline"] is None:
        return []
    # The command on a line of its own: wrapped, it could not be typed as shown.
    return ["", *_wrapped(f"Update: {notice['headline']}"), *_wrapped(notice["next_step"]),
            f"  {notice['command']}"]


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
    current, broken = _current(root)
    changed = _write(render(addresses.node_addresses(), current, token.read_token(root),
                            _fingerprint(root), notice_lines(root)), root)
    if broken is not None:
        raise broken
    return changed


def now(root: Path | None = None) -> list[str]:
    """The banner's body as it stands now, for the console menu (a broken state file shows
    as the banner shows it)."""
    try:
        setup_token = token.read_token(root)
    except token.NoValidToken:  # the menu's Token entry makes a new one
        setup_token = None
    return [*summary(addresses.node_addresses(), _current(root)[0], setup_token,
                     _fingerprint(root)), *notice_lines(root)]


def _current(root: Path | None) -> tuple[dict, state.StateFileInvalid | None]:
    """The rollup, or one that names a broken state file (and that file's error)."""
    try:
        return rollup(root), None
    except state.StateFileInvalid as exc:
        return {"state": "failed_action_required",
                "message": f"The {exc.state.name} file {exc.path} is {exc.problem}.",
                "next_action": exc.next_step}, exc


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
