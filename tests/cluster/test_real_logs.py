"""Every layer's log by name (host/support/logs.py), from the real Kubernetes tier: a real
kube-apiserver and kubectl (support/apiserver.py), the stand-in kubelet serving the
containers' logs the API server proxies `kubectl logs` to (support/kubelet.py). The Alga
workloads are the objects Alga's charts make (a Deployment or StatefulSet selecting its
pods, the bootstrap Job); what the logs say is planted in the kubelet's files, secrets
included, and must come out redacted.

Also the whole path the Logs page takes: the real waitress web service spools the request,
the log oneshot (`accept-logs`, run here as its .path unit would) reads it as root would and
writes the redacted answer, and the web service hands it back.
"""

import json
import os
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.base import make_host_root, serve_wsgi
from support.builders import INSTALLED
from support.log_tier import (
    BOOTSTRAP_JOB,
    DB_PASSWORD,
    K3S_TOKEN,
    finish_job,
    path_unit,
    planted,
    write,
)
from support.openapi_check import assert_documented

from host import cli
from host.cluster import alga
from host.cluster.kube import Kube
from host.core import paths, spool, state, token
from host.support import collectors, log_request, logs
from host.web import make_app

ADMIN_USER = os.environ.get("USER", "root")


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host root with the spool, a setup token, and the k3s token a log may leak."""
    root = make_host_root(tmp_path / "root", paths.SPOOL_DIR, paths.TOKEN_DIR)
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    secret = token.ensure_token(root, owner=ADMIN_USER)
    write(root / paths.K3S_TOKENS[0].lstrip("/"), f"{K3S_TOKEN}\n")
    return root, secret


@pytest.fixture
def cluster(real_api, ca, tmp_path):
    with planted(real_api, ca, tmp_path / "kubelet-logs") as planted_cluster:
        yield planted_cluster


def read(name: str, root: Path, kube: Kube, **query) -> logs.Excerpt:
    return logs.read(logs.parse(name, **query), root, kube)


def test_a_component_is_read_by_name_with_its_previous_container(host, cluster):
    root, _ = host
    kube, _ = cluster
    core = read("alga-core", root, kube, lines=100)
    assert len(core.lines) == 100 and core.lines[-1].endswith(" alga-core request 2999")
    assert core.live and core.note is None
    db = read("db", root, kube)
    assert db.lines[0].endswith("LOG:  database system is ready")
    assert DB_PASSWORD not in "\n".join(db.lines) and "<redacted>" in db.lines[1]
    before = read("db", root, kube, previous="true")
    assert before.lines[-1].endswith("No space left on device") and not before.live
    assert "previous container" in before.note
    never = read("alga-core", root, kube, previous=True)
    assert never.lines == [] and "has not restarted" in never.note


def test_workers_together_say_whose_line_and_a_missing_one_says_so(host, cluster):
    root, _ = host
    kube, _ = cluster
    workers = read("workers", root, kube)
    assert sorted(line.split("] ")[0] + "]" for line in workers.lines) == [
        "[email-service]", "[workflow-worker]"], workers.note
    assert "temporal-worker: it has no pod yet" in workers.note
    missing = read("temporal", root, kube)
    assert missing.lines == [] and not missing.live and "no pod yet" in missing.note


def test_a_flux_controller_log(host, cluster):
    root, _ = host
    kube, _ = cluster
    helm = read("helm-controller", root, kube)
    assert helm.lines[-1].endswith("reconciling alga-core") and helm.live
    assert K3S_TOKEN not in "\n".join(helm.lines) and "<redacted>" in helm.lines[0]
    assert "no pod yet" in read("notification-controller", root, kube).note


def test_the_bootstrap_log_survives_the_job(host, cluster, real_api):
    root, _ = host
    kube, _ = cluster
    running = read("bootstrap", root, kube)
    assert running.live and running.lines[-1].endswith("migration 42 failed: relation "
                                                       "already exists")
    assert logs.keep_bootstrap_log(root, kube) is None  # still running: nothing kept
    finish_job(real_api, BOOTSTRAP_JOB, "failed")
    ended = read("bootstrap", root, kube)
    assert not ended.live and "failed" in ended.note
    assert logs.keep_bootstrap_log(root, kube) == BOOTSTRAP_JOB
    assert logs.keep_bootstrap_log(root, kube) is None  # once per job
    kept = state.read(state.BOOTSTRAP_LOG, root)
    assert kept["outcome"] == "failed" and kept["job"] == BOOTSTRAP_JOB
    assert DB_PASSWORD not in json.dumps(kept)
    # The job deletes itself 300 s after it ends (ttlSecondsAfterFinished), its pod with it.
    real_api.kubectl("delete", "job", BOOTSTRAP_JOB, "--namespace", alga.APP_NAMESPACE,
                     "--wait=false")
    real_api.kubectl("delete", "pods", "--selector", f"job-name={BOOTSTRAP_JOB}",
                     "--namespace", alga.APP_NAMESPACE, "--grace-period=0", "--force")
    deadline = time.monotonic() + 30
    while logs.newest_bootstrap_job(kube) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    later = read("bootstrap", root, kube)
    assert later.lines[-1].endswith("migration 42 failed: relation already exists")
    assert f"when job {BOOTSTRAP_JOB} failed" in later.note and not later.live


def test_the_collector_keeps_the_bootstrap_log_and_the_bundle_collects_it(host, cluster,
                                                                          real_api):
    root, _ = host
    kube, _ = cluster
    state.write(state.INSTALL_STATE, INSTALLED, root)  # k3s is up: the collector reads it
    runner = CliRunner()
    running = runner.invoke(cli.main, ["collect-status", "--kubeconfig", kube.kubeconfig])
    assert running.exit_code == 0 and "kept" not in running.output, running.output
    finish_job(real_api, BOOTSTRAP_JOB, "succeeded")
    result = runner.invoke(cli.main, ["collect-status", "--kubeconfig", kube.kubeconfig])
    assert result.exit_code == 0, result.output
    assert f"kept the log of bootstrap job {BOOTSTRAP_JOB}" in result.output
    assert state.read(state.BOOTSTRAP_LOG, root)["outcome"] == "succeeded"
    again = runner.invoke(cli.main, ["collect-status", "--kubeconfig", kube.kubeconfig])
    assert again.exit_code == 0 and "kept" not in again.output  # once per job
    assert not logs.bootstrap_log_wanted([BOOTSTRAP_JOB], root)
    assert logs.bootstrap_log_wanted([BOOTSTRAP_JOB, f"{alga.BOOTSTRAP_JOB_PREFIX}2"], root)
    assert "state/bootstrap-log" in [c.name for c in collectors.COLLECTORS]


@pytest.mark.usefixtures("host")
def test_the_command_line_prints_redacted_lines_and_refuses_unknown_names(cluster):
    kube, _ = cluster
    runner = CliRunner()
    result = runner.invoke(cli.main, ["logs", "db", "--kubeconfig", kube.kubeconfig])
    assert result.exit_code == 0, result.output
    assert "database system is ready" in result.output and DB_PASSWORD not in result.output
    previous = runner.invoke(cli.main, ["logs", "db", "--previous", "--lines", "1",
                                        "--kubeconfig", kube.kubeconfig])
    assert previous.stdout.strip().endswith("No space left on device")
    for argv in (["logs", "db-0"], ["logs", "--lines", "0", "db"], ["logs", "phase-nope"],
                 ["logs", "update", "--previous"], ["logs", "db", "--lines", "x"]):
        refused = runner.invoke(cli.main, argv)
        assert refused.exit_code == 2, (argv, refused.output)
        assert "Traceback" not in refused.output and "Error:" in refused.output
    unknown = runner.invoke(cli.main, ["logs", "db-0"])
    assert "alga-core, db, redis" in unknown.output and "phase-k3s" in unknown.output


# --- the Logs page's path: web service → spool → log oneshot → web service ----------------


@pytest.fixture
def served(host, cluster):
    """The web service, with the log oneshot answering what it spools."""
    root, secret = host
    kube, _ = cluster
    with path_unit(root, kube, ADMIN_USER), \
            serve_wsgi(make_app(root, node_ip=lambda: "10.0.0.5")) as url:
        yield url, {"Authorization": f"Bearer {secret}"}, root


def test_the_web_service_hands_pod_logs_over_redacted_without_a_cluster_client(served):
    url, auth, root = served
    answer = requests.get(f"{url}/api/logs", params={"source": "db", "previous": "false"},
                          headers=auth, timeout=90)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["source"] == "db" and body["live"] and len(body["lines"]) == 2
    assert DB_PASSWORD not in answer.text
    assert_documented(answer, "GET", "/api/logs")
    kept = sorted(paths.on_host(paths.WEB_LOGS_DIR, root).iterdir())
    assert len(kept) == 1 and oct(kept[0].stat().st_mode & 0o777) == "0o640"
    previous = requests.get(f"{url}/api/logs", params={"source": "db", "previous": "true",
                                                       "lines": "1"}, headers=auth, timeout=90)
    assert previous.json()["lines"][0].endswith("No space left on device")
    assert_documented(previous, "GET", "/api/logs")
    listed = requests.get(f"{url}/api/logs/sources", headers=auth, timeout=5)
    assert_documented(listed, "GET", "/api/logs/sources")
    sources = listed.json()
    assert [s["name"] for s in sources["sources"]] == list(logs.BY_NAME)
    assert {"name": "alga-core", "label": "The Alga web app (alga-core)",
            "group": "Alga components", "previous": True} in sources["sources"]


HOSTILE_SOURCES = st.one_of(
    st.text(max_size=60), st.sampled_from(["db-0", "../db", "db;id", "DB", "db ", "phase-",
                                           "phase-../../etc/shadow", "journal", "-n"]))
HOSTILE_LINES = st.one_of(st.integers(-10**9, 10**9).map(str), st.text(max_size=12),
                          st.sampled_from(["", "0", "2001", "1e3", "٣", " 5", "+5", "0x10",
                                           "99999999999999999999"]))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=HOSTILE_SOURCES, lines=HOSTILE_LINES,
       previous=st.sampled_from(["", "true", "false", "yes", "1", "TRUE", "\x00"]))
def test_a_hostile_log_query_is_refused_before_anything_is_spooled(served, source, lines,
                                                                   previous):
    url, auth, root = served
    try:
        logs.parse(source, lines, previous)
        return  # a good query: the tests above read those
    except logs.BadQuery:
        pass
    response = requests.get(f"{url}/api/logs", params={"source": source, "lines": lines,
                                                       "previous": previous},
                            headers=auth, timeout=10)
    assert response.status_code == 400, response.text
    assert_documented(response, "GET", "/api/logs")
    assert {field["field"] for field in response.json()["fields"]} <= {"source", "lines",
                                                                       "previous"}
    assert not spool.pending(spool.LOGS, root)


def test_repeated_parameters_count_once_the_last_wins(served):
    url, auth, _ = served
    response = requests.get(f"{url}/api/logs?source=../etc&source=db&lines=9999&lines=1",
                            headers=auth, timeout=90)
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "db" and len(response.json()["lines"]) == 1


def test_a_request_nobody_picks_up_says_what_to_check(host, monkeypatch):
    root, _ = host
    clock = iter(range(0, 10_000, 5))
    query = logs.parse("db")
    with pytest.raises(log_request.NotAnswered, match=r"within 30 s.*alga-appliance-logs-"
                       r"request\.path"):
        log_request.fetch(query, root, clock=lambda: next(clock), sleep=lambda s: None)
    assert spool.pending(spool.LOGS, root)  # still there for when the watcher runs again


def test_a_request_taken_but_never_answered_says_where_to_look(host):
    root, _ = host
    clock = iter(range(0, 10_000, 5))
    with pytest.raises(log_request.NotAnswered, match=r"not read within 60 s.*journalctl -u "
                       r"alga-appliance-logs-request\.service"):
        log_request.fetch(logs.parse("k3s"), root, clock=lambda: next(clock),
                          sleep=lambda s: spool.take(spool.LOGS, root))  # taken, then nothing


def test_a_request_waits_its_turn_behind_another(host):
    root, _ = host
    first = spool.submit(spool.LOGS, {"requested_at": state.timestamp(), "source": "db",
                                      "lines": 5, "previous": False}, root)
    turns = []

    def oneshot(seconds):  # the path unit, answering whatever waits
        turns.append(log_request.accept(root, Kube("/nonexistent"), owner=ADMIN_USER))

    answer = log_request.fetch(logs.parse("phase-k3s"), root, sleep=oneshot)
    assert turns[0] == first and answer["request_id"] == turns[1]
    assert answer["source"] == "phase-k3s" and answer["error"] is None


def test_a_broken_kept_bootstrap_log_is_an_answer_naming_it_not_a_silence(served, cluster,
                                                                          real_api):
    url, auth, root = served
    kube, _ = cluster
    real_api.kubectl("delete", "job", BOOTSTRAP_JOB, "--namespace", alga.APP_NAMESPACE,
                     "--wait=false")
    deadline = time.monotonic() + 30
    while logs.newest_bootstrap_job(kube) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    state.BOOTSTRAP_LOG.path(root).write_text('{"job": ')
    response = requests.get(f"{url}/api/logs", params={"source": "bootstrap"}, headers=auth,
                            timeout=90)
    assert response.status_code == 503, response.text
    assert "kept bootstrap log" in response.json()["error"]
    assert "sudo mv" in response.json()["error"]  # the next step: move it aside
    assert_documented(response, "GET", "/api/logs")


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=HOSTILE_SOURCES, lines=HOSTILE_LINES)
def test_the_command_line_refuses_any_other_name_or_count_with_usage_not_a_traceback(
        host, name, lines):
    try:
        logs.parse(name, lines)
        return  # a good query: the tests above read those
    except logs.BadQuery:
        pass
    result = CliRunner().invoke(cli.main, ["logs", "--lines", lines, "--", name])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "Error: " in result.output
