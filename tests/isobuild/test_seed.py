"""The autoinstall seed: every accepted option set gives user-data subiquity accepts."""

import string

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from host.core.validation import DocumentInvalid, validate
from host.core.version import __version__
from isobuild import grubcfg, seed
from isobuild.errors import IsoBuildError
from isobuild.options import OPTIONS_SCHEMA, BuildOptions

hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
users = st.from_regex(r"[a-z_][a-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda u: u not in ("root", "alga-appliance"))
keys = st.builds(lambda kind, body, comment: f"{kind} {body}{comment}",
                 st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]),
                 st.text(string.ascii_letters + string.digits + "+/", min_size=8, max_size=60),
                 st.sampled_from(["", " admin@example", " ops key"]))
proxies = st.none() | st.sampled_from(["http://proxy.example:3128", "https://10.0.0.1:8443/",
                                       "http://user:pw@proxy:80"])
options = st.builds(
    BuildOptions, hostname=hostnames, admin_user=users,
    ssh_authorized_keys=st.lists(keys, max_size=3).map(tuple),
    timezone=st.sampled_from(["Etc/UTC", "Europe/London", "America/Argentina/Buenos_Aires"]),
    installer_proxy=proxies, grub_timeout=st.integers(0, 300), serial_console=st.booleans())
unit_names = st.lists(st.from_regex(r"alga-[a-z]{1,10}\.(service|timer|path|target)",
                                    fullmatch=True), max_size=5, unique=True)


@given(options, unit_names)
def test_every_accepted_option_set_renders_valid_user_data(opts, units):
    validate(opts.as_document(), OPTIONS_SCHEMA, name="options", source="hypothesis")
    document = seed.autoinstall(opts, units, units[:1])
    data = seed.render_user_data(document)
    assert data.startswith(b"#cloud-config\n")
    parsed = seed.parse_user_data(data)
    assert parsed == document
    seed.check_autoinstall(parsed)
    [admin] = parsed["user-data"]["users"]
    assert admin["name"] == opts.admin_user and admin["lock_passwd"] is True
    assert admin["ssh_authorized_keys"] == list(opts.ssh_authorized_keys)
    assert parsed["ssh"] == {"install-server": True, "allow-pw": False}
    assert parsed.get("proxy") == opts.installer_proxy
    assert parsed["shutdown"] == "reboot"
    assert parsed["storage"] == {"layout": {"name": "direct"}}
    for unit in units:
        assert any(c.endswith(f"/etc/systemd/system/{unit}") for c in parsed["late-commands"])
    enables = [c for c in parsed["late-commands"] if " systemctl enable " in c]
    assert enables == [f"curtin in-target --target /target -- systemctl enable {u}"
                       for u in units[:1]]


def test_firewall_allows_exactly_ssh_ui_and_app():
    commands = seed.autoinstall(BuildOptions(), [], [])["late-commands"]
    allowed = [c.rsplit(" ", 1)[1] for c in commands if " ufw allow " in c]
    assert allowed == ["22/tcp", "8080/tcp", "8443/tcp", "3000/tcp"]
    assert "curtin in-target --target /target -- ufw default deny incoming" in commands
    assert "sed -i 's/^ENABLED=.*/ENABLED=yes/' /target/etc/ufw/ufw.conf" in commands


def test_payload_dirs_are_root_owned_0750_setgid_with_the_service_group():
    commands = seed.autoinstall(BuildOptions(), [], [])["late-commands"]
    assert ("curtin in-target --target /target -- install -d -m 2750 -o root -g alga-appliance "
            "/etc/alga-appliance /var/lib/alga-appliance /var/log/alga-appliance") in commands
    assert ("curtin in-target --target /target -- install -d -m 0770 -o root -g alga-appliance "
            "/var/lib/alga-appliance/spool") in commands
    assert any("useradd --system" in c and c.endswith(" alga-appliance") for c in commands)


def test_a_finished_install_leaves_the_marker_the_iso_menu_looks_for():
    commands = seed.autoinstall(BuildOptions(), ["alga-x.service"], ["alga-x.service"])[
        "late-commands"]
    # Last: an install that fails earlier leaves no marker, so the ISO offers to install again.
    assert commands[-1] == ("install -D -m 0644 /cdrom/alga/VERSION "
                            "/target/boot/alga-appliance-installed")
    assert grubcfg.INSTALLED_MARKER == "/boot/alga-appliance-installed"


def test_unknown_top_level_key_fails_the_build():
    document = seed.autoinstall(BuildOptions(), [], [])
    document["late-comands"] = []  # a typo subiquity would only warn about
    with pytest.raises(IsoBuildError, match="unknown top-level keys"):
        seed.check_autoinstall(document)


def test_schema_violation_fails_the_build():
    document = seed.autoinstall(BuildOptions(), [], [])
    document["shutdown"] = "halt"
    with pytest.raises(IsoBuildError, match="shutdown"):
        seed.check_autoinstall(document)


def test_user_data_without_cloud_config_header_is_rejected():
    with pytest.raises(ValueError, match="#cloud-config"):
        seed.parse_user_data(yaml.safe_dump({"autoinstall": {"version": 1}}).encode())


@pytest.mark.parametrize("bad", [
    {"hostname": "Bad_Host"}, {"admin_user": "root"}, {"ssh_authorized_keys": ["not a key"]},
    {"grub_timeout": -1}, {"installer_proxy": "ftp://x"}, {"serial": True},
])
def test_invalid_options_are_refused_by_the_schema(bad):
    document = {**BuildOptions().as_document(), **bad}
    with pytest.raises(DocumentInvalid):
        validate(document, OPTIONS_SCHEMA, name="options", source="test")


@pytest.mark.parametrize(("data", "message"), [
    (b"#cloud-config\n- 1\n", "user-data has no top-level autoinstall mapping"),
    (b"#cloud-config\nautoinstall: 3\n", "user-data has no top-level autoinstall mapping"),
    (b"#cloud-config\nother: {}\n", "user-data has no top-level autoinstall mapping"),
    (b"version: 1\n", "user-data does not start with #cloud-config"),
])
def test_malformed_user_data_is_refused_exactly(data, message):
    with pytest.raises(ValueError) as caught:
        seed.parse_user_data(data)
    assert str(caught.value) == message


def test_build_refusals_state_the_problem_and_the_fix_exactly():
    document = seed.autoinstall(BuildOptions(), [], [])
    document["late-comands"], document["x"] = [], 1
    with pytest.raises(IsoBuildError) as caught:
        seed.check_autoinstall(document)
    assert (caught.value.problem, caught.value.fix) == (
        "autoinstall has unknown top-level keys ['late-comands', 'x']",
        "use only keys from subiquity's 24.04 autoinstall schema")
    document = seed.autoinstall(BuildOptions(), [], [])
    document["shutdown"] = "halt"
    with pytest.raises(IsoBuildError) as caught:
        seed.check_autoinstall(document)
    assert (caught.value.problem, caught.value.fix) == (
        "autoinstall (generated seed) is invalid at /shutdown: 'halt' is not one of "
        "['reboot', 'poweroff']", "this is a bug in the seed generator; report it")


def test_meta_data_names_the_installer_instance():
    assert seed.META_DATA == b"instance-id: alga-appliance-installer\n"


def test_without_an_installer_proxy_the_seed_has_no_proxy_key():
    assert "proxy" not in seed.autoinstall(BuildOptions(), [], [])


def test_the_payload_installs_as_a_version_named_by_current_and_everything_goes_through_it():
    units = ["alga-x.service", "systemd-networkd-wait-online.service.d/alga.conf"]
    commands = seed.autoinstall(BuildOptions(), units, [])["late-commands"]
    version_dir = f"/target/opt/alga-appliance/versions/{__version__}"
    assert f"cp -R /cdrom/alga/. {version_dir}/" in commands
    link = f"ln -sfn versions/{__version__} /target/opt/alga-appliance/current"
    cli = ("ln -sfn /opt/alga-appliance/current/bin/alga-appliance "
           "/target/usr/local/bin/alga-appliance")
    drop_in_dir = "mkdir -p /target/etc/systemd/system/systemd-networkd-wait-online.service.d"
    unit_links = [f"ln -sfn /opt/alga-appliance/current/units/{u} "
                  f"/target/etc/systemd/system/{u}" for u in units]
    order = [commands.index(c) for c in (link, cli, drop_in_dir, *unit_links)]
    assert order == sorted(order)
    # Nothing else names the payload by a version directory or the old flat layout.
    assert not [c for c in commands if "/opt/alga-appliance/" in c and "current" not in c
                and version_dir not in c]
