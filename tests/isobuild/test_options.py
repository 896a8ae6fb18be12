"""Build options: defaults, a YAML file validated by its schema, then flags."""

import json

import pytest
import yaml

from host.core.validation import validate
from isobuild import payload
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


# The release source: the default, or a reference by flag or options file, lands in the
# payload as release-source.json; a malformed one stops the build at the options.
DEFAULT_RELEASE_SOURCE = "oci://ghcr.io/nine-minds/alga-appliance-release"
GIVEN_RELEASE_SOURCES = ["https://github.com/Nine-Minds/alga-psa",
                         f"{DEFAULT_RELEASE_SOURCE}:1.0.3",
                         f"{DEFAULT_RELEASE_SOURCE}@sha256:{'ab' * 32}"]
BAD_RELEASE_SOURCES = ["oci://ghcr.io/Upper/Case", "http://x/y",
                       f"{DEFAULT_RELEASE_SOURCE}@sha256:abc"]


def payload_release_source(options: BuildOptions) -> dict:
    """release-source.json as the payload built with `options` holds it, validated."""
    files = {f.path: f for f in payload.collect({}, options.release_source)}
    written = files["release-source.json"]
    assert written.mode == 0o644
    document = json.loads(written.data)
    validate(document, "release-source.schema.json", name="release source", source="payload")
    return document


def options_file(tmp_path, document: dict):
    path = tmp_path / "options.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_release_source_defaults_to_alga_releases_on_ghcr():
    assert payload_release_source(resolve_options(None, {})) == {
        "release_source": DEFAULT_RELEASE_SOURCE}


@pytest.mark.parametrize("reference", GIVEN_RELEASE_SOURCES)
def test_a_release_source_by_flag_or_file_lands_in_the_payload(tmp_path, reference):
    by_flag = resolve_options(None, {"release_source": reference})
    by_file = resolve_options(options_file(tmp_path, {"release_source": reference}), {})
    for options in (by_flag, by_file):
        assert payload_release_source(options) == {"release_source": reference}


@pytest.mark.parametrize("reference", BAD_RELEASE_SOURCES)
def test_a_malformed_release_source_is_refused_with_its_grammar(tmp_path, reference):
    for file, flags in ((None, {"release_source": reference}),
                        (options_file(tmp_path, {"release_source": reference}), {})):
        with pytest.raises(IsoBuildError, match="/release_source") as refused:
            resolve_options(file, flags)
        assert "oci://<registry>/<repository>" in refused.value.fix
        assert "https://<host>/<owner>/<repo>" in refused.value.fix
