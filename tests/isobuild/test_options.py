"""Build options: defaults, a YAML file validated by its schema, then flags."""

import pytest

from isobuild.errors import IsoBuildError
from isobuild.options import BuildOptions, resolve_options

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample admin@example"


def test_defaults_without_file_or_flags():
    assert resolve_options(None, {}) == BuildOptions()


def test_file_then_flags_override(tmp_path):
    path = tmp_path / "options.yaml"
    path.write_text(f"hostname: psa-1\nssh_authorized_keys: ['{KEY}']\ngrub_timeout: 10\n")
    options = resolve_options(path, {"grub_timeout": 2, "hostname": None})
    assert options.hostname == "psa-1"
    assert options.ssh_authorized_keys == (KEY,)
    assert options.grub_timeout == 2


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "options.yaml"
    path.write_text("hostnme: psa-1\n")
    with pytest.raises(IsoBuildError, match="hostnme"):
        resolve_options(path, {})


def test_bad_yaml_and_missing_file_are_explained(tmp_path):
    path = tmp_path / "options.yaml"
    path.write_text("hostname: [unclosed\n")
    with pytest.raises(IsoBuildError, match="not valid YAML"):
        resolve_options(path, {})
    with pytest.raises(IsoBuildError, match="cannot read options file"):
        resolve_options(tmp_path / "missing.yaml", {})


def test_bad_flag_value_is_refused():
    with pytest.raises(IsoBuildError, match="timezone"):
        resolve_options(None, {"timezone": "not a zone!"})
