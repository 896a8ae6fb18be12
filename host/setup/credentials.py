"""The admin account's credentials, from the setup inputs onto the host: what
alga-appliance-credentials.service runs (as root) when a setup request is taken up, before
preflight, so the admin can log in even when setup then fails.

- The password: its SHA-512 crypt hash, by `chpasswd --encrypted` with the hash on its
  standard input (never in arguments, which any local user can read). This also unlocks the
  account the seed created locked.
- The SSH keys: ~admin/.ssh/authorized_keys (directory 0700, file 0600, owned by the admin).
  Setup owns only the block between BEGIN and END; every other line (the keys the ISO was
  built with, keys the admin added) is kept, so a setup never locks out a key it did not
  write, and a second setup replaces its own keys.
- SSH password login: a drop-in that sshd reads before cloud-init's (sshd keeps the first
  value it reads), checked with `sshd -t` (put back as it was if sshd refuses it), then
  `systemctl reload ssh` when ssh is running.

Each step is idempotent and writes atomically; the first failure stops the rest and is
raised as NotApplied naming the cause and the next step.
"""

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from host.core import hostcmd, paths, sshkeys, state

BEGIN = "# BEGIN alga-appliance setup: keys from the setup wizard (setup replaces this block)"
END = "# END alga-appliance setup"
SSH_SERVICE = "ssh"


class NotApplied(Exception):
    """The credentials could not be set; the message names the cause and the next step."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str


def admin_user(root: Path | None = None) -> str:
    """The admin account's name, as the payload says the seed created it."""
    account = state.read(state.ADMIN_ACCOUNT, root)
    return account["user"] if account else paths.DEFAULT_ADMIN_USER


def run(root: Path | None = None) -> list[str]:
    """`apply`, with its outcome recorded for the run of the current install state (the
    progress views show a failure beside that run). Raises what `apply` raises."""
    install = state.read(state.INSTALL_STATE, root)
    request_id = install.get("request_id") if install else None
    try:
        done = apply(root)
    except (NotApplied, state.StateFileInvalid) as exc:
        _record(request_id, "failed", str(exc), root)
        raise
    _record(request_id, "applied", "; ".join(done), root)
    return done


def outcome(install: dict | None, root: Path | None = None) -> dict | None:
    """The recorded outcome if it belongs to the run `install` shows, else None (the unit
    has not run for it yet)."""
    record = state.read(state.ADMIN_CREDENTIALS, root)
    if not install or not record or record["request_id"] != install.get("request_id"):
        return None
    return record


def _record(request_id: str | None, result: str, message: str, root: Path | None) -> None:
    state.write(state.ADMIN_CREDENTIALS, {"request_id": request_id, "result": result,
                                          "finished_at": state.timestamp(),
                                          "message": message}, root)


def apply(root: Path | None = None) -> list[str]:
    """Set the recorded credentials on the admin account; what was done, one line each."""
    inputs = state.read(state.SETUP_INPUTS, root)
    admin = (inputs or {}).get("admin", {})
    if "password_hash" not in admin:
        raise NotApplied("the setup inputs hold no admin password: run setup again (the "
                         "web wizard or sudo alga-appliance console) and set the password")
    account = _account(admin_user(root), root)
    done = [_set_password(account, admin["password_hash"], root),
            _write_keys(account, admin["ssh_authorized_keys"], root),
            _write_sshd_dropin(admin["ssh_password_login"], root)]
    return done + _reload_ssh()


def _account(name: str, root: Path | None) -> Account:
    passwd = paths.on_host(paths.PASSWD_FILE, root)
    try:
        lines = passwd.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise NotApplied(f"cannot read {passwd} ({exc.strerror}): the admin account cannot "
                         "be found; send the support bundle to support") from exc
    for line in lines:
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == name:
            return Account(name, int(fields[2]), int(fields[3]), fields[5])
    raise NotApplied(f"the admin account {name} does not exist in {passwd}: the ISO's seed "
                     "creates it; reinstall from the appliance ISO or send the support "
                     "bundle to support")


def _set_password(account: Account, password_hash: str, root: Path | None) -> str:
    argv = ["chpasswd", "--encrypted"]
    if paths.host_root(root) != Path("/"):
        argv += ["--root", str(paths.host_root(root))]
    try:
        hostcmd.run(argv, stdin=f"{account.name}:{password_hash}\n")
    except hostcmd.CommandFailed as exc:
        raise NotApplied(f"could not set the password of {account.name} ({exc}); check "
                         "that /etc/shadow is writable and not locked by another passwd "
                         "run, then submit setup again") from exc
    return f"set the password of {account.name} (SHA-512 crypt)"


def _write_keys(account: Account, keys: list[str], root: Path | None) -> str:
    ssh_dir = paths.on_host(account.home, root) / ".ssh"
    path = ssh_dir / "authorized_keys"
    owner = (account.uid, account.gid)
    try:
        _ensure_ssh_dir(ssh_dir, owner)
        kept = _lines_outside_block(path)
        block = [BEGIN, *keys, END] if keys else []
        text = "\n".join(kept + block)
        if text or path.exists():
            state.write_atomically(path, (text + "\n" if text else "").encode(), 0o600, owner)
    except OSError as exc:
        raise NotApplied(f"could not write {path} ({exc.strerror or exc}); check the admin's "
                         "home directory, then submit setup again") from exc
    shown = ", ".join(sshkeys.parse(key).fingerprint for key in keys) or "none from setup"
    return f"SSH keys of {account.name} in {path}: {shown}; {len(kept)} other lines kept"


def _ensure_ssh_dir(ssh_dir: Path, owner: tuple[int, int]) -> None:
    """~/.ssh as a real directory, 0700, the admin's; a symbolic link is refused (root
    would write wherever it points)."""
    try:
        found = os.lstat(ssh_dir)
    except FileNotFoundError:
        ssh_dir.mkdir(mode=0o700)
        found = os.lstat(ssh_dir)
    if not stat.S_ISDIR(found.st_mode):
        raise NotApplied(f"{ssh_dir} is not a directory (a link or a file): move it aside, "
                         "then submit setup again")
    os.chown(ssh_dir, *owner, follow_symlinks=False)
    os.chmod(ssh_dir, 0o700)


def _lines_outside_block(path: Path) -> list[str]:
    """authorized_keys' lines that setup did not write."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    kept, inside = [], False
    for line in lines:
        if line == BEGIN:
            inside = True
        elif line == END and inside:
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def sshd_dropin_text(password_login: bool) -> str:
    value = "yes" if password_login else "no"
    return ("# Written by alga-appliance setup: the admin's choice of SSH password login.\n"
            "# Named to sort before cloud-init's 50-cloud-init.conf: sshd keeps the first "
            "value it reads.\n"
            f"PasswordAuthentication {value}\n"
            f"KbdInteractiveAuthentication {value}\n")


def _write_sshd_dropin(password_login: bool, root: Path | None) -> str:
    path = paths.on_host(paths.SSHD_DROPIN, root)
    try:
        before = path.read_bytes()
    except FileNotFoundError:
        before = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        state.write_atomically(path, sshd_dropin_text(password_login).encode(), 0o644)
    except OSError as exc:
        raise NotApplied(f"could not write {path} ({exc.strerror or exc}); check that /etc "
                         "is writable, then submit setup again") from exc
    refusal = _sshd_refuses(root)
    if refusal:
        if before is None:
            path.unlink()
        else:
            state.write_atomically(path, before, 0o644)
        raise NotApplied(f"sshd refuses its configuration with {path} ({refusal}); the "
                         "previous file is back. Fix /etc/ssh/sshd_config, then submit "
                         "setup again")
    return f"SSH password login {'on' if password_login else 'off'} ({path})"


def _sshd_refuses(root: Path | None) -> str | None:
    """Why `sshd -t` refuses the configuration, or None (also when sshd is not
    installed: there is nothing to check, and nothing listens)."""
    sshd = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin")
    if sshd is None:
        return None
    try:
        hostcmd.run([sshd, "-t", "-f", str(paths.on_host(paths.SSHD_CONFIG, root))])
    except hostcmd.CommandFailed as exc:
        return str(exc)
    return None


def _reload_ssh() -> list[str]:
    """Reload ssh when it runs, so the drop-in counts now; a stopped ssh reads it when it
    starts."""
    try:
        hostcmd.run(["systemctl", "is-active", "--quiet", SSH_SERVICE])
    except hostcmd.CommandFailed:
        return [f"{SSH_SERVICE} is not running: it reads the new settings when it starts"]
    try:
        hostcmd.run(["systemctl", "reload", SSH_SERVICE])
    except hostcmd.CommandFailed as exc:
        raise NotApplied(f"could not reload {SSH_SERVICE} ({exc}): run "
                         f"sudo systemctl reload {SSH_SERVICE}") from exc
    return [f"reloaded {SSH_SERVICE}"]
