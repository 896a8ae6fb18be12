"""Both halves of issue 23 together: a host release published by `isobuild host-release`
(a copy of the working tree with a bumped version, signed with a throwaway key, pushed to
the real test registry) is found by `alga-appliance self-update --check` on an appliance
that pins that key and repository, and `--apply` downloads, verifies and switches to it;
one signed by a key the appliance does not pin is refused and changes nothing. The health
check is the only stand-in (no web service runs here); test_self_update.py covers it."""

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.cluster import FakeCluster
from support.host_releases import tree_with_version
from support.published_host_release import installed_root, publish_release

from host import cli
from host.core import paths, state
from host.core.version import __version__
from host.update import self_update
from isobuild import payload

BUMPED = "0.99.0"
REPOSITORY = "alga/appliance-host-e2e"


def alga_appliance(root: Path, *args: str):
    return CliRunner().invoke(cli.main, ["--root", str(root), *args])


def history(root: Path) -> list[dict]:
    """The maintenance record's self-update history, newest first."""
    return state.read(state.MAINTENANCE, root)["self_updates"]


@pytest.fixture
def appliance(tmp_path, ca, registry, signing_key, monkeypatch):
    repository = f"{registry.host}/{REPOSITORY}-{tmp_path.name[-12:].lower()}"
    FakeCluster(tmp_path).use(monkeypatch)
    monkeypatch.setattr(self_update, "check_health", lambda root: None)
    root = installed_root(tmp_path, ca, repository, signing_key)
    paths.on_host(paths.STATE_DIR, root).chmod(0o2750)  # setgid, as the seed makes it
    return root, repository


def test_a_published_release_is_checked_and_applied_from_the_registry(
        appliance, ca, signing_key, tmp_path):
    root, repository = appliance
    tree = tree_with_version(tmp_path, BUMPED)
    publish_release(tree, ca, signing_key, repository, tmp_path / "out")

    checked = alga_appliance(root, "self-update", "--check")
    assert checked.exit_code == 0, checked.output
    assert BUMPED in checked.output and __version__ in checked.output
    applied = alga_appliance(root, "self-update", "--apply")
    assert applied.exit_code == 0, applied.output

    current = paths.on_host(paths.CURRENT_DIR, root)
    assert os.readlink(current) == f"versions/{BUMPED}"
    assert (current / "VERSION").read_text() == f"{BUMPED}\n"
    # Staged under the setgid state directory, yet nothing installed carries the bit: the
    # request unit's RestrictSUIDSGID= refuses to copy it into /opt (every apply from the
    # Updates page rolled back, EPERM).
    installed = paths.on_host(paths.VERSIONS_DIR, root) / BUMPED
    assert not [p for p in [installed, *installed.rglob("*")]
                if p.stat().st_mode & (stat.S_ISGID | stat.S_ISUID)]
    # The running code is the published tree's, byte for byte.
    for name in payload.SOURCE_DIRS:
        for source in (tree / name).rglob("*"):
            if source.is_file():
                relative = source.relative_to(tree)
                assert (current / relative).read_bytes() == source.read_bytes(), relative
    apply, check = history(root)[:2]
    assert (check["action"], check["outcome"], check["to_version"]) == (
        "check", "available", BUMPED)
    assert (apply["action"], apply["outcome"], apply["from_version"], apply["to_version"],
            apply["signer"]) == ("apply", "applied", __version__, BUMPED,
                                 signing_key.fingerprint)


def test_a_release_signed_by_a_key_not_pinned_is_refused_and_changes_nothing(
        appliance, ca, other_key, tmp_path):
    root, repository = appliance
    publish_release(tree_with_version(tmp_path, BUMPED), ca, other_key, repository,
                    tmp_path / "out")
    before = {f.filename: f.path(root).read_bytes() for f in state.STATE_FILES
              if f.path(root).exists() and f is not state.MAINTENANCE}

    applied = alga_appliance(root, "self-update", "--apply", BUMPED)
    assert applied.exit_code == 1, applied.output
    assert other_key.fingerprint in applied.output
    assert os.readlink(paths.on_host(paths.CURRENT_DIR, root)) == f"versions/{__version__}"
    assert not (paths.on_host(paths.VERSIONS_DIR, root) / BUMPED).exists()
    assert {f.filename: f.path(root).read_bytes() for f in state.STATE_FILES
            if f.path(root).exists() and f is not state.MAINTENANCE} == before
    entry = history(root)[0]
    assert (entry["outcome"], entry["to_version"], entry["signer"]) == (
        "refused", BUMPED, None)
    assert json.dumps(entry).count(other_key.fingerprint) == 1
