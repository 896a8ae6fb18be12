"""Setup's sense of time (host/setup/timing.py, host/core/elapsed.py and the text of
host/setup/progress.py): step n of m, elapsed per step and in total, the estimate of what
remains from this appliance's own durations or the typical ones, the app stage from
status.json's tiers, and hostile clocks (a finish before its start, no start, huge spans)."""

import datetime
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.answers import parse_with_admin
from support.base import ROOT, make_host_root
from support.openapi_check import fits

from host.core import elapsed, paths, state
from host.core.validation import validate
from host.setup import chain, engine, phases, progress, request, timing

NOW = datetime.datetime(2026, 12, 7, 11, 0, 0, tzinfo=datetime.UTC)
TYPICAL = {step.name: step.typical_seconds for step in chain.CHAIN}
APP_TYPICAL = sum(step.typical_seconds for step in timing.APP_STEPS)


def assert_fits_the_api(progress_: dict) -> None:
    """As GET /api/install serves it: schemas/openapi.yaml's Timing."""
    assert fits(json.loads(json.dumps(progress_)), "#/components/schemas/Timing")


def at(seconds_before: int) -> str:
    return state.timestamp(NOW - datetime.timedelta(seconds=seconds_before))


def record(phase_state: str, started: int | None = None, finished: int | None = None) -> dict:
    """A phase record started and finished this many seconds before NOW."""
    return {"state": phase_state, "started_at": None if started is None else at(started),
            "finished_at": None if finished is None else at(finished), "last_action": None,
            "failure": None}


def install(status: str = "running", current: str | None = "k3s", **records) -> dict:
    phases_ = {name: records.get(name, record("pending")) for name in chain.NAMES}
    document = {"status": status, "current_phase": current, "updated_at": at(0),
                "request_id": None, "phases": phases_}
    validate(document, "install-state.schema.json", name="install state", source="test")
    return document


def tier(ready: bool, since: int, tier_state: str | None = None) -> dict:
    return {"ready": ready, "reason": "r", "since": at(since), "degraded": False,
            "state": tier_state or ("ready" if ready else "waiting")}


def status(collected: int = 5, **tiers) -> dict:
    names = ("platform", "core", "bootstrap", "login", "background", "fully_healthy")
    return {"collected_at": at(collected),
            "tiers": {name: tiers.get(name, tier(False, 600)) for name in names}}


RUNNING_K3S = install(preflight=record("succeeded", 300, 250), dns=record("succeeded", 250, 240),
                      k3s=record("running", 100))


def test_words_say_durations_precisely_while_short_and_rounded_as_they_grow():
    assert [elapsed.words(s) for s in (0, 1, 59, 60, 80, 599, 600, 3599, 3600, 3725,
                                       86399, 86400, 90000, 10 ** 12)] == [
        "0 s", "1 s", "59 s", "1 min", "1 min 20 s", "9 min 59 s", "10 min", "59 min",
        "1 h 00 min", "1 h 02 min", "23 h 59 min", "1 d 0 h", "1 d 1 h",
        "11574074 d 1 h"]
    assert elapsed.words(-5) == "0 s"  # never a negative span


def test_a_span_that_runs_backwards_or_misses_an_end_is_unknown():
    assert elapsed.seconds_between(NOW, NOW + datetime.timedelta(seconds=90)) == 90
    assert elapsed.seconds_between(NOW, NOW - datetime.timedelta(seconds=1)) is None
    assert elapsed.seconds_between(None, NOW) is None
    assert elapsed.seconds_between(NOW, None) is None


def test_a_running_phase_counts_step_n_of_m_elapsed_and_what_remains_from_typical_times():
    progress_ = timing.progress(RUNNING_K3S, None, NOW)
    assert (progress_["step"], progress_["of"], progress_["done"]) == (3, 9, 2)
    steps = {s["name"]: s for s in progress_["steps"]}
    assert [steps[n]["elapsed_seconds"] for n in chain.NAMES] == [50, 10, 100, None, None]
    assert steps["k3s"]["expected_from"] == "typical" and not steps["k3s"]["overdue"]
    assert progress_["elapsed_seconds"] == 160
    # k3s: 240 typical - 100 run; flux 180, release 60; then the app stage's typical times.
    assert progress_["remaining_seconds"] == 140 + 180 + 60 + APP_TYPICAL
    assert progress_["now"] == "2026-12-07T11:00:00Z"
    assert progress_["status_behind"] is None  # no app stage yet: nothing to be behind on
    assert_fits_the_api(progress_)


def test_this_appliances_own_durations_replace_the_typical_ones():
    learned = {**RUNNING_K3S, "durations": {"k3s": 400, "flux": 30}}
    progress_ = timing.progress(learned, None, NOW)
    steps = {s["name"]: s for s in progress_["steps"]}
    assert steps["k3s"]["expected_seconds"] == 400
    assert steps["k3s"]["expected_from"] == "this appliance"
    assert steps["release"]["expected_from"] == "typical"
    assert progress_["remaining_seconds"] == 300 + 30 + 60 + APP_TYPICAL


def test_a_phase_past_its_expected_time_is_overdue_and_adds_nothing_to_what_remains():
    late = install(preflight=record("succeeded", 1000, 990), dns=record("succeeded", 990, 980),
                   k3s=record("running", 900))
    progress_ = timing.progress(late, None, NOW)
    k3s = progress_["steps"][2]
    assert k3s["overdue"] and k3s["elapsed_seconds"] == 900
    assert progress_["remaining_seconds"] == 180 + 60 + APP_TYPICAL


def test_a_failed_run_has_no_estimate_and_stops_at_the_failed_step():
    failed = install("failed", None, preflight=record("succeeded", 300, 250),
                     dns=record("failed", 250, 200))
    progress_ = timing.progress(failed, None, NOW)
    assert (progress_["step"], progress_["remaining_seconds"]) == (2, None)
    assert progress_["steps"][1]["elapsed_seconds"] == 50
    assert progress.headline(progress_) == "step 2 of 9, 1 min elapsed, stopped"


def test_hostile_clocks_leave_a_span_unknown_and_never_negative():
    skewed = install(preflight=record("succeeded", 100, 300),  # finished before it started
                     dns=record("succeeded", None, 50),  # no start
                     k3s=record("running", -600))  # started in the future
    progress_ = timing.progress(skewed, None, NOW)
    assert [s["elapsed_seconds"] for s in progress_["steps"][:3]] == [None, None, None]
    assert progress_["elapsed_seconds"] == 0
    assert progress_["remaining_seconds"] == 240 + 180 + 60 + APP_TYPICAL


def test_a_huge_span_is_shown_but_never_learned():
    ancient = {**record("succeeded"), "started_at": "1970-01-01T00:00:00Z",
               "finished_at": at(0)}
    progress_ = timing.progress(install("running", "dns", preflight=ancient), None, NOW)
    assert progress_["steps"][0]["elapsed_seconds"] == int(NOW.timestamp())
    assert timing.learned({}, "preflight", ancient) == {}
    assert timing.learned({"durations": {"dns": 7}}, "preflight", record("succeeded", 95, 5)) \
        == {"dns": 7, "preflight": 90}
    assert timing.learned({}, "k3s", record("succeeded", 5, 95)) == {}  # backwards


@given(st.dictionaries(st.sampled_from(chain.NAMES), st.tuples(
    st.sampled_from(["pending", "running", "succeeded", "failed", "skipped"]),
    st.one_of(st.none(), st.integers(-10 ** 9, 10 ** 9)),
    st.one_of(st.none(), st.integers(-10 ** 9, 10 ** 9)))))
def test_any_recorded_times_give_a_consistent_progress(recorded):
    records = {name: record(*values) for name, values in recorded.items()}
    progress_ = timing.progress(install(**records), None, NOW)
    assert 1 <= progress_["step"] <= progress_["of"] == 9
    assert progress_["elapsed_seconds"] >= 0
    assert all(s["elapsed_seconds"] is None or s["elapsed_seconds"] >= 0
               for s in progress_["steps"])
    assert progress_["remaining_seconds"] is None or progress_["remaining_seconds"] >= 0
    assert_fits_the_api(progress_)
    progress.headline(progress_)


DONE = install("succeeded", None, **{name: record("succeeded", 1000, 900) for name in chain.NAMES})
DONE["phases"]["release"] = record("succeeded", 700, 600)  # the app stage began 600 s ago


def test_the_app_stage_follows_the_host_phases_from_the_status_tiers():
    snapshot = status(platform=tier(True, 500), core=tier(True, 300))
    progress_ = timing.progress(DONE, snapshot, NOW)
    app = [s for s in progress_["steps"] if s["stage"] == "app"]
    assert [s["title"] for s in app] == [s.title for s in timing.APP_STEPS]
    assert [s["state"] for s in app] == ["succeeded", "succeeded", "running", "pending"]
    assert [s["elapsed_seconds"] for s in app] == [100, 200, 300, None]
    assert app[2]["started_at"] == at(300)
    assert (progress_["step"], progress_["of"]) == (8, 9)
    bootstrap, login = (step.typical_seconds for step in timing.APP_STEPS[2:])
    assert progress_["remaining_seconds"] == bootstrap - 300 + login
    assert progress.headline(progress_).startswith("step 8 of 9, ")


def test_a_tier_ready_before_the_stage_began_took_none_of_it_and_login_ends_it():
    snapshot = status(platform=tier(True, 5000), core=tier(True, 400), bootstrap=tier(True, 200),
                      login=tier(True, 100))
    progress_ = timing.progress(DONE, snapshot, NOW)
    app = [s for s in progress_["steps"] if s["stage"] == "app"]
    assert [s["elapsed_seconds"] for s in app] == [0, 200, 200, 100]
    assert (progress_["step"], progress_["done"], progress_["remaining_seconds"]) == (9, 9, 0)
    assert progress.headline(progress_).endswith(", done")


def test_a_failing_tier_fails_its_app_step_and_ends_the_estimate():
    snapshot = status(platform=tier(True, 500), core=tier(False, 500, "failing"))
    progress_ = timing.progress(DONE, snapshot, NOW)
    assert progress_["steps"][6]["state"] == "failed"
    assert progress_["remaining_seconds"] is None


def test_an_old_missing_or_broken_status_is_said_with_the_command_that_collects():
    assert timing.progress(DONE, status(collected=60), NOW)["status_behind"] is None
    behind = timing.progress(DONE, status(collected=3600), NOW)["status_behind"]
    assert behind.startswith("The app stage shown was collected 1 h 00 min ago")
    assert behind.endswith("sudo alga-appliance collect-status")
    assert "not been collected yet" in timing.progress(DONE, None, NOW)["status_behind"]
    assert timing.progress(RUNNING_K3S, None, NOW)["status_behind"] is None


def test_a_broken_status_file_leaves_the_host_steps_and_says_why(tmp_path):
    make_host_root(tmp_path)
    state.STATUS.path(tmp_path).write_text("{not json")
    progress_ = timing.current(DONE, tmp_path)
    assert progress_["status_behind"].startswith("The app stage cannot be shown: the ")
    assert "sudo alga-appliance support-bundle" in progress_["status_behind"]
    assert progress_["steps"][0]["state"] == "succeeded"


def test_the_console_text_gives_each_steps_time_without_ticking():
    lines = progress.describe(RUNNING_K3S, None, None, timing.progress(RUNNING_K3S, None, NOW))
    assert lines[0] == "Setup: running (step 3 of 9, 2 min elapsed, about 21 min left)"
    assert all(line.isascii() for line in lines)  # a serial console may not speak UTF-8
    assert "[x] Preflight checks (took 50 s)" in lines
    assert "[>] Install k3s (since 10:58:20 UTC, usually 4 min)" in lines
    done = progress.describe(DONE, None, None, timing.progress(
        DONE, status(platform=tier(True, 500)), NOW))
    assert done[done.index("App stage:") + 1:done.index("App stage:") + 5] == [
        "[x] Release sources ready (took 1 min 40 s)",
        "[>] Core services (database, cache) (since 10:51:40 UTC, usually 5 min)",
        "[ ] Bootstrap (the app's first-run setup)", "[ ] Login works"]


@pytest.fixture
def root(tmp_path, monkeypatch):
    make_host_root(tmp_path)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    return tmp_path


def test_the_engine_learns_a_phase_duration_and_a_new_run_keeps_it(root, monkeypatch):
    def started_95_s_ago(ctx):  # a phase that took 95 s, without waiting 95 s
        ctx.install["phases"]["only"]["started_at"] = state.timestamp(
            datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=95))
    only = (phases.Phase("only", "network", (), started_95_s_ago),)
    monkeypatch.setattr(phases, "PHASES", only)
    monkeypatch.setattr(engine, "PHASES", only)
    state.write(state.SETUP_INPUTS, parse_with_admin({}, "10.0.0.5"), root)
    assert engine.run_phase("only", root) == 0
    learned = state.read(state.INSTALL_STATE, root)
    ran = learned["phases"]["only"]
    took = elapsed.seconds_between(state.moment(ran["started_at"]),
                                   state.moment(ran["finished_at"]))
    assert took >= 95 and learned["durations"] == {"only": took}
    assert request._queued(learned, None)["durations"] == {"only": took}  # a new run keeps it


def test_the_admin_guide_documents_the_typical_times_the_code_declares():
    guide = (ROOT / "docs/admin-guide.md").read_text()
    section = guide.split("#### How long it takes", 1)[1].split("\n#", 1)[0]
    table = dict(re.findall(r"^\| ([^|]+?) \| (\d[^|]*?) \|$", section, re.M))
    declared = {step.title: elapsed.words(step.typical_seconds)
                for step in (*chain.CHAIN, *timing.APP_STEPS)}
    assert table == declared
