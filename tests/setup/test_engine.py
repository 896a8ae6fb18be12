"""The phase runner: state transitions, skip on unchanged inputs, classified failures,
and one setup at a time."""

import json

import pytest
from support.answers import parse_with_admin
from support.base import make_host_root

from host.core import paths, runlock, state
from host.core.failures import OperationFailed
from host.setup import engine, phases

INPUTS = {"channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
          "proxy": None, "overrides": {}}


@pytest.fixture
def root(tmp_path, monkeypatch):
    make_host_root(tmp_path)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def chain(monkeypatch):
    """Two test phases in place of the real ones; `calls` records each run."""
    calls, behaviour = [], {}

    def make(name):
        def entry_point(ctx):
            calls.append(name)
            ctx.action(f"doing {name}")
            outcome = behaviour.get(name)
            if outcome is not None:
                raise outcome
        return phases.Phase(name, "k3s", reads=(state.SETUP_INPUTS,), entry_point=entry_point)
    test_phases = (make("first"), make("second"))
    monkeypatch.setattr(phases, "PHASES", test_phases)
    monkeypatch.setattr(engine, "PHASES", test_phases)
    return calls, behaviour


def install_state():
    return state.read(state.INSTALL_STATE)


def test_phases_record_their_progress_and_the_chain_succeeds(root, chain):
    calls, _ = chain
    state.write(state.SETUP_INPUTS, INPUTS)
    assert engine.run_phase("first") == 0
    assert install_state()["status"] == "running"
    assert engine.run_phase("second") == 0
    doc = install_state()
    assert doc["status"] == "succeeded" and doc["current_phase"] is None
    assert [doc["phases"][p]["state"] for p in ("first", "second")] == ["succeeded"] * 2
    assert doc["phases"]["first"]["last_action"] == "doing first"
    assert calls == ["first", "second"]
    log = (root / "var/log/alga-appliance/first.log").read_text()
    assert "→ doing first" in log


def test_rerun_skips_unchanged_and_reruns_changed(root, chain):
    calls, _ = chain
    state.write(state.SETUP_INPUTS, INPUTS)
    engine.run_phase("first")
    assert engine.run_phase("first") == 0
    assert install_state()["phases"]["first"]["state"] == "skipped"
    assert engine.run_phase("first") == 0  # still skipped, still not run again
    assert calls == ["first"]
    state.write(state.SETUP_INPUTS, {**INPUTS, "channel": "nightly"})
    engine.run_phase("first")
    assert calls == ["first", "first"]
    assert install_state()["phases"]["first"]["state"] == "succeeded"


def test_known_failure_is_classified_and_fails_the_chain(root, chain):
    _, behaviour = chain
    state.write(state.SETUP_INPUTS, INPUTS)
    behaviour["first"] = OperationFailed("dns", "ghcr.io does not resolve", "fix DNS")
    assert engine.run_phase("first") == engine.EXIT_FAILED
    doc = install_state()
    failure = doc["phases"]["first"]["failure"]
    assert doc["status"] == "failed" and doc["phases"]["first"]["state"] == "failed"
    assert failure == {
        "category": "dns", "last_action": "doing first", "suspected_cause":
        "ghcr.io does not resolve", "next_step": "fix DNS",
        "support_command": "sudo alga-appliance support-bundle",
        "log_excerpt": failure["log_excerpt"]}
    assert "failed: ghcr.io does not resolve" in failure["log_excerpt"]
    assert doc["phases"]["second"]["state"] == "pending"


def test_unexpected_error_takes_the_phase_category(root, chain):
    _, behaviour = chain
    state.write(state.SETUP_INPUTS, INPUTS)
    behaviour["first"] = RuntimeError("boom")
    assert engine.run_phase("first") == engine.EXIT_FAILED
    failure = install_state()["phases"]["first"]["failure"]
    assert failure["category"] == "k3s"
    assert failure["suspected_cause"] == "unexpected RuntimeError: boom"
    assert failure["next_step"] == ("try again; if it fails again, send the support bundle "
                                    "(sudo alga-appliance support-bundle)")


def test_a_failed_phase_runs_again_on_retry(root, chain):
    calls, behaviour = chain
    state.write(state.SETUP_INPUTS, INPUTS)
    behaviour["first"] = OperationFailed("network", "timeout", "retry")
    engine.run_phase("first")
    del behaviour["first"]
    assert engine.run_phase("first") == 0
    assert calls == ["first", "first"]
    assert install_state()["phases"]["first"]["failure"] is None


def test_one_setup_at_a_time(root, chain):
    with runlock.held(), pytest.raises(runlock.Busy, match="another setup or update"):
        engine.run_phase("first")


def test_preflight_without_inputs_fails_with_a_next_step(root):
    assert engine.run_phase("preflight") == engine.EXIT_FAILED
    failure = install_state()["phases"]["preflight"]["failure"]
    assert failure["suspected_cause"] == "setup has not been submitted yet"
    assert "complete setup" in failure["next_step"]


def test_install_state_file_is_schema_valid_json(root, chain):
    state.write(state.SETUP_INPUTS, INPUTS)
    engine.run_phase("first")
    raw = json.loads((root / "var/lib/alga-appliance/install-state.json").read_text())
    assert raw == install_state()


def test_a_new_admin_password_is_not_a_new_input_for_any_phase(root):
    """Each submission hashes the admin password with a new salt: a resumed setup must not
    run its finished phases again for that (the systemd tier's rerun found it), while a
    changed answer the phases act on still does."""
    first = parse_with_admin({"channel": "stable"}, "192.0.2.10")
    state.write(state.SETUP_INPUTS, first, root)
    digests = {p.name: engine.inputs_digest(p, root, "k") for p in phases.PHASES}
    again = parse_with_admin({"channel": "stable"}, "192.0.2.10")
    assert again["admin"] != first["admin"]  # another salt
    state.write(state.SETUP_INPUTS, again, root)
    assert {p.name: engine.inputs_digest(p, root, "k") for p in phases.PHASES} == digests
    state.write(state.SETUP_INPUTS, parse_with_admin({"channel": "nightly"}, "192.0.2.10"),
                root)
    changed = {p.name for p in phases.PHASES
               if engine.inputs_digest(p, root, "k") != digests[p.name]}
    assert changed == {p.name for p in phases.PHASES if state.SETUP_INPUTS in p.reads}
