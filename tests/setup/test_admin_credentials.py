"""The admin's credentials at setup (issue 20): the inputs (strength rule, confirmation,
SSH keys, hostile text), the hash that replaces the password before anything is written,
and applying them to a copied root with the real chpasswd and sshd."""

import base64
import contextlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.answers import ADMIN, ADMIN_PASSWORD
from support.base import FAKES, ROOT, make_host_root

from host.console import progress as console_progress
from host.core import passwords, paths, spool, sshkeys, state
from host.setup import credentials, request
from host.setup.inputs import InputErrors, parse_setup_inputs, without_password

NODE_IP = "10.0.0.5"


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def key_line(kind: str, *fields: bytes, comment: str = "admin@msp") -> str:
    blob = b"".join(ssh_string(f) for f in (kind.encode(), *fields))
    return f"{kind} {base64.b64encode(blob).decode()} {comment}".strip()


@pytest.fixture(scope="module")
def real_keys(tmp_path_factory) -> dict[str, str]:
    """Keys ssh-keygen made, by type, and their ssh-keygen -l lines."""
    made = {}
    for kind, bits in (("ed25519", None), ("ecdsa", "384"), ("rsa", "2048")):
        path = tmp_path_factory.mktemp("keys") / kind
        argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"ops@{kind}", "-f", str(path)]
        subprocess.run(argv + (["-b", bits] if bits else []), check=True)
        listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True,
                                capture_output=True, text=True).stdout.strip()
        made[kind] = (Path(f"{path}.pub").read_text().strip(), listed)
    return made


def admin_errors(answers: dict, stored: dict | None = None) -> list[tuple[str, str]]:
    with pytest.raises(InputErrors) as caught:
        parse_setup_inputs(answers, NODE_IP, stored)
    return [(e.field, e.message) for e in caught.value.errors]


# --- the password ---------------------------------------------------------------------


def test_the_password_becomes_a_sha512_crypt_hash_that_checks_against_it():
    document = parse_setup_inputs(ADMIN, NODE_IP)
    hashed = document["admin"]["password_hash"]
    assert passwords.SHA512_CRYPT.match(hashed)
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
                           input=ADMIN_PASSWORD + "\n", capture_output=True, text=True)
    assert again.stdout.strip() == hashed
    assert ADMIN_PASSWORD not in json.dumps(document)
    assert "password_hash" not in without_password(document)["admin"]


@pytest.mark.parametrize(("password", "message"), [
    ("short pw 1", "is too short: use at least 12 characters"),
    ("aaaaaaaaaaaaaaa", "is one character repeated"),
    ("my-alga-admin-password", "contains the account's name (alga-admin)"),
    ("MY-ALGA-ADMIN-pass", "contains the account's name (alga-admin)"),
    ("Password1234", "is one of the commonest passwords"),
    ("123456789012", "is one of the commonest passwords"),
    ("x" * 1025 + "y", "is longer than 1024 characters"),
    ("good password\nsecond", "must not contain control characters or line breaks"),
    ("good\x00password!!", "must not contain control characters or line breaks"),
    ("good password\u2028x", "must not contain control characters or line breaks"),
])
def test_a_weak_or_hostile_password_is_refused_at_its_field_without_repeating_it(
        password, message):
    errors = admin_errors({"admin_password": password, "admin_password_confirm": password})
    assert [field for field, _ in errors] == ["admin_password"]
    assert errors[0][1].startswith(message)
    assert password not in errors[0][1]


def test_the_confirmation_must_match_and_is_named_as_the_field_to_fix():
    assert admin_errors({**ADMIN, "admin_password_confirm": ADMIN_PASSWORD + " "}) == [
        ("admin_password_confirm", "does not match the password: type the same password in "
                                   "both fields")]
    assert admin_errors({"admin_password_confirm": ADMIN_PASSWORD})[0][0] == "admin_password"


def test_the_first_setup_needs_a_password_and_a_later_one_keeps_the_stored_hash():
    errors = admin_errors({})
    assert errors == [("admin_password", "is required: choose the password of the admin "
                       "account alga-admin (at least 12 characters, not containing the admin "
                       "account's name, not one of the commonest passwords, not one character "
                       "repeated)")]
    stored = parse_setup_inputs(ADMIN, NODE_IP)
    kept = parse_setup_inputs({}, NODE_IP, stored)
    assert kept["admin"]["password_hash"] == stored["admin"]["password_hash"]
    changed = parse_setup_inputs({"admin_password": "another fine one",
                                  "admin_password_confirm": "another fine one"}, NODE_IP, stored)
    assert changed["admin"]["password_hash"] != stored["admin"]["password_hash"]


def test_the_admin_name_the_payload_names_is_the_one_the_rule_checks(tmp_path):
    root = make_host_root(tmp_path, paths.CURRENT_DIR)
    state.write(state.ADMIN_ACCOUNT, {"user": "opsadmin"}, root)
    assert credentials.admin_user(root) == "opsadmin"
    assert credentials.admin_user(make_host_root(tmp_path / "bare")) == paths.DEFAULT_ADMIN_USER
    with pytest.raises(InputErrors, match="contains the account's name"):
        parse_setup_inputs({"admin_password": "the opsadmin one", "admin_password_confirm":
                            "the opsadmin one"}, NODE_IP, admin_user="opsadmin")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_password_text_is_hashed_or_refused_at_a_field_never_crashes(password, confirm):
    try:
        document = parse_setup_inputs({"admin_password": password,
                                       "admin_password_confirm": confirm}, NODE_IP)
    except InputErrors as exc:
        assert {e.field for e in exc.errors} <= {"admin_password", "admin_password_confirm"}
        assert all(password not in e.message for e in exc.errors if len(password) > 3)
    else:
        assert password == confirm and len(password) >= 12
        assert passwords.SHA512_CRYPT.match(document["admin"]["password_hash"])


def test_non_text_answers_are_refused_at_their_fields():
    for field in ("admin_password", "admin_password_confirm"):
        assert (field, "must be text") in admin_errors({**ADMIN, field: 12345678901234})
    assert admin_errors({**ADMIN, "ssh_authorized_keys": {"k": 1}}) == [
        ("ssh_authorized_keys", "must be text, one public key per line")]
    assert admin_errors({**ADMIN, "ssh_password_login": "maybe"}) == [
        ("ssh_password_login", "must be yes or no")]


# --- the SSH keys ---------------------------------------------------------------------


def test_real_keys_are_kept_with_their_comments_and_fingerprinted_as_ssh_keygen_does(real_keys):
    text = "\r\n".join(line for line, _ in real_keys.values()) + "\n\n"
    document = parse_setup_inputs({**ADMIN, "ssh_authorized_keys": text,
                                   "ssh_password_login": "yes"}, NODE_IP)
    assert document["admin"]["ssh_authorized_keys"] == [line for line, _ in real_keys.values()]
    assert document["admin"]["ssh_password_login"] is True
    for line, listed in real_keys.values():
        assert sshkeys.parse(line).describe() == listed


@pytest.mark.parametrize(("line", "message"), [
    ('command="/bin/sh" ' + key_line("ssh-ed25519", b"k" * 32),
     "does not start with a key type"),
    ("from=\"10.0.0.1\" ssh-ed25519 AAAA", "does not start with a key type"),
    ("ssh-dss " + base64.b64encode(ssh_string(b"ssh-dss")).decode(),
     "does not start with a key type"),
    ("ssh-ed25519", "has the type ssh-ed25519 but no key after it"),
    ("ssh-ed25519 not!base64", "the key part is not valid base64"),
    (key_line("ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xff" * 128).replace(
        "ssh-rsa", "ssh-ed25519", 1), "says ssh-ed25519 but the key inside is 'ssh-rsa'"),
    (key_line("ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xff" * 128),
     "is an RSA key of 1024 bits; use at least 2048 bits"),
    (key_line("ssh-ed25519", b"k" * 31), "is not a whole ed25519 key"),
    (key_line("ssh-ed25519", b"k" * 32) .split()[0] + " "
     + base64.b64encode(ssh_string(b"ssh-ed25519") + b"\x00\x00\x01").decode(),
     "is cut short"),
    (key_line("ssh-ed25519", b"k" * 32, b"extra"), "has bytes after the key"),
    (key_line("ecdsa-sha2-nistp256", b"nistp384", b"\x04" * 97),
     "says ecdsa-sha2-nistp256 but its curve is 'nistp384'"),
    (key_line("ssh-ed25519", b"k" * 32, comment="me\x00@evil"),
     "contains a control character or line break"),
    (key_line("ssh-ed25519", b"k" * 32, comment="x" * (1024 * 1024)), "is longer than"),
])
def test_a_bad_key_line_is_refused_naming_which_key_and_why(line, message):
    errors = admin_errors({**ADMIN, "ssh_authorized_keys": ["", line]})
    assert len(errors) == 1 and errors[0][0] == "ssh_authorized_keys"
    assert errors[0][1].startswith(f"key 2 {message}"), errors


def test_a_second_key_smuggled_into_one_list_item_is_refused(real_keys):
    first, second = real_keys["ed25519"][0], real_keys["rsa"][0]
    for smuggled in (f"{first}\n{second}", f"{first}\r{second}", f"{first}\u2028{second}"):
        errors = admin_errors({**ADMIN, "ssh_authorized_keys": [smuggled]})
        assert errors == [("ssh_authorized_keys", "key 1 contains a control character or "
                           "line break: give one key per line")]


def test_sk_keys_and_every_ecdsa_curve_are_accepted_and_a_key_is_kept_once():
    ed = key_line("sk-ssh-ed25519@openssh.com", b"k" * 32, b"ssh:")
    ec = key_line("sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", b"\x04" * 65, b"ssh:")
    curves = [key_line(f"ecdsa-sha2-{c}", c.encode(), b"\x04" * 9)
              for c in ("nistp256", "nistp384", "nistp521")]
    keys = parse_setup_inputs({**ADMIN, "ssh_authorized_keys": "\n".join(
        [ed, ec, *curves, ed.rsplit(" ", 1)[0] + " same key, other comment"])},
        NODE_IP)["admin"]["ssh_authorized_keys"]
    assert keys == [ed, ec, *curves]
    assert [sshkeys.parse(k).bits for k in keys] == [256, 256, 256, 384, 521]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(st.text(max_size=80), max_size=4),
                 st.binary(max_size=200).map(lambda b: "ssh-ed25519 " +
                                             base64.b64encode(b).decode())))
def test_any_key_text_is_accepted_as_lines_or_refused_at_its_field(value):
    try:
        keys = parse_setup_inputs({**ADMIN, "ssh_authorized_keys": value},
                                  NODE_IP)["admin"]["ssh_authorized_keys"]
    except InputErrors as exc:
        assert [e.field for e in exc.errors] == ["ssh_authorized_keys"]
    else:
        assert all("\n" not in k and sshkeys.parse(k).line == k for k in keys)


def test_non_utf8_bytes_that_reach_the_answers_as_surrogates_are_refused():
    text = b"ssh-ed25519 AAAA \xff\xfe".decode("utf-8", "surrogateescape")
    assert admin_errors({**ADMIN, "ssh_authorized_keys": text})[0][1].startswith(
        "key 1 contains a control character")
    password = b"long enough \xff\xfe pw".decode("utf-8", "surrogateescape")
    assert admin_errors({"admin_password": password, "admin_password_confirm": password})[0] \
        == ("admin_password", "must not contain control characters or line breaks")


def test_a_unicode_password_is_taken_exactly_as_typed():
    password = "café ünïcødé 密码"
    hashed = parse_setup_inputs({"admin_password": password, "admin_password_confirm":
                                 password}, NODE_IP)["admin"]["password_hash"]
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
                           input=(password + "\n").encode(), capture_output=True)
    assert again.stdout.decode().strip() == hashed


# --- the spool: the hash, never the password ---------------------------------------------


def test_a_submitted_request_carries_the_hash_and_never_the_password(tmp_path, monkeypatch):
    root = make_host_root(tmp_path, paths.SPOOL_DIR)
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    monkeypatch.setattr("host.net.addresses.node_ip", lambda: NODE_IP)
    submitted = request.submit({**ADMIN, "channel": "stable"}, NODE_IP, root)
    spooled = json.loads((root / paths.SPOOL_DIR.lstrip("/") / spool.SETUP.filename).read_text())
    assert "admin_password" not in spooled["answers"]
    assert spooled["admin_password_hash"] == submitted.inputs["admin"]["password_hash"]
    assert request.accept(root) == submitted.request_id
    stored = state.read(state.SETUP_INPUTS, root)
    assert stored["admin"]["password_hash"] == submitted.inputs["admin"]["password_hash"]
    assert_password_in_no_file(root, ADMIN_PASSWORD)


def assert_password_in_no_file(root: Path, password: str) -> None:
    forms = {password, json.dumps(password)[1:-1], base64.b64encode(password.encode()).decode()}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().decode("utf-8", "replace")
            assert not any(form in data for form in forms), path


# --- applying them to the host ---------------------------------------------------------


@pytest.fixture
def host(tmp_path, monkeypatch) -> Path:
    """A root with a copy of this machine's account files plus the seed's admin account
    (created locked, as the seed does), a home for it, and an sshd_config that includes
    the root's own drop-in directory."""
    root = make_host_root(tmp_path / "root", paths.CURRENT_DIR, "/etc/ssh/sshd_config.d",
                          "/home")
    for name in ("passwd", "shadow", "group", "gshadow"):
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), root / "etc" / name)
    subprocess.run(["useradd", "--prefix", str(root), "--create-home", "--home-dir",
                    "/home/alga-admin", "--shell", "/bin/bash", "alga-admin"], check=True)
    subprocess.run(["usermod", "--prefix", str(root), "--lock", "alga-admin"], check=True)
    keys = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys)], check=True)
    (root / "etc/ssh/sshd_config").write_text(
        f"Include {root}/etc/ssh/sshd_config.d/*.conf\nHostKey {keys}\n"
        "KbdInteractiveAuthentication no\nUsePAM yes\n")
    (root / "etc/ssh/sshd_config.d/50-cloud-init.conf").write_text("PasswordAuthentication no\n")
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}:/usr/sbin:/sbin")
    # sshd -t needs it; the credentials unit has it as its RuntimeDirectory.
    with contextlib.suppress(PermissionError):
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    monkeypatch.setenv("FAKE_SYSTEMCTL_IS_ACTIVE", "active")
    return root


def record(root: Path, answers: dict) -> dict:
    inputs = parse_setup_inputs(answers, NODE_IP, state.read(state.SETUP_INPUTS, root))
    state.write(state.SETUP_INPUTS, inputs, root)
    return inputs


def shadow_field(root: Path, user: str = "alga-admin") -> str:
    for line in (root / "etc/shadow").read_text().splitlines():
        if line.startswith(f"{user}:"):
            return line.split(":")[1]
    raise AssertionError(f"{user} not in shadow")


@pytest.mark.skipif(os.geteuid() != 0, reason="chpasswd --root and chown need root")
def test_setup_sets_the_hash_the_keys_and_ssh_and_a_second_setup_replaces_only_its_own(
        host, real_keys):
    assert shadow_field(host).startswith("!")  # locked, as the seed leaves it
    seed_key = real_keys["rsa"][0]
    ssh_dir = host / "home/alga-admin/.ssh"
    ssh_dir.mkdir(mode=0o755)
    (ssh_dir / "authorized_keys").write_text(seed_key + "\n")
    inputs = record(host, {**ADMIN, "ssh_authorized_keys": real_keys["ed25519"][0]})

    done = credentials.apply(host)

    assert shadow_field(host) == inputs["admin"]["password_hash"]
    account = next(line.split(":") for line in (host / "etc/passwd").read_text().splitlines()
                   if line.startswith("alga-admin:"))
    keys_file = ssh_dir / "authorized_keys"
    for path, mode in ((ssh_dir, 0o700), (keys_file, 0o600)):
        found = path.lstat()
        assert stat.S_IMODE(found.st_mode) == mode, path
        assert (found.st_uid, found.st_gid) == (int(account[2]), int(account[3])), path
    assert keys_file.read_text() == "\n".join(
        [seed_key, credentials.BEGIN, real_keys["ed25519"][0], credentials.END]) + "\n"
    dropin = host / paths.SSHD_DROPIN.lstrip("/")
    assert dropin.read_text() == credentials.sshd_dropin_text(False)
    effective = sshd_effective(host)
    assert ("passwordauthentication", "no") in effective
    assert ("kbdinteractiveauthentication", "no") in effective
    assert "reload ssh" in (host.parent / "systemctl.log").read_text()
    assert any(sshkeys.parse(real_keys["ed25519"][0]).fingerprint in line for line in done)

    # Again, with other keys and password login: setup's block is replaced, the seed's key
    # kept, and sshd now accepts passwords (our drop-in wins over cloud-init's).
    record(host, {"ssh_authorized_keys": real_keys["ecdsa"][0], "ssh_password_login": True})
    credentials.apply(host)
    assert keys_file.read_text() == "\n".join(
        [seed_key, credentials.BEGIN, real_keys["ecdsa"][0], credentials.END]) + "\n"
    assert ("passwordauthentication", "yes") in sshd_effective(host)
    assert shadow_field(host) == inputs["admin"]["password_hash"]  # blank kept the hash
    assert_password_in_no_file(host, ADMIN_PASSWORD)


def sshd_effective(root: Path) -> set[tuple[str, str]]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        pytest.skip("sshd is not installed (ci/setup.sh --test installs openssh-server)")
    out = subprocess.run([sshd, "-T", "-f", str(root / "etc/ssh/sshd_config"),
                          "-C", "user=alga-admin,host=h,addr=127.0.0.1"],
                         check=True, capture_output=True, text=True).stdout
    return {tuple(line.split(" ", 1)) for line in out.splitlines() if " " in line}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_config_sshd_refuses_puts_the_old_drop_in_back_and_names_the_cause(host):
    record(host, ADMIN)
    credentials.apply(host)
    dropin = host / paths.SSHD_DROPIN.lstrip("/")
    before = dropin.read_text()
    with open(host / "etc/ssh/sshd_config", "a") as config:
        config.write("NoSuchOption yes\n")
    record(host, {"ssh_password_login": True})
    if not shutil.which("sshd", path=f"{os.environ['PATH']}:/usr/sbin"):
        pytest.skip("sshd is not installed")
    with pytest.raises(credentials.NotApplied, match="sshd refuses its configuration") as caught:
        credentials.apply(host)
    assert "submit setup again" in str(caught.value)
    assert dropin.read_text() == before


def test_a_missing_account_or_no_credentials_names_the_cause_and_next_step(host):
    with pytest.raises(credentials.NotApplied, match="hold no admin password: run setup"):
        credentials.apply(host)
    record(host, ADMIN)
    state.write(state.ADMIN_ACCOUNT, {"user": "nobody-here"}, host)
    with pytest.raises(credentials.NotApplied,
                       match=r"the admin account nobody-here does not exist in .*reinstall"):
        credentials.apply(host)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_linked_ssh_directory_is_refused_not_followed(host, tmp_path):
    record(host, ADMIN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (host / "home/alga-admin/.ssh").symlink_to(elsewhere)
    with pytest.raises(credentials.NotApplied, match=r"is not a directory .*move it aside"):
        credentials.apply(host)
    assert list(elsewhere.iterdir()) == []


# --- the outcome, for the progress views -------------------------------------------------

RUNNING = {"status": "running", "current_phase": "preflight", "updated_at": "2026-12-01T10:00:00Z",
           "request_id": "20261201T100000Z-0badf00d", "phases": {}}


def test_a_failure_is_recorded_for_its_run_and_shown_by_the_console_without_a_secret(host):
    inputs = record(host, ADMIN)
    state.write(state.INSTALL_STATE, RUNNING, host)
    state.write(state.ADMIN_ACCOUNT, {"user": "nobody-here"}, host)
    result = subprocess.run([sys.executable, "-m", "host", "--root", str(host),
                             "apply-credentials"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    outcome = state.read(state.ADMIN_CREDENTIALS, host)
    assert outcome["result"] == "failed" and outcome["request_id"] == RUNNING["request_id"]
    assert "nobody-here does not exist" in outcome["message"]
    assert inputs["admin"]["password_hash"] not in json.dumps(outcome)
    assert credentials.outcome(RUNNING, host) == outcome
    lines = console_progress.poll(host, RUNNING["request_id"]).lines
    assert f"[!] The admin password could not be set: {outcome['message']}" in lines
    assert "    Setup goes on: the app does not need them." in lines
    # A later run is not this one's: nothing is shown for it until the unit runs again.
    later = {**RUNNING, "request_id": "20261201T110000Z-0badf00e"}
    state.write(state.INSTALL_STATE, later, host)
    assert credentials.outcome(later, host) is None
    assert not any("admin password" in line
                   for line in console_progress.poll(host, later["request_id"]).lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="chpasswd --root and chown need root")
def test_success_is_recorded_with_fingerprints_and_never_a_key_or_hash(host, real_keys):
    inputs = record(host, {**ADMIN, "ssh_authorized_keys": real_keys["ed25519"][0]})
    state.write(state.INSTALL_STATE, RUNNING, host)
    done = credentials.run(host)
    outcome = state.read(state.ADMIN_CREDENTIALS, host)
    assert outcome["result"] == "applied" and outcome["message"] == "; ".join(done)
    assert sshkeys.parse(real_keys["ed25519"][0]).fingerprint in outcome["message"]
    assert real_keys["ed25519"][0].split()[1] not in outcome["message"]
    assert inputs["admin"]["password_hash"] not in outcome["message"]
    assert "[x] Admin password and SSH keys set" in console_progress.poll(
        host, RUNNING["request_id"]).lines
