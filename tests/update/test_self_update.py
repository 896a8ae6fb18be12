"""Self-update of the appliance software (host/update/self_update.py): a release built from
this working tree (isobuild.payload.collect(), a bumped VERSION) applied to a host root
laid out as the seed lays it out, with the real CLI of each version run for the
migrations and the health check, and systemctl the tests' fake."""

import contextlib
import functools
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.attacks import free_port
from support.base import make_host_root, serve_wsgi
from support.cluster import FakeCluster
from support.openapi_check import assert_documented

from host import cli, web
from host.core import busy, maintenance, paths, runlock, spool, state, token, unitfiles
from host.releases import host_release
from host.releases.host_release import Staged
from host.update import self_update
from isobuild import payload

OLD, NEW = "0.1.0", "0.2.0"
SIGNER = "0123456789ABCDEF0123456789ABCDEF01234567"
SITE_SOURCE = "oci://registry.example/site/releases"
EXAMPLES = Path(__file__).resolve().parents[1] / "schema_examples"


@functools.cache
def payload_files() -> tuple:
    return tuple(payload.collect({"built_by": "tests"}, "oci://registry.example/generic"))


def write_tree(directory: Path, version: str) -> Path:
    """The payload as the ISO carries it, `version` in its VERSION file and its code."""
    for file in payload_files():
        path = directory / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{version}\n".encode() if file.path == "VERSION" else file.data)
        path.chmod(file.mode)
    module = directory / "host/core/version.py"
    module.write_text(module.read_text().replace(f'"{OLD}"', f'"{version}"'))
    return directory


@contextlib.contextmanager
def web_service_of_current(root: Path):
    """The web service as systemd restarts it: `current`'s own `alga-appliance serve`
    (a new process, so the code of the version current names), on free loopback ports."""
    ports = [free_port(), free_port()]
    server = subprocess.Popen(
        [str(paths.on_host(paths.CURRENT_DIR, root) / "bin/alga-appliance"), "serve",
         "--host", "127.0.0.1", "--port", str(ports[0]), "--tls-port", str(ports[1])],
        env={**os.environ, paths.ROOT_ENV: str(root)}, cwd="/",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{ports[0]}"
    finally:
        server.terminate()
        server.wait(30)


def restarted_and_checked(root: Path) -> str | None:
    """The restart, then the real health check against the restarted service."""
    with web_service_of_current(root) as base:
        return self_update.check_health(root, base=base, seconds=30)


@functools.cache
def template(base: Path) -> tuple[Path, Path]:
    """An installed host root (OLD, as the seed installs it, built for SITE_SOURCE) and a
    staged NEW tree, built once per session and copied for each test."""
    root = make_host_root(base / "root", paths.VERSIONS_DIR, paths.SYSTEMD_UNIT_DIR,
                          "/etc/issue.d")
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    write_tree(paths.on_host(paths.VERSIONS_DIR, root) / OLD, OLD)
    paths.on_host(paths.CURRENT_DIR, root).symlink_to(f"versions/{OLD}")
    state.write(state.RELEASE_SOURCE, {"release_source": SITE_SOURCE}, root)
    unitfiles.link(root)
    # What `systemctl enable` makes of a unit linked through current: a link to the version.
    wants = paths.on_host(paths.SYSTEMD_UNIT_DIR, root) / "multi-user.target.wants"
    wants.mkdir()
    (wants / "alga-appliance.service").symlink_to(
        f"{paths.VERSIONS_DIR}/{OLD}/units/alga-appliance.service")
    token.ensure_token(root, owner=pwd.getpwuid(os.getuid()).pw_name)
    # A state file in an older shape, which the new version's migrations rewrite.
    old_shape = json.loads(EXAMPLES.joinpath("selected-release/valid-git.json").read_text())
    del old_shape["source"]  # selections before the OCI source all came from git
    state.write_atomically(state.SELECTED_RELEASE.path(root), json.dumps(old_shape).encode(),
                           0o640)
    # A maintenance record from before self-updates: no history of them yet.
    state.write_atomically(state.MAINTENANCE.path(root), EXAMPLES.joinpath(
        "maintenance/valid.json").read_bytes(), 0o640)
    # The ISO pinned this site's host-release keys (a release without pins keeps them).
    paths.on_host(paths.CURRENT_DIR, root).joinpath(state.HOST_RELEASE_TRUST.filename).write_text(
        '{"repository": "ghcr.io/site/host", "keys": []}\n')
    return root, write_tree(base / "staged", NEW)


@pytest.fixture
def host(tmp_path_factory, tmp_path, monkeypatch):
    """A fresh copy of the installed root, the staged release and the fakes on PATH."""
    root, staged = template(tmp_path_factory.getbasetemp() / "self-update-template")
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    FakeCluster(tmp_path).use(monkeypatch)
    return copy, staged_release(staged)


def staged_release(directory: Path, version: str = NEW, minimum: str = OLD) -> Staged:
    return Staged(version, {"format": 1, "version": version, "min_upgrade_from": minimum,
                            "schemas": {}, "notes": ""}, directory, SIGNER)


def healthy(root):
    return None


def files(root: Path) -> dict[str, bytes]:
    """Every state file's bytes (the ones a self-update snapshots), but the maintenance
    record's self-update history, which a recovery adds to."""
    found = {f.filename: f.path(root).read_bytes() for f in self_update.snapshotted()
             if f.path(root).exists()}
    if state.MAINTENANCE.filename in found:
        record = json.loads(found.pop(state.MAINTENANCE.filename))
        record.pop("self_updates", None)
        found[state.MAINTENANCE.filename] = record
    return found


def version_files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def systemctl_calls(tmp_path: Path) -> list[str]:
    """What systemctl was asked to do (not the status collector's questions)."""
    log = tmp_path / "systemctl.log"
    return [call for call in (log.read_text().splitlines() if log.exists() else [])
            if not call.startswith("is-active ")]


def test_apply_switches_migrates_restarts_and_keeps_the_site_files(host, tmp_path):
    root, staged = host
    outcome = self_update.apply(root, staged, health=restarted_and_checked)
    assert outcome == self_update.Outcome(OLD, NEW, "applied")
    current = paths.on_host(paths.CURRENT_DIR, root)
    assert os.readlink(current) == f"versions/{NEW}"
    assert self_update.installed_version(root) == NEW
    # The ISO built this site's release source in: the update keeps it.
    assert state.read(state.RELEASE_SOURCE, root) == {"release_source": SITE_SOURCE}
    # The new version's own code wrote the older shape in its current one, after the switch.
    on_disk = json.loads(state.SELECTED_RELEASE.path(root).read_text())
    assert on_disk["source"] == "git"
    assert systemctl_calls(tmp_path) == [
        "daemon-reload", "try-restart " + " ".join(self_update.LONG_RUNNING)]
    assert self_update.read_journal(root) is None
    assert sorted(p.name for p in paths.on_host(paths.VERSIONS_DIR, root).iterdir()) == [
        OLD, NEW]
    # The units are linked through current, so they are the new version's now.
    unit_dir = paths.on_host(paths.SYSTEMD_UNIT_DIR, root)
    for link in (unit_dir / "alga-appliance.service",
                 unit_dir / "multi-user.target.wants/alga-appliance.service"):
        assert os.readlink(link) == f"{paths.CURRENT_DIR}/units/alga-appliance.service"


def test_a_failing_health_check_switches_back_restores_the_state_and_says_why(host, tmp_path):
    root, staged = host
    before = files(root)
    old_tree = version_files(self_update.version_dir(root, OLD))
    # Nothing answers on this port: the restarted web service "did not come up".
    health = functools.partial(self_update.check_health, base="http://127.0.0.1:9", seconds=1)
    with pytest.raises(self_update.RolledBack, match=r"did not answer .* back on 0\.1\.0"):
        self_update.apply(root, staged, health=health)
    assert os.readlink(paths.on_host(paths.CURRENT_DIR, root)) == f"versions/{OLD}"
    assert files(root) == before  # the migrated selection is back in its old shape
    assert version_files(self_update.version_dir(root, OLD)) == old_tree
    assert not self_update.version_dir(root, NEW).exists()
    assert self_update.read_journal(root) is None
    assert systemctl_calls(tmp_path)[-2:] == [
        "daemon-reload", "try-restart " + " ".join(self_update.LONG_RUNNING)]


def test_a_new_version_whose_status_collector_fails_is_rolled_back(host, tmp_path):
    root, staged = host
    broken = tmp_path / "broken"
    shutil.copytree(staged.directory, broken)
    (broken / "host/status.py").write_text("raise SystemExit('the collector is broken')\n")
    with pytest.raises(self_update.RolledBack, match="collect-status exited 1"):
        self_update.apply(root, staged_release(broken), health=restarted_and_checked)
    assert self_update.installed_version(root) == OLD


def test_a_web_service_still_running_the_old_code_is_rolled_back(host):
    """A web service that answers, but was not restarted onto the new code (this process's
    web app is the old version's): the health check sees the version it runs."""
    root, staged = host
    with serve_wsgi(web.make_app(root)) as url:
        health = functools.partial(self_update.check_health, base=url, seconds=5)
        with pytest.raises(self_update.RolledBack,
                           match=rf"runs version {OLD}, not {NEW}: it did not restart"):
            self_update.apply(root, staged, health=health)
    assert self_update.installed_version(root) == OLD


@pytest.mark.parametrize(("version", "minimum", "force", "reason"), [
    (OLD, OLD, False, "already installed"),
    ("0.2.0-rc1", OLD, True, "not a release version"),
    ("../../etc", OLD, True, "not a release version"),
    ("0.0.9", "0.0.1", False, "older than the installed 0.1.0.*--force-downgrade"),
    ("0.3.0", "0.2.0", False, "can only be applied to 0.2.0 or newer"),
])
def test_refusals_name_the_cause_and_change_nothing(host, version, minimum, force, reason):
    root, staged = host
    before, tree = files(root), version_files(paths.on_host(paths.INSTALL_DIR, root))
    with pytest.raises(self_update.Refused, match=reason):
        self_update.apply(root, staged_release(staged.directory, version, minimum), force,
                          health=healthy)
    assert files(root) == before
    assert version_files(paths.on_host(paths.INSTALL_DIR, root)) == tree


def test_files_that_cannot_be_installed_are_named_in_the_reason(host, monkeypatch):
    """copytree gathers what it could not copy in one shutil.Error: the reason names the
    first file and why (as a sandbox refusing a setgid bit did), not a list of tuples."""
    root, staged = host
    copy = shutil.copyfile

    def refused_for_python_files(source, target, **kwargs):
        if os.fspath(source).endswith(".py"):
            raise PermissionError(1, "Operation not permitted", str(target))
        return copy(source, target, **kwargs)
    monkeypatch.setattr(shutil, "copyfile", refused_for_python_files)
    with pytest.raises(self_update.RolledBack) as failed:
        self_update.apply(root, staged, health=healthy)
    reason = str(failed.value)
    assert re.search(rf"/\.{re.escape(NEW)}\.partial/\S+\.py: \[Errno 1\] Operation not "
                     r"permitted: .* \(and \d+ more\); check the disk", reason), reason
    assert "DirEntry" not in reason
    assert self_update.installed_version(root) == OLD


def test_support_may_go_back_with_force_downgrade(host):
    root, _ = host
    older = staged_release(write_tree(root.parent / "older", "0.0.9"), "0.0.9", "0.0.1")
    assert self_update.apply(root, older, True, health=healthy).result == "applied"
    assert self_update.installed_version(root) == "0.0.9"


def test_never_during_a_setup_or_app_update_holding_the_lock(host):
    root, staged = host
    with runlock.held(root), pytest.raises(self_update.Refused, match="another setup or update"):
        self_update.apply(root, staged, health=healthy)
    assert self_update.installed_version(root) == OLD


def test_history_records_versions_signer_duration_and_outcome(host):
    root, _ = host
    entry = self_update.record(root, "apply", 0.0, "rolled-back", from_version=OLD,
                               to_version=NEW, signer=SIGNER, reason="the banner failed")
    assert entry["duration_s"] > 0
    self_update.record(root, "check", 0.0, "available", from_version=OLD, to_version=NEW,
                       signer=None)
    history = state.read(state.MAINTENANCE, root)["self_updates"]
    assert [(e["action"], e["outcome"], e["signer"]) for e in history] == [
        ("check", "available", None), ("apply", "rolled-back", SIGNER)]
    for _ in range(maintenance.SELF_UPDATES_KEPT + 3):
        self_update.record(root, "check", 0.0, "up-to-date", from_version=OLD,
                           to_version=None, signer=None)
    assert len(state.read(state.MAINTENANCE, root)["self_updates"]) == \
        maintenance.SELF_UPDATES_KEPT


# --- power loss at any point --------------------------------------------------------------

# What the apply does that a power loss can fall between: each call is a kill point.
KILL_POINTS = ((state, "write_atomically"), (os, "rename"), (os, "replace"),
               (shutil, "rmtree"), (shutil, "copytree"), (shutil, "copy2"),
               (subprocess, "run"), (state, "fsync_directory"), (os, "unlink"), (os, "symlink"))


def run_killed_at(kill_at: int | None, work, at_journal: tuple[str, str] | None = None) -> int:
    """Run `work` in a child process that SIGKILLs itself before its `kill_at`-th kill
    point (never when None), or, given `at_journal` ("before" or "after", a step), just
    before or after the journal records that step; the number of kill points it passed,
    or -1 when killed."""
    counter_read, counter_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: count, and die where asked
        os.close(counter_read)
        passed = 0

        def point(original):
            def counted(*args, **kwargs):
                nonlocal passed
                if passed == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                passed += 1
                return original(*args, **kwargs)
            return counted

        def journal_point(original):
            def written(root, journal):
                when, step = at_journal
                if when == "before" and journal["step"] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                original(root, journal)
                if when == "after" and journal["step"] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
            return written

        for module, name in KILL_POINTS:
            setattr(module, name, point(getattr(module, name)))
        if at_journal:
            self_update._write_journal = journal_point(self_update._write_journal)
        with contextlib.suppress(BaseException):  # the parent judges the outcome on disk
            work()
        os.write(counter_write, str(passed).encode())
        os._exit(0)
    os.close(counter_write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(counter_read) as fp:
        told = fp.read()
    return -1 if os.WIFSIGNALED(status) else int(told)


def health_says(problem):
    return lambda root: problem


@functools.cache
def kill_points_in_a_whole_apply(base: Path, failing: bool) -> int:
    root = base / f"count-{failing}"
    shutil.copytree(template(base)[0], root, symlinks=True)
    staged = staged_release(template(base)[1])
    health = health_says("made to fail" if failing else None)
    return run_killed_at(None, lambda: self_update.apply(root, staged, health=health))


def fresh_copy(template_root: Path) -> Path:
    root = template_root.parent / f"kill-{os.urandom(4).hex()}"
    shutil.copytree(template_root, root, symlinks=True)
    return root


def killed_then_recovered(root: Path, staged: Staged, failing: bool, kill_at: int | None,
                          at_journal: tuple[str, str] | None = None,
                          recovery_kill_at: int | None = None) -> None:
    """Kill an apply where asked, recover (itself killed once where asked, then run again
    as the next boot would), and check the appliance runs exactly the old version with its
    state files as they were, or exactly the new one with its state files migrated, and
    that the history records the apply once."""
    before = files(root)
    old_tree = version_files(self_update.version_dir(root, OLD))
    health = health_says("made to fail" if failing else None)
    run_killed_at(kill_at, lambda: self_update.apply(root, staged, health=health), at_journal)
    journal = self_update.read_journal(root)
    committed = journal is not None and journal["step"] == self_update.COMMIT
    if recovery_kill_at is not None:  # the power goes again, during recovery
        run_killed_at(recovery_kill_at, lambda: self_update.recover(root))
    self_update.recover(root)

    assert self_update.read_journal(root) is None
    version = self_update.installed_version(root)
    if journal is None:  # the apply had finished, or had not begun
        assert version == OLD or not failing
    else:
        assert version == (NEW if committed else OLD)
    assert os.readlink(paths.on_host(paths.CURRENT_DIR, root)) == f"versions/{version}"
    installed = version_files(self_update.version_dir(root, version))
    if version == OLD:
        assert installed == old_tree
        assert files(root) == before
    else:
        shipped = version_files(staged.directory)
        kept = [*self_update.SITE_FILES, state.HOST_RELEASE_TRUST.filename]
        assert installed == {**shipped, **{name: old_tree[name] for name in kept
                                           if name in old_tree}}
        assert json.loads(state.SELECTED_RELEASE.path(root).read_text())["source"] == "git"
        for file in self_update.snapshotted():
            state.read(file, root)  # every state file valid
    leftovers = {p.name for p in paths.on_host(paths.VERSIONS_DIR, root).iterdir()}
    assert leftovers <= {OLD, NEW} and version in leftovers
    # The history has it once, however often the power went: none only when the apply
    # was cut short before its journal.
    outcomes = [e["outcome"] for e in state.read(state.MAINTENANCE, root)["self_updates"]]
    if version == NEW:
        assert outcomes == ["applied"]
    elif journal is not None:
        assert outcomes == ["rolled-back"]
    else:
        assert outcomes == [] or (failing and outcomes == ["rolled-back"])


STEPS = (self_update.SNAPSHOT, self_update.INSTALL, self_update.SWITCH, self_update.MIGRATE,
         self_update.RESTART, self_update.HEALTH, self_update.COMMIT, self_update.ROLLBACK)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("failing", [False, True], ids=["healthy", "failing"])
def test_a_kill_at_each_step_leaves_the_old_version_or_the_new(host, step, when, failing):
    template_root, staged = host
    killed_then_recovered(fresh_copy(template_root), staged, failing, None, (when, step))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data(), failing=st.booleans())
def test_a_kill_at_any_point_then_during_recovery_leaves_the_old_version_or_the_new(
        host, tmp_path_factory, data, failing):
    template_root, staged = host
    total = kill_points_in_a_whole_apply(
        tmp_path_factory.getbasetemp() / "self-update-template", failing)
    kill_at = data.draw(st.integers(0, total), label="kill_at")
    recovery_kill_at = data.draw(st.none() | st.integers(0, 60), label="recovery_kill_at")
    root = fresh_copy(template_root)
    killed_then_recovered(root, staged, failing, kill_at, None, recovery_kill_at)
    shutil.rmtree(root)


@pytest.mark.parametrize("failing", [False, True], ids=["healthy", "failing"])
def test_a_kill_just_after_the_journal_is_gone_loses_no_history(host, failing):
    """The last moment the power can go: the self-update settled and its journal removed.
    Nothing is left to recover, so the history must already have it."""
    root, staged = fresh_copy(host[0]), host[1]

    def apply_then_die_with_the_journal():
        forget = self_update._forget

        def forget_then_die(where):
            forget(where)
            os.kill(os.getpid(), signal.SIGKILL)
        self_update._forget = forget_then_die
        self_update.apply(root, staged, health=health_says("made to fail" if failing else None))

    assert run_killed_at(None, apply_then_die_with_the_journal) == -1
    assert self_update.read_journal(root) is None
    assert self_update.recover(root) is None
    outcomes = [e["outcome"] for e in state.read(state.MAINTENANCE, root)["self_updates"]]
    assert outcomes == ["rolled-back" if failing else "applied"]


def test_the_journal_names_each_step_before_it_runs(host, monkeypatch):
    """What recovery relies on: the journal's step is written before the step's work."""
    root, staged = host
    seen = []
    original = self_update._write_journal

    def watching(root_, journal):
        seen.append(journal["step"])
        original(root_, journal)

    monkeypatch.setattr(self_update, "_write_journal", watching)
    with pytest.raises(self_update.RolledBack):
        self_update.apply(root, staged, health=health_says("made to fail"))
    assert seen == ["snapshot", "install", "switch", "migrate", "restart", "health",
                    "rollback"]


def test_recovery_without_a_journal_changes_nothing(host):
    root, _ = host
    tree = version_files(paths.on_host(paths.INSTALL_DIR, root))
    assert self_update.recover(root) is None
    assert version_files(paths.on_host(paths.INSTALL_DIR, root)) == tree


def test_a_systemctl_that_fails_rolls_back(host, monkeypatch):
    root, staged = host
    monkeypatch.setenv("FAKE_SYSTEMCTL_FAIL", "1")
    with pytest.raises(self_update.RolledBack, match="systemctl daemon-reload exited 1"):
        self_update.apply(root, staged, health=healthy)
    assert self_update.installed_version(root) == OLD



# --- check, run, the CLI and the web's request -----------------------------------------------

@pytest.fixture
def releases(monkeypatch, host):
    """The host release module offering NEW, and staging it as the `host` fixture's staged
    tree; `refuse` makes stage refuse."""
    root, staged = host
    refusals = []

    def stage(root_, version, into):
        if refusals:
            raise host_release.Refused(refusals[0])
        assert version == NEW and into.is_dir()
        return staged

    monkeypatch.setattr(host_release, "available", lambda root_: [
        host_release.Available("latest", "", "2026-12-02T10:00:00Z"),
        host_release.Available(NEW, "Fixes the banner.\nFaster status.", "2026-12-01T10:00:00Z"),
        host_release.Available(OLD, "", "2026-11-01T10:00:00Z")])
    monkeypatch.setattr(host_release, "stage", stage)
    monkeypatch.setattr(self_update, "check_health", healthy)
    return root, refusals


def test_check_lists_what_is_offered_and_records_it(releases):
    root, _ = releases
    found = self_update.check(root)
    assert found["installed"] == OLD and found["entry"]["outcome"] == "available"
    lines = self_update.check_lines(found)
    assert "  Fixes the banner." in lines
    assert lines[-1] == f"to apply it: sudo alga-appliance self-update --apply {NEW}"
    [entry] = state.read(state.MAINTENANCE, root)["self_updates"]
    assert (entry["action"], entry["to_version"]) == ("check", NEW)
    # For the Updates page: what was offered, with the notes; only NEW is newer.
    assert state.read(state.SELF_UPDATE_CHECK, root)["available"][0] == {
        "version": NEW, "notes": "Fixes the banner.\nFaster status.",
        "created": "2026-12-01T10:00:00Z"}
    assert [a["version"] for a in self_update.offer(root, OLD)["available"]] == [NEW]


def test_run_stages_applies_and_records_the_signer(releases):
    root, _ = releases
    entry = self_update.run(root, None)
    assert (entry["outcome"], entry["from_version"], entry["to_version"], entry["signer"]) == (
        "applied", OLD, NEW, SIGNER)
    assert self_update.installed_version(root) == NEW
    assert not (paths.on_host(paths.SELF_UPDATE_DIR, root) / "staging").exists()


def test_a_release_that_fails_verification_is_refused_and_recorded(releases):
    root, refusals = releases
    refusals.append("the signature was made by a key this appliance does not trust")
    entry = self_update.run(root, NEW)
    assert entry["outcome"] == "refused" and "does not trust" in entry["reason"]
    assert self_update.installed_version(root) == OLD


def test_the_cli_checks_and_applies_without_a_traceback(releases):
    root, refusals = releases
    runner = CliRunner()
    checked = runner.invoke(cli.main, ["--root", str(root), "self-update", "--check"])
    assert checked.exit_code == 0 and f"available: {NEW}" in checked.output
    neither = runner.invoke(cli.main, ["--root", str(root), "self-update"])
    assert neither.exit_code == 2 and "exactly one of --check and --apply" in neither.output
    hostile = runner.invoke(cli.main, ["--root", str(root), "self-update", "--apply",
                                       "1.0; rm -rf /"])
    assert hostile.exit_code == 2 and "is not a version" in hostile.output
    refusals.append("no host-release key is pinned: this ISO was built without one")
    refused = runner.invoke(cli.main, ["--root", str(root), "self-update", "--apply", NEW])
    assert refused.exit_code == 1 and "refused" in refused.output
    assert "Traceback" not in refused.output
    refusals.clear()
    applied = runner.invoke(cli.main, ["--root", str(root), "self-update", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert f"apply {OLD} → {NEW}: applied" in applied.output and SIGNER in applied.output


def test_the_web_asks_through_the_spool_and_the_oneshot_does_it(releases):
    root, _ = releases
    paths.on_host(paths.SPOOL_DIR, root).mkdir(parents=True, exist_ok=True)
    spool.submit(spool.SELF_UPDATE, {"action": "apply", "version": NEW, "who": "web",
                                     "requested_at": state.timestamp()}, root)
    assert busy.busy(root) == "a self-update request is already waiting to start"
    entry = self_update.accept(root)
    assert entry["outcome"] == "applied" and self_update.installed_version(root) == NEW
    assert self_update.accept(root) is None


def test_a_running_self_update_is_what_busy_names(host):
    root, staged = host
    seen = []
    self_update.apply(root, staged, health=lambda root_: seen.append(busy.busy(root_)))
    assert seen == [f"a self-update to version {NEW} is running (health) since "
                    f"{seen[0].rsplit(' ', 1)[1]}"]


def test_a_release_that_adds_and_drops_units_relinks_and_enables_them(host, tmp_path):
    root, staged = host
    changed = tmp_path / "changed"
    shutil.copytree(staged.directory, changed)
    (changed / "units/alga-appliance-new.timer").write_text(
        "[Timer]\nOnCalendar=daily\n\n[Install]\nWantedBy=timers.target\n")
    (changed / "units/alga-appliance-console.timer").unlink()
    self_update.apply(root, staged_release(changed), health=healthy)
    unit_dir = paths.on_host(paths.SYSTEMD_UNIT_DIR, root)
    assert os.readlink(unit_dir / "alga-appliance-new.timer") == \
        f"{paths.CURRENT_DIR}/units/alga-appliance-new.timer"
    assert not (unit_dir / "alga-appliance-console.timer").is_symlink()
    assert "enable alga-appliance-new.timer" in systemctl_calls(tmp_path)
    # The drop-in for systemd's own unit stays linked through current.
    assert (unit_dir / "systemd-networkd-wait-online.service.d/50-alga-appliance.conf"
            ).is_symlink()


def test_the_web_api_shows_and_spools_self_updates_as_documented(releases):
    root, _ = releases
    paths.on_host(paths.SPOOL_DIR, root).mkdir(parents=True, exist_ok=True)
    auth = {"Authorization": f"Bearer {token.read_token(root)}"}
    with serve_wsgi(web.make_app(root)) as url:
        def call(method, body=None, headers=auth):
            response = requests.request(method, f"{url}/api/self-update", json=body,
                                        headers=headers, timeout=10)
            assert_documented(response, method, "/api/self-update")
            return response

        shown = call("GET").json()
        assert (shown["installed"], shown["running"], shown["history"]) == (OLD, None, [])
        assert call("GET", headers={}).status_code == 401
        for hostile in ({"action": "apply", "force_downgrade": True},
                        {"action": "apply", "version": "../../etc"},
                        {"action": "apply", "who": "cli"}, {"action": "reboot"}):
            refused = call("POST", hostile)
            assert refused.status_code == 422, hostile
        assert call("POST", [1]).status_code == 400
        assert call("POST", {"action": "apply", "version": NEW}).status_code == 202
        again = call("POST", {"action": "check"})
        assert again.status_code == 409
        assert "a self-update request is already waiting" in again.json()["error"]
        assert call("GET").json()["waiting"]["kind"] == "self-update"
        self_update.accept(root)
        shown = call("GET").json()
        assert shown["installed"] == NEW
        assert [(e["action"], e["outcome"]) for e in shown["history"]] == [("apply", "applied")]


def test_recovery_records_what_it_did_in_the_history(host):
    root, staged = host
    run_killed_at(None, lambda: self_update.apply(root, staged, health=healthy),
                  ("after", self_update.RESTART))
    assert self_update.recover(root) == self_update.Outcome(OLD, NEW, "rolled-back")
    [entry] = state.read(state.MAINTENANCE, root)["self_updates"]
    assert (entry["outcome"], entry["signer"]) == ("rolled-back", SIGNER)
    assert entry["reason"].startswith("interrupted during step restart")


def test_the_pinned_keys_are_kept_unless_the_release_carries_its_own(host, tmp_path):
    root, staged = host
    trust = paths.on_host(paths.CURRENT_DIR, root) / state.HOST_RELEASE_TRUST.filename
    pins = trust.read_text()
    self_update.apply(root, staged, health=healthy)
    assert paths.on_host(paths.CURRENT_DIR, root).joinpath(
        state.HOST_RELEASE_TRUST.filename).read_text() == pins
    rotated = tmp_path / "rotated"
    write_tree(rotated, "0.3.0")
    (rotated / state.HOST_RELEASE_TRUST.filename).write_text('{"next": "pins"}\n')
    self_update.apply(root, staged_release(rotated, "0.3.0", NEW), health=healthy)
    assert paths.on_host(paths.CURRENT_DIR, root).joinpath(
        state.HOST_RELEASE_TRUST.filename).read_text() == '{"next": "pins"}\n'


def test_the_maintenance_summary_names_the_last_self_update(host):
    root, _ = host
    self_update.record(root, "apply", 0.0, "rolled-back", from_version=OLD, to_version=NEW,
                       signer=SIGNER, reason="the banner failed")
    shown = CliRunner().invoke(cli.main, ["--root", str(root), "maintenance"])
    assert shown.exit_code == 0, shown.output
    assert (f"last self-update: self-update apply {OLD} → {NEW}: rolled-back in "
            in shown.output)
    assert f"signed by {SIGNER}: the banner failed" in shown.output


@pytest.mark.parametrize(("args", "asked"), [
    (["--apply"], (None, False)),
    (["--apply", "--force-downgrade"], (None, True)),
    (["--force-downgrade", "--apply", "0.0.9"], ("0.0.9", True)),
])
def test_apply_takes_an_optional_version_and_the_downgrade_flag_in_any_order(
        monkeypatch, args, asked):
    seen = []
    monkeypatch.setattr(self_update, "run", lambda root, version, force: seen.append(
        (version, force)) or {"action": "apply", "from_version": OLD, "to_version": NEW,
                              "signer": None, "outcome": "applied", "reason": None,
                              "duration_s": 1.0})
    result = CliRunner().invoke(cli.main, ["self-update", *args])
    assert result.exit_code == 0, result.output
    assert seen == [asked]
