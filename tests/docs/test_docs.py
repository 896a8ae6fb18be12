"""The docs match the product: every command they show for our tools exists with the
options shown, and Talos is presented nowhere but in the one statement retiring it."""

import re
import shlex
import subprocess
from pathlib import Path

import click
import embed_captures
import pytest
import yaml
from support.base import ROOT
from support.docs import CAPTURE_NAMES, CAPTURES, DOCS, blocks_in

from host.cli import main as alga_appliance
from host.core.validation import validate
from isobuild.cli import main as isobuild

TALOS_STATEMENT = ("Ubuntu is the supported appliance path. Talos-based appliances are "
                   "legacy, with no migration in v1.")
CLIS = {"alga-appliance": alga_appliance, "isobuild": isobuild}


def shell_lines(text: str) -> list[str]:
    """Each command in the doc's shell blocks, continuation lines joined, comments dropped."""
    lines = []
    for block in blocks_in(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def doc_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for line in shell_lines(doc.read_text()):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv: list[str] = []
            for token in [*lexer, "&&"]:
                if token in ("&&", ";", "||", "|"):
                    while argv and re.fullmatch(r"[A-Z_]+=\S*|sudo", argv[0]):
                        argv = argv[1:]  # VAR=value and sudo before the command itself
                    if argv:
                        found.append((f"{doc.relative_to(ROOT)}: {' '.join(argv)}", argv))
                    argv = []
                else:
                    argv.append(token)
    return found


def our_tool(argv: list[str]) -> str | None:
    name = Path(argv[0]).name
    if name in CLIS:
        return name
    if Path(argv[0]).name in ("python3", "python") and len(argv) > 1 and argv[1].startswith(
            "ci/"):
        return "script"
    return "script" if argv[0].startswith("ci/") else None


# Our commands named in running text: `sudo alga-appliance update --channel stable|nightly`.
INLINE = re.compile(r"`(?:sudo )?((?:\.venv/bin/)?(?:alga-appliance|isobuild) [^`]+)`")


def inline_commands() -> list[tuple[str, list[str]]]:
    """Each inline command of ours; a word with alternatives (a|b) gives one per choice."""
    found = []
    for doc in DOCS:
        for span in INLINE.findall(doc.read_text()):
            words = [word.split("|") for word in span.split()]
            for choice in range(max(len(options) for options in words)):
                argv = [options[min(choice, len(options) - 1)] for options in words]
                found.append((f"{doc.relative_to(ROOT)}: `{' '.join(argv)}`", argv))
    return found


# (where, argv, whole): a shell block's line is a whole command; running text may name a
# command without the arguments it needs (`isobuild verify`).
COMMANDS = [(where, argv, True) for where, argv in doc_commands() if our_tool(argv)] + \
    [(where, argv, False) for where, argv in inline_commands() if our_tool(argv)]


def test_the_docs_show_commands_of_ours():
    assert sum(our_tool(argv) == "alga-appliance" for _, argv, _ in COMMANDS) >= 3
    assert sum(our_tool(argv) == "isobuild" for _, argv, _ in COMMANDS) >= 3


@pytest.mark.parametrize(("where", "argv", "whole"), COMMANDS, ids=[w for w, _, _ in COMMANDS])
def test_every_documented_command_exists_with_its_options(where, argv, whole):
    if our_tool(argv) == "script":
        script = next(a for a in argv if a.startswith("ci/"))
        assert (ROOT / script).is_file(), where
        return
    command, words = CLIS[our_tool(argv)], argv[1:]
    options = set()
    while True:  # a group's own options (--root PATH) come before its subcommand
        params = {opt: param for param in command.params
                  for opt in (*param.opts, *param.secondary_opts)}
        options |= set(params)
        while isinstance(command, click.Group) and words[:1] and words[0] in params:
            words = words[1 if params[words[0]].is_flag else 2:]
        if not (isinstance(command, click.Group) and words[:1]
                and words[0] in command.commands):
            break
        command, words = command.commands[words[0]], words[1:]
    if isinstance(command, click.Group):
        assert not words, f"{where}: no such command"
        return
    for word in words:
        option = word.strip("[]").split("=")[0]  # "[--x]" shows an optional flag
        if option.startswith("-"):
            assert option in options, f"{where}: {option} is not an option"
    # And click accepts the whole line, unless it shows placeholders or a substitution.
    if whole and not any(mark in word for word in words for mark in ("<", "[", "$(")):
        command.make_context(command.name, list(words), resilient_parsing=False)


# Reading legacy release manifests must accept their Talos-era fields (they are the
# format we interoperate with); that names Talos without offering it.
LEGACY_FORMAT = ("schemas/release-manifest.schema.json", "tests/schema_examples/release-manifest/",
                 "docs/reference/alga-formats.md")
OFFERING_TALOS = re.compile(r"talosctl|talos\W+bootstrap|machine\W?config", re.I)


def tracked_text() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return {name: (ROOT / name).read_text(errors="replace") for name in names
            if (ROOT / name).is_file() and name != "tests/docs/test_docs.py"
            and (ROOT / name).suffix not in (".png", ".iso", ".gz")}


def test_talos_is_offered_nowhere_and_named_only_where_it_is_retired():
    texts = tracked_text()
    offering = [name for name, text in texts.items() if OFFERING_TALOS.search(text)]
    assert offering == []
    named = sorted(name for name, text in texts.items() if re.search("talos", text, re.I)
                   and not name.startswith(LEGACY_FORMAT))
    assert named == ["README.md"]
    readme = " ".join(texts["README.md"].split())
    assert TALOS_STATEMENT in readme and readme.lower().count("talos") == 1


def test_the_console_captures_in_the_admin_guide_are_the_console_tests_own(tmp_path):
    guide = (ROOT / "docs/admin-guide.md").read_text()
    assert sorted(embed_captures.marked(guide)) == sorted(CAPTURE_NAMES)
    for name in CAPTURE_NAMES:
        (tmp_path / f"{name}.txt").write_text(f"the {name} capture\n")
    embedded = embed_captures.embed(guide, tmp_path)
    for name in CAPTURE_NAMES:
        assert f"<!-- console capture: {name} -->\n```\nthe {name} capture\n```\n" in embedded
    outside = embed_captures.MARKED_BLOCK.sub("", embedded)
    assert outside == embed_captures.MARKED_BLOCK.sub("", guide)  # nothing else changed
    # And what the console shows today, when its tests have run (they run first in CI).
    if not all((CAPTURES / f"{name}.txt").exists() for name in CAPTURE_NAMES):
        pytest.skip("the console tests have not saved their captures")
    assert embed_captures.embed(guide, CAPTURES) == guide, "run ci/screenshots.sh"


def test_the_options_files_the_release_guide_shows_are_valid():
    """The guide's options files (the first is the one its build commands use) validate."""
    guide = (ROOT / "docs/release-engineering.md").read_text()
    examples = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    assert len(examples) >= 2
    for example in examples:
        validate(yaml.safe_load(example), "isobuild-options.schema.json",
                 name="options file", source="docs/release-engineering.md")
