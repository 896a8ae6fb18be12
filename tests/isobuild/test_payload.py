"""The payload on the ISO runs on the distro python3 with only what it vendors."""

import json
import subprocess
from pathlib import Path

from support.machines import extract_payload

from host.core.version import __version__
from isobuild.image import IsoImage

DISTRO_PYTHON = "/usr/bin/python3"


def run_in_payload(root: Path, code: str) -> str:
    # What bin/alga-appliance sets up: the distro interpreter, the payload, its vendor dir.
    env = {"PYTHONPATH": f"{root}:{root}/vendor", "PATH": "/usr/bin:/bin"}
    return subprocess.run([DISTRO_PYTHON, "-c", code], env=env, capture_output=True,
                          text=True, check=True, cwd=root).stdout.strip()


def test_cli_runs_from_the_payload_with_vendored_click(appliance, tmp_path):
    root = extract_payload(appliance.output, tmp_path / "opt")
    env = {"PYTHONPATH": f"{root}:{root}/vendor", "PATH": "/usr/bin:/bin"}
    version = subprocess.run([DISTRO_PYTHON, "-m", "host", "--version"], env=env,
                             capture_output=True, text=True, check=True, cwd=tmp_path)
    assert version.stdout.strip() == f"alga-appliance, version {__version__}"
    assert run_in_payload(root, "import click; print(click.__file__)").startswith(
        f"{root}/vendor/click/")
    # The console TUI's toolkit and its dependencies come from the payload too.
    tui = run_in_payload(root, "import host.console.tui, urwid, wcwidth, typing_extensions; "
                               "print(urwid.__file__, wcwidth.__file__, "
                               "typing_extensions.__file__)").split()
    assert tui == [f"{root}/vendor/urwid/__init__.py", f"{root}/vendor/wcwidth/__init__.py",
                   f"{root}/vendor/typing_extensions.py"]
    wrapper = (root / "bin" / "alga-appliance").read_text()
    assert 'release=$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")' in wrapper
    assert 'PYTHONPATH="$release:$release/vendor"' in wrapper
    assert "exec -a alga-appliance /usr/bin/python3 -m host" in wrapper


def test_payload_validates_with_the_distro_jsonschema(appliance, tmp_path):
    root = extract_payload(appliance.output, tmp_path / "opt")
    code = (
        "import jsonschema, importlib.metadata as m\n"
        "from host.core.validation import SCHEMA_DIR, DocumentInvalid, validate\n"
        f"assert str(SCHEMA_DIR).startswith({str(root)!r})\n"
        "validate({'grub_timeout': 3}, 'isobuild-options.schema.json', name='n', source='s')\n"
        "try:\n"
        "    validate({'grub_timeout': 'x'}, 'isobuild-options.schema.json', name='n', "
        "source='s')\n"
        "except DocumentInvalid as e:\n"
        "    print(m.version('jsonschema'), e.pointer)\n"
    )
    jsonschema_version, pointer = run_in_payload(root, code).split()
    assert pointer == "/grub_timeout"
    assert jsonschema_version.startswith("4.")


def test_payload_holds_exactly_the_project_parts(appliance):
    with IsoImage(appliance.output) as iso:
        files = [p for p in iso.files() if p.startswith("/alga/")]
        release_source = json.loads(iso.read("/alga/release-source.json"))
        admin_account = json.loads(iso.read("/alga/admin-account.json"))
    tops = {p.split("/")[2] for p in files}
    assert tops == {"host", "vendor", "units", "ui-static", "schemas", "bin", "VERSION",
                    "build-info.json", "release-source.json", "admin-account.json"}
    # Built without --release-source: Alga's releases on GHCR.
    assert release_source == {"release_source": "oci://ghcr.io/nine-minds/alga-appliance-release"}
    # Built without --admin-user: the seed's default account, which setup gives its password.
    assert admin_account == {"user": "alga-admin"}
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in files)
    assert any(p.startswith("/alga/vendor/click.LICENSE") for p in files)
