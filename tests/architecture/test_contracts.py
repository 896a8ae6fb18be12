"""Each vocabulary has one owner; what must repeat it elsewhere (systemd units, HTML) is
checked against that owner here, so the copies cannot drift."""

import configparser
import json
import re
from pathlib import Path

import yaml

from host.core import paths, spool
from host.releases import channels
from host.setup import chain

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "units"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


def phase_unit(name: str) -> str:
    return f"alga-appliance-phase-{name}.service"


def test_every_phase_has_a_unit_running_it_and_no_unit_runs_another():
    runs = {path.name: unit(path.name)["Service"]["ExecStart"]
            for path in UNITS.glob("alga-appliance-phase-*.service")}
    assert runs == {phase_unit(name): f"{paths.CLI_LINK} phase {name}" for name in chain.NAMES}


def test_the_units_chain_the_phases_in_the_declared_order():
    for before, after in zip(chain.NAMES, chain.NAMES[1:], strict=False):
        section = unit(phase_unit(after))["Unit"]
        assert section["Requires"].split() == [phase_unit(before)], after
        assert section["After"].split() == [phase_unit(before)], after
    first = unit(phase_unit(chain.NAMES[0]))["Unit"]
    assert "Requires" not in first
    target = unit("alga-appliance-setup.target")["Unit"]
    assert phase_unit(chain.NAMES[-1]) in target["Requires"].split()


def test_credentials_are_set_before_preflight_without_ever_stopping_the_chain():
    credentials = unit("alga-appliance-credentials.service")
    assert credentials["Service"]["ExecStart"] == f"{paths.CLI_LINK} apply-credentials"
    assert phase_unit(chain.NAMES[0]) in credentials["Unit"]["Before"].split()
    target = unit("alga-appliance-setup.target")["Unit"]
    assert "alga-appliance-credentials.service" in target["Wants"].split()
    # Only wanted: nothing requires it, so its failure fails no phase.
    for path in UNITS.glob("alga-appliance-*"):
        assert "alga-appliance-credentials.service" not in \
            unit(path.name)["Unit"].get("Requires", ""), path.name


def test_every_request_kind_has_a_path_unit_starting_its_accept_command():
    for kind in spool.KINDS:
        stem = f"alga-appliance-{kind.filename.removesuffix('.request')}-request"
        watched = unit(f"{stem}.path")["Path"]["PathExists"]
        assert watched == f"{paths.SPOOL_DIR}/{kind.filename}", kind.name
        assert kind.watcher == f"{stem}.path", kind.name  # what a late request names
        command = unit(f"{stem}.service")["Service"]["ExecStart"]
        assert command == f"{paths.CLI_LINK} {kind.accept_command}", kind.name


def test_the_ui_offers_exactly_the_declared_channels():
    html = (ROOT / "ui-static" / "index.html").read_text()
    for group in ("channel", "update_channel"):
        offered = re.findall(rf'name="{group}" value="([^"]+)"', html)
        assert tuple(offered) == channels.CHANNELS, group


def test_no_ui_module_or_console_keeps_its_own_phase_list():
    """Titles come from GET /api/setup (the UI) and host/setup/chain.py (the console)."""
    sources = [*(ROOT / "ui-static" / "js").glob("*.js"), *(ROOT / "host").rglob("*.py")]
    for source in sources:
        if source.name == "chain.py":
            continue
        text = source.read_text()
        titles = [step.title for step in chain.CHAIN if f'"{step.title}"' in text]
        assert not titles, f"{source.relative_to(ROOT)} repeats phase titles {titles}"



def channel_enums(node, where: str = ""):
    """(where, enum) of every `channel` or `channels` property in a parsed schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("channel", "channels") and isinstance(value, dict):
                enum = value.get("enum") or value.get("items", {}).get("enum")
                if enum is not None:
                    yield f"{where}/{key}", enum
            yield from channel_enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from channel_enums(value, f"{where}/{index}")


def test_every_schema_that_names_channels_names_exactly_the_declared_ones():
    """A schema is a contract of its own, so it spells the channels out; they must be these
    (a maintenance record may have none yet)."""
    documents = {path.name: json.loads(path.read_text())
                 for path in (ROOT / "schemas").glob("*.schema.json")}
    documents["openapi.yaml"] = yaml.safe_load((ROOT / "schemas" / "openapi.yaml").read_text())
    found = [(f"{name}{where}", enum) for name, document in sorted(documents.items())
             for where, enum in channel_enums(document)]
    assert len(found) >= 7, found
    for where, enum in found:
        assert tuple(value for value in enum if value is not None) == channels.CHANNELS, where


def release_source_patterns(node, where: str = ""):
    """(where, pattern) of every `release_source` property in a parsed schema that spells
    the reference grammar out."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "release_source" and isinstance(value, dict) and "pattern" in value:
                yield f"{where}/{key}", value["pattern"]
            yield from release_source_patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from release_source_patterns(value, f"{where}/{index}")


def test_every_schema_that_takes_a_release_source_takes_exactly_the_owners_grammar():
    """release-source.schema.json owns the reference grammar (oci_source.Reference parses
    with it); the schemas of endpoints.json, the setup inputs and the build options spell it
    out again, so a reference one of them accepts is one the appliance can use."""
    owner = json.loads((ROOT / "schemas" / "release-source.schema.json").read_text())
    grammar = owner["$defs"]["reference"]["pattern"]
    found = {f"{path.name}{where}": pattern
             for path in sorted((ROOT / "schemas").glob("*.schema.json"))
             for where, pattern in release_source_patterns(json.loads(path.read_text()))}
    assert set(found) == {"endpoints.schema.json/properties/release_source",
                          "setup-inputs.schema.json/properties/overrides/properties/release_source",
                          "isobuild-options.schema.json/properties/release_source"}, found
    for where, pattern in found.items():
        assert pattern == grammar, where
