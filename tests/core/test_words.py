"""The words admins read, declared once (host/core/words.py): every component of Alga's
contract has its name and its log, no text of the host asks for kubectl, and a snapshot
written before the words reads with them."""

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.base import ROOT, make_host_root

from host.cluster import alga
from host.console import status_view
from host.core import migrations, state, words
from host.core.validation import validate
from host.support import logs as log_sources

# Where the host's code may name kubectl, and why: none of them is a text for people.
KUBECTL_ALLOWED = {
    "host/cluster/kube.py": "the Kubernetes boundary runs kubectl and reports its errors",
    "host/core/paths.py": "the path of the kubectl link k3s installs",
    "host/setup/phases/k3s.py": "the k3s phase installs that link and checks it is there",
    "host/support/redact.py": "kubectl's last-applied annotation is redacted in the bundle",
}


def test_each_component_has_the_name_admins_know_it_by_and_its_log():
    shown = {name: (words.label(name), words.log_of(name)) for name in (
        *alga.CORE_STATEFULSETS, *alga.CORE_DEPLOYMENTS, alga.ALGA_CORE, "bootstrap",
        *alga.BACKGROUND)}
    assert shown == {
        "db": ("the database", "db"),
        "redis": ("the cache", "redis"),
        "pgbouncer": ("the database connection pool", "pgbouncer"),
        "alga-core-sebastian": ("the Alga web app", "alga-core"),
        "bootstrap": ("the app's first-run setup", "bootstrap"),
        "temporal": ("the workflow engine", "temporal"),
        "workflow-worker": ("background workflow service", "workers"),
        "email-service": ("background email service", "workers"),
        "temporal-worker": ("background job service", "workers"),
    }
    # Every Helm release is named too (a chart or a release of it can fail).
    assert all(words.label(release) != release for release in alga.HELM_RELEASES)
    # Each log a next step names is one `alga-appliance logs` reads.
    logs = {c.log for c in words.COMPONENTS.values() if c.log} | {
        log for _, log in words.FLUX_KINDS.values()}
    readable = {source.name for source in log_sources.ALL}
    assert logs <= readable, logs - readable


@pytest.mark.parametrize(("kind", "name", "label"), [
    ("OCIRepository", "alga-appliance", "the release download"),
    ("GitRepository", "alga-appliance", "the release download"),
    ("Kustomization", "alga-appliance", "the app's configuration"),
    ("Kustomization", "alga-platform", "the app's platform configuration"),
    ("Kustomization", "alga-background", "the background services' configuration"),
    ("HelmRepository", "alga-charts", "the chart download"),
    ("HelmChart", "alga-system-email-service", "the chart of background email service"),
    ("HelmRelease", "alga-core", "the installation of the Alga web app"),
    ("HelmRelease", "pgbouncer", "the installation of the database connection pool"),
])
def test_flux_objects_are_named_for_what_they_do_for_the_app(kind, name, label):
    assert words.flux_label(kind, name) == label


@given(st.text(max_size=40))
def test_a_name_nobody_declared_is_shown_as_it_is(name):
    if name not in words.COMPONENTS:
        assert words.label(name) == name and words.log_of(name) is None
    assert words.flux_label("Bucket", name) == f"Bucket {name}"  # a kind Flux may add
    assert name in words.flux_label("HelmRelease", name) or name in words.COMPONENTS


def test_a_next_step_that_reads_a_log_offers_the_page_and_our_command():
    assert words.read_log("db", "its log says why") == (
        "its log says why: open the Logs page > db, or run "
        "`sudo alga-appliance logs db`")


def _texts(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module, docstrings left out (they are for developers)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_text_of_the_host_asks_for_kubectl():
    """No next step, cause, reason or message the host writes names kubectl (the status
    snapshot, the app stage's and the phases' failures, the update history): a string
    literal anywhere in host/ outside the few places that run or install it is a text for
    people. The scenario snapshots are checked as well (support.scenarios.collect)."""
    found = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
             for path in sorted((ROOT / "host").rglob("*.py"))
             if str(path.relative_to(ROOT)) not in KUBECTL_ALLOWED
             for line, text in _texts(path) if "kubectl" in text.lower()]
    assert found == []
    for allowed in KUBECTL_ALLOWED:  # each exception is still needed
        assert any("kubectl" in text.lower() for _, text in _texts(ROOT / allowed)), allowed


def test_the_scan_finds_a_kubectl_next_step(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Uses `kubectl`."""\nNEXT = f"run `sudo kubectl -n {NS} get pods`"\n')
    assert [text for _, text in _texts(module) if "kubectl" in text] == [
        "run `sudo kubectl -n "]


def test_a_snapshot_written_before_the_words_reads_with_them():
    """The status example as the collector wrote it before: no labels, titles or detail."""
    old = json.loads((ROOT / "tests/schema_examples/status/valid-background-issue.json")
                     .read_text())
    del old["rollup"]["label"]
    for tier in old["tiers"].values():
        del tier["title"], tier["meaning"]
    for blocker in old["blockers"]:
        del blocker["label"], blocker["detail"]
    read = migrations.status(old)
    validate(read, "status.schema.json", name="status", source="old snapshot")
    assert read["rollup"]["label"] == "Ready to log in, with background issues"
    assert [tier["title"] for tier in read["tiers"].values()] == [
        "Platform", "Core", "Bootstrap", "Login", "Background", "Fully healthy"]
    assert (read["blockers"][0]["label"], read["blockers"][0]["detail"]) == (
        "background job service", None)
    assert migrations.status(read) == read  # idempotent


@given(st.text(max_size=200), st.text(max_size=200),
       st.one_of(st.none(), st.fixed_dictionaries(
           {key: st.text(max_size=100) for key in ("kind", "name", "reason", "message")})))
def test_the_console_shows_any_words_and_detail_the_snapshot_holds(tmp_path_factory, reason,
                                                                   next_action, detail):
    """What the cluster says ends up in the detail (and a reason may quote it): markup,
    control characters, anything; the console shows it as text, never fails on it."""
    root = make_host_root(tmp_path_factory.mktemp("root"))
    snapshot = json.loads((ROOT / "tests/schema_examples/status/valid-background-issue.json")
                          .read_text())
    snapshot["blockers"][0].update(reason=reason or "x", next_action=next_action or "y",
                                   detail=detail)
    state.write(state.STATUS, snapshot, root)
    shown = "\n".join(status_view.lines(root))
    assert (reason or "x") in shown and (next_action or "y") in shown
    if detail and detail["message"]:
        assert detail["message"] in shown
