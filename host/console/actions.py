"""What the console menu's entries do, apart from drawing: the support bundle through the
web's own request (the root oneshot behind alga-appliance-support-bundle-request.path makes
it), the token's rotation, and the real `login` for the Shell entry."""

import contextlib
import pwd
import signal
import subprocess
from pathlib import Path

from host.console import banner
from host.core import paths, spool, state, token
from host.net import addresses
from host.support import request as support_request

# The Shell entry's only program: login asks for a user and that user's password, so the
# console never hands out a shell by itself.
LOGIN_COMMAND = ("/bin/login",)
WAITING = "Waiting for the host to start the bundle..."


def bundle_progress(root: Path | None, request_id: str) -> tuple[list[str], bool]:
    """The bundle asked for as `request_id`: its progress lines, and whether it has ended."""
    status = support_request.last_status(root)
    if status is None or status["request_id"] != request_id:
        waiting = spool.waiting(spool.SUPPORT_BUNDLE, root)
        late = [waiting["message"]] if waiting and waiting["not_picked_up"] else []
        return [WAITING, *late], False
    if status["state"] == "running":
        count = f" ({status['done']} of {status['total']})" if status["total"] else ""
        return [f"Making the bundle: {status['step']}{count}"], False
    if status["state"] == "failed":
        return [f"The bundle failed: {status['error']}",
                "Next: try again; `sudo alga-appliance support-bundle -o /tmp` (in the Shell)"
                " writes it elsewhere."], True
    return fetch_lines(status["archive"], status["size_bytes"]), True


def fetch_lines(name: str, size: int) -> list[str]:
    where = f"{paths.WEB_BUNDLE_DIR}/{name}"
    ip = addresses.node_ip()
    return [f"The support bundle is ready ({size} bytes):", f"  {where}", "",
            "Fetch it either way:",
            f"- in a browser: http://{ip}:{paths.WEB_PORT}/support, then Download;",
            "- or with scp: it is readable only by the web service, so copy it in the Shell",
            f"  first:  sudo install -m 0644 {where} /tmp/",
            f"  then, on your workstation:  scp admin@{ip}:/tmp/{name} ."]


def rotate_token(root: Path | None) -> str:
    """A new token, owned as the old one was; the banner shows it at once."""
    try:
        owner = pwd.getpwuid(token.token_path(root).stat().st_uid).pw_name
    except (FileNotFoundError, KeyError):
        owner = paths.SERVICE_USER
    new = token.rotate_token(root, owner)
    with contextlib.suppress(state.StateFileInvalid):  # on the banner; the menu shows it
        banner.update(root)
    return new


def run_login() -> int:
    """The real login program on this terminal; back to the menu when it exits. Ctrl-C
    and the like go to login (and the shell after it), not to the menu waiting here."""
    keep = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # stderr on the terminal too: login asks through PAM, which prompts on stderr, and
        # the console service's stderr is the journal (the prompt went there, unseen).
        return subprocess.run(LOGIN_COMMAND, stderr=subprocess.STDOUT,
                              preexec_fn=_default_signals).returncode
    finally:
        signal.signal(signal.SIGINT, keep)


def _default_signals() -> None:
    """The console service ignores these; login and the shell it starts must not."""
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(number, signal.SIG_DFL)
