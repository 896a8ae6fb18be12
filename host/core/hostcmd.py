"""Host commands (systemctl, ufw, ...), run only from the root phase units."""

import subprocess

TIMEOUT = 300


class CommandFailed(Exception):
    pass


def run(argv: list[str], stdin: str | None = None) -> str:
    """The command's output. Secrets go in `stdin`, never in `argv` (any local user can
    read another process's arguments), and no message repeats `stdin`."""
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, encoding="utf-8",
                              errors="replace", timeout=TIMEOUT)
    except FileNotFoundError as exc:
        raise CommandFailed(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{' '.join(argv)} did not finish within {TIMEOUT} s") from exc
    if done.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def ntp_synchronized() -> bool | None:
    """Whether systemd-timesyncd (or another NTP client) keeps the clock; None when
    timedatectl cannot say (no systemd on the bus, not installed, an answer it never gives)."""
    try:
        answer = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    except CommandFailed:
        return None
    return {"yes": True, "no": False}.get(answer.strip())
