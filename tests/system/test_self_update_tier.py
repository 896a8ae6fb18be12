"""Issue 23 on a real systemd: a self-update cut short by a power loss at any point leaves the
appliance on the old version or the new one, never between.

The appliance ISO pins a throwaway host-release key and a repository on the tests' real
registry, which listens on the host side of the container's link; two releases of the
working tree are published there as the release engineer publishes them: a good one and one
whose status collector fails (its health check fails, so the apply rolls itself back).

A kill point is the N-th rename(2) or unlink(2) of the admin's `alga-appliance self-update
--apply` inside the container: strace, attached from the host, kills the apply on entering
that call (the call not made), and the whole container is killed at once right after (its
init SIGKILLed: a power loss; its files are on the host, so the root stays as it was). The
points are found by one traced apply of each release (calibration); every step of the
journal is hit at its end (all its work done, the next step not yet recorded), the rollback
of the failing release twice, and hypothesis draws more among all the points. Then the
container boots again: the real recover unit settles the journal before the web service,
and the appliance must be whole on the version the journal dictates.
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.host_releases import REPOSITORY, tree_with_version
from support.images import TEST_OPTIONS
from support.machines import wait_for
from support.netlab import NetNamespace
from support.nspawn import NSPAWN_TIER, booted_appliance, healthz
from support.published_host_release import publish_release
from support.registry import Registry

from host.core import paths, state
from host.core.version import __version__
from host.update import self_update

pytestmark = NSPAWN_TIER

GOOD, BROKEN = "0.99.0", "0.98.0"
STEPS = (self_update.SNAPSHOT, self_update.INSTALL, self_update.SWITCH, self_update.MIGRATE,
         self_update.RESTART, self_update.HEALTH, self_update.COMMIT)
# The order the journal takes them in: the failing release's health check sends it to
# ROLLBACK instead of COMMIT.
JOURNAL_STEPS = {GOOD: STEPS, BROKEN: (*STEPS[:-1], self_update.ROLLBACK)}
# Where the journal is inside the container, as strace shows its renames and unlinks.
JOURNAL = str(Path(state.SELF_UPDATE_JOURNAL.directory, state.SELF_UPDATE_JOURNAL.filename))
KILLED_CALLS = ("rename", "unlink")
INSIDE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "LANG": "C.UTF-8", "HOME": "/root"}
# Rewritten by the running appliance on its own (the status timer) or by the apply's record
# (the history): compared otherwise.
LIVE_FILES = (state.STATUS.filename, state.MAINTENANCE.filename)
BROKEN_COLLECTOR = (
    '    """Write the status snapshot (what the status timer runs, and on demand)."""\n',
    '    raise click.ClickException("this test release\'s status collector is '
    'broken on purpose")\n')
BOOT_SECONDS = 180


@dataclass(frozen=True)
class KillPoint:
    """The `number`-th `call` of the apply process; `step` is the journal's at that moment
    (None: no journal, not yet or, `settled`, no longer)."""

    version: str
    call: str
    number: int
    step: str | None
    settled: bool = False


@dataclass
class Lab:
    machine: object
    pristine: Path  # the booted appliance's root, taken once, restored before each example
    manifests: dict  # version -> its published host release manifest
    points: dict  # version -> [KillPoint], in the order the apply reaches them
    seconds: list  # time per example


# --- the releases, the ISO that pins them, the appliance ---------------------------------------

@pytest.fixture(scope="module")
def node():
    with NetNamespace() as namespace:
        yield namespace


@pytest.fixture(scope="module")
def registry(node, ca):
    with Registry(ca, address=node.host_address, blob_address=node.host_address) as served:
        yield served


@pytest.fixture(scope="module")
def manifests(registry, ca, signing_key, tmp_path_factory) -> dict:
    """GOOD and BROKEN published as `isobuild host-release` publishes them: their manifests."""
    base = tmp_path_factory.mktemp("host-releases")
    published = {}
    for version in (GOOD, BROKEN):
        tree = tree_with_version(base, version)
        if version == BROKEN:
            cli = tree / "host/cli.py"
            assert BROKEN_COLLECTOR[0] in cli.read_text()
            cli.write_text(cli.read_text().replace(BROKEN_COLLECTOR[0], "".join(BROKEN_COLLECTOR)))
        out = base / f"out-{version}"
        publish_release(tree, ca, signing_key, f"{registry.host}/{REPOSITORY}", out)
        manifest = next(out.glob("*.manifest.json"))
        published[version] = json.loads(manifest.read_text())
    return published


@pytest.fixture(scope="module")
def lab(node, registry, manifests, ca, signing_key, replica_iso, build_appliance,
        tmp_path_factory) -> Lab:
    options = dataclasses.replace(TEST_OPTIONS, host_release_keys=(str(signing_key.public),),
                                  host_release_repository=f"{registry.host}/{REPOSITORY}")
    iso = build_appliance(replica_iso, options, name="alga-self-update.iso")
    work = tmp_path_factory.mktemp("nspawn-self-update")
    with booted_appliance(iso.output, work, node=node) as machine:
        wait_for(lambda: healthz(machine), BOOT_SECONDS, "the web service on :8080")
        shutil.copy(ca.ca_pem_path, machine.root / "etc/alga-appliance/mirror-ca.pem")
        state.write(state.ENDPOINTS, {"ca_bundle": "/etc/alga-appliance/mirror-ca.pem"},
                    machine.root)
        machine.stop()
        pristine = work / "pristine"
        _copy_root(machine.root, pristine)
        found = Lab(machine, pristine, manifests, {}, [])
        found.points = _calibrate(found, work)
        yield found
        by_step = {version: dict(Counter(p.step for p in points))
                   for version, points in found.points.items()}
        print(f"\nkill points by step: {by_step}\n"
              f"seconds per example: {[round(s) for s in found.seconds]}")


def _copy_root(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(target)], check=True)


def _restore_and_boot(lab: Lab) -> None:
    lab.machine.stop()
    _copy_root(lab.pristine, lab.machine.root)
    _boot(lab.machine)


def _boot(machine) -> None:
    machine.start()
    wait_for(lambda: healthz(machine), BOOT_SECONDS, "the web service after the boot")


# --- the apply, traced and killed ---------------------------------------------------------------

def _apply(machine, version: str, trace: Path, point: KillPoint | None = None) -> int:
    """`alga-appliance self-update --apply version` inside the container, as the admin runs
    it, its renames and unlinks traced into `trace` by strace from the host, which kills it
    at `point`; its exit status (-9 when killed: nsenter dies as its child did)."""
    # It waits for a line on stdin before it execs the CLI, so strace is attached before the
    # apply's first call.
    shell = subprocess.Popen(
        machine.enter("sh", "-c", f"read go; exec alga-appliance self-update --apply {version}"),
        env=INSIDE_ENV, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    apply_pid = wait_for(lambda: _child(shell.pid), 30, "the apply to start")
    inject = [] if point is None else [
        "-e", f"inject={point.call}:signal=SIGKILL:when={point.number}"]
    tracer = subprocess.Popen(["strace", "-qq", "-o", str(trace), "-e",
                               f"trace={','.join(KILLED_CALLS)}", *inject, "-p", str(apply_pid)],
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: _traced(apply_pid), 30, "strace to attach")
    shell.stdin.write(b"go\n")
    shell.stdin.close()
    status = shell.wait(600)
    tracer.wait(60)
    return status


def _child(parent: int) -> int | None:
    children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True,
                              text=True).stdout.split()
    return int(children[0]) if children else None


def _traced(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return line.split(":", 1)[1].strip() != "0"
    raise AssertionError(f"no TracerPid in /proc/{pid}/status")


CALL = re.compile(r'^(?P<call>rename|unlink)\((?P<args>.*)\)\s+= ')


def kill_points(version: str, trace: str) -> list[KillPoint]:
    """Every rename and unlink of a whole apply's trace, with the journal's step at each:
    a rename onto the journal writes the next step of JOURNAL_STEPS, its unlink ends it."""
    counts = dict.fromkeys(KILLED_CALLS, 0)
    written, step, settled, points = iter(JOURNAL_STEPS[version]), None, False, []
    for line in trace.splitlines():
        call = CALL.match(line)
        if call is None:
            continue
        counts[call["call"]] += 1
        points.append(KillPoint(version, call["call"], counts[call["call"]], step, settled))
        if call["args"].endswith(f'"{JOURNAL}"'):
            step = next(written) if call["call"] == "rename" else None
            settled = step is None
    return points


def _calibrate(lab: Lab, work: Path) -> dict:
    """The kill points of both releases, from one whole traced apply of each, from the
    pristine root as every example starts from (BROKEN rolls back, GOOD applies)."""
    points = {}
    for version, exit_status in ((BROKEN, 1), (GOOD, 0)):
        _restore_and_boot(lab)
        trace = work / f"calibration-{version}.strace"
        assert _apply(lab.machine, version, trace) == exit_status, lab.machine.journal()
        points[version] = kill_points(version, trace.read_text())
        assert {p.step for p in points[version]} >= set(JOURNAL_STEPS[version]), \
            points[version]
    return points


def end_of(lab: Lab, version: str, step: str) -> KillPoint:
    """The last point while the journal names `step`: its work done, the next not begun."""
    return [p for p in lab.points[version] if p.step == step][-1]


# --- after the power loss -------------------------------------------------------------------------

def state_bytes(root: Path) -> dict[str, bytes]:
    return {f.filename: f.path(root).read_bytes() for f in self_update.snapshotted()
            if f.path(root).exists() and f.filename not in LIVE_FILES}


def history(root: Path) -> list[dict]:
    return (state.read(state.MAINTENANCE, root) or {"self_updates": []})["self_updates"]


def systemd_property(machine, unit: str, name: str) -> str:
    return machine.run("systemctl", "show", f"--property={name}", "--value", unit).strip()


def assert_version_whole(lab: Lab, version: str) -> None:
    """Every file of `version` present as it was published (as the ISO installed it, for
    the old one); the site files are the installed ones by design."""
    directory = paths.on_host(paths.VERSIONS_DIR, lab.machine.root) / version
    if version == __version__:
        assert _files(directory) == _files(paths.on_host(paths.VERSIONS_DIR, lab.pristine) /
                                           version)
        return
    kept = (*self_update.SITE_FILES, state.HOST_RELEASE_TRUST.filename)
    for entry in lab.manifests[version]["files"]:
        file = directory / entry["path"]
        assert file.is_file(), entry["path"]
        if entry["path"] not in kept:
            assert hashlib.sha256(file.read_bytes()).hexdigest() == entry["sha256"], \
                entry["path"]


def _files(directory: Path) -> dict[str, bytes]:
    """The files of a version directory but the bytecode Python caches beside them."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def killed_at(lab: Lab, point: KillPoint, trace: Path) -> dict:
    """Apply `point.version`, killed at `point`, then the power lost; what the journal and
    `current` said then."""
    machine = lab.machine
    status = _apply(machine, point.version, trace, point)
    machine.power_off()
    assert status != 0, f"the apply finished before {point}"
    journal = state.read(state.SELF_UPDATE_JOURNAL, machine.root)
    return {"step": journal and journal["step"],
            "current": os.readlink(paths.on_host(paths.CURRENT_DIR, machine.root))}


def assert_old_or_new_after_boot(lab: Lab, point: KillPoint, before: dict, at_kill: dict,
                                 history_before: list) -> str:
    machine, root = lab.machine, lab.machine.root
    _boot(machine)
    target = point.version
    expected = target if at_kill["step"] == self_update.COMMIT else (
        __version__ if at_kill["step"] else at_kill["current"].removeprefix("versions/"))
    assert expected in (__version__, target)
    assert os.readlink(paths.on_host(paths.CURRENT_DIR, root)) == f"versions/{expected}"
    assert_version_whole(lab, expected)
    assert not self_update.journal_path(root).exists()
    assert not self_update.snapshot_dir(root).exists()
    versions = {d.name for d in paths.on_host(paths.VERSIONS_DIR, root).iterdir()}
    assert versions == {__version__, expected}
    auth = {"Authorization": f"Bearer {machine.token()}"}
    shown = requests.get(f"{machine.url}/api/self-update", headers=auth, timeout=10).json()
    # The web service runs that version's code (it started after the recovery), not only
    # names it.
    assert (shown["installed"], shown["serving"], shown["running"]) == (expected, expected, None)
    if expected == __version__:
        assert state_bytes(root) == before
    else:
        for file in self_update.snapshotted():
            state.read(file, root)  # valid in the new version's shapes, or this raises
    # The recover unit settled the journal before the web service started, in this boot.
    recover = "alga-appliance-self-update-recover.service"
    if at_kill["step"] is None:
        assert systemd_property(machine, recover, "ConditionResult") == "no"
    else:
        assert systemd_property(machine, recover, "Result") == "success", machine.journal()
        settled = int(systemd_property(machine, recover, "ExecMainExitTimestampMonotonic"))
        web = int(systemd_property(machine, "alga-appliance.service",
                                   "ExecMainStartTimestampMonotonic"))
        assert 0 < settled <= web
    entries = history(root)
    if at_kill["step"] is not None:
        entry = entries[0]
        assert (entry["action"], entry["from_version"], entry["to_version"]) == (
            "apply", __version__, target)
        if expected == target:
            assert entry["outcome"] == "applied" and entry["reason"] is None
        else:
            assert entry["outcome"] == "rolled-back"
            assert (f"during step {at_kill['step']}" in entry["reason"] or
                    "status collector is broken on purpose" in entry["reason"]), entry
        assert entries[1:] == history_before[:len(entries) - 1]
    elif point.settled:  # the apply had settled: its outcome is recorded all the same
        outcome = "applied" if expected == target else "rolled-back"
        assert (entries[0]["outcome"], entries[0]["to_version"]) == (outcome, target), \
            entries[:2]
        assert entries[1:] == history_before[:len(entries) - 1]
    else:  # killed before it began: nothing changed, nothing to record
        assert entries == history_before
    return expected


def power_loss_example(lab: Lab, point: KillPoint, trace: Path) -> dict:
    started = time.monotonic()
    _restore_and_boot(lab)
    before, history_before = state_bytes(lab.machine.root), history(lab.machine.root)
    at_kill = killed_at(lab, point, trace)
    try:
        assert_old_or_new_after_boot(lab, point, before, at_kill, history_before)
    except AssertionError as exc:
        raise AssertionError(f"{point}, at the kill {at_kill}: {exc}\n"
                             f"{lab.machine.journal()}") from exc
    lab.seconds.append(time.monotonic() - started)
    return at_kill


# --- the kill points ------------------------------------------------------------------------------

@pytest.mark.parametrize("step", STEPS)
def test_a_power_loss_at_the_end_of_each_step(lab, step, tmp_path):
    point = end_of(lab, GOOD, step)
    at_kill = power_loss_example(lab, point, tmp_path / "apply.strace")
    assert at_kill["step"] == step


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_power_loss_while_a_failed_release_is_rolled_back(lab, where, tmp_path):
    rollback = [p for p in lab.points[BROKEN] if p.step == self_update.ROLLBACK]
    point = rollback[0] if where == "first" else rollback[-1]
    at_kill = power_loss_example(lab, point, tmp_path / "apply.strace")
    assert at_kill["step"] == self_update.ROLLBACK


@pytest.mark.parametrize("version", [GOOD, BROKEN])
def test_a_power_loss_at_the_last_call_of_the_apply(lab, version, tmp_path):
    """Its outcome recorded, its journal about to go: the boot settles it again, and the
    history has the outcome once."""
    power_loss_example(lab, lab.points[version][-1], tmp_path / "apply.strace")


@settings(max_examples=3, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_power_loss_anywhere(lab, tmp_path, data):
    version = data.draw(st.sampled_from((GOOD, BROKEN)), label="release")
    point = data.draw(st.sampled_from(lab.points[version]), label="kill point")
    power_loss_example(lab, point, tmp_path / f"apply-{time.monotonic_ns()}.strace")


def test_an_apply_after_a_power_loss_works(lab, tmp_path):
    """After the last example (the old version or the new, settled at boot): from a fresh
    root killed once mid-install, a whole apply succeeds."""
    power_loss_example(lab, end_of(lab, GOOD, self_update.INSTALL), tmp_path / "killed.strace")
    assert _apply(lab.machine, GOOD, tmp_path / "apply.strace") == 0, lab.machine.journal()
    root = lab.machine.root
    assert os.readlink(paths.on_host(paths.CURRENT_DIR, root)) == f"versions/{GOOD}"
    assert history(root)[0]["outcome"] == "applied"
    wait_for(lambda: healthz(lab.machine), 60, "the web service on the new version")
