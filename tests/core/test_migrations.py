"""State files written before the OCI release source (no `source`, the category
github-release-source, overrides.repo_url) are read in the current shape: an appliance
updated in place keeps working with the files it has."""

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.base import TESTS

from host.core import migrations, paths, state

REPO_URL = "https://github.com/Nine-Minds/alga-psa"
OLD_FAILURE = {"category": "github-release-source", "suspected_cause": "release.channel: 404",
               "next_step": "check the channel"}
GIT_RELEASE = json.loads((TESTS / "schema_examples/selected-release/valid-git.json").read_text())
SUMMARY = {"channel": "stable", "release_version": "1.0", "app_version": "1.0",
           "repo_branch": "release/1.0.0"}
INPUTS = {"channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
          "proxy": None, "overrides": {}}
PHASE = {"state": "failed", "started_at": "2026-11-27T10:00:00Z",
         "finished_at": "2026-11-27T10:00:05Z", "last_action": "resolving the stable channel",
         "failure": {**OLD_FAILURE, "last_action": "resolving the stable channel",
                     "log_excerpt": "", "support_command": "alga-appliance support-bundle"}}
ENTRY = {"id": "20261127T100000Z-0badf00d", "action": "check", "who": "cli",
         "channel": "stable", "started_at": "2026-11-27T10:00:00Z",
         "finished_at": "2026-11-27T10:00:01Z", "result": "failed", "step": None,
         "from": SUMMARY, "to": None, "changes": None, "duration_s": 1.0, "failure": OLD_FAILURE}

REPORT = {"generated_at": "2026-11-27T10:00:05Z", "outcome": "fail"}
PASSED = {"id": "release.token", "status": "pass", "message": "anonymous pull token issued",
          "remediation": "", "duration_ms": 5}
OLD_FAILED = {"id": "release.manifest", "status": "fail",
              "message": "https://ghcr.io/v2/a/manifests/nightly answered 404",
              "remediation": "choose another channel", "duration_ms": 7}
OLD_SKIPPED = {"id": "release.config", "status": "fail",
               "message": "skipped: release.manifest did not succeed",
               "remediation": "allow HTTPS to the registry's blob host", "duration_ms": 0}
NOT_RUN = {**OLD_SKIPPED, "status": "not-run",
           "message": "not run: release.manifest did not succeed", "remediation": ""}


@pytest.fixture
def root(tmp_path, monkeypatch):
    for directory in ("etc/alga-appliance", "var/lib/alga-appliance"):
        (tmp_path / directory).mkdir(parents=True)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    return tmp_path


# (state file, as an earlier version wrote it, as it reads now)
CASES = [
    (state.SETUP_INPUTS, {**INPUTS, "overrides": {"repo_url": REPO_URL, "branch": "main"}},
     {**INPUTS, "overrides": {"release_source": REPO_URL, "branch": "main"}}),
    (state.SETUP_INPUTS,
     {**INPUTS, "proxy": {"url": "http://svc%40corp:p%40ss%3Aw%2Frd%20%231@proxy.corp:3128",
                          "no_proxy": ["localhost"]}},
     {**INPUTS, "proxy": {"url": "http://proxy.corp:3128", "user": "svc@corp",
                          "password": "p@ss:w/rd #1", "no_proxy": ["localhost"]}}),
    (state.SETUP_INPUTS,
     {**INPUTS, "proxy": {"url": "http://svc@proxy.corp:3128", "no_proxy": ["localhost"]}},
     {**INPUTS, "proxy": {"url": "http://proxy.corp:3128", "user": "svc", "password": "",
                          "no_proxy": ["localhost"]}}),
    (state.SELECTED_RELEASE, {k: v for k, v in GIT_RELEASE.items() if k != "source"},
     GIT_RELEASE),
    (state.INSTALL_STATE,
     {"status": "failed", "current_phase": "release", "updated_at": "2026-11-27T10:00:05Z",
      "phases": {"release": PHASE}},
     {"status": "failed", "current_phase": "release", "updated_at": "2026-11-27T10:00:05Z",
      "phases": {"release": {**PHASE, "failure": {**PHASE["failure"],
                                                  "category": "release-source"}}}}),
    (state.UPDATE_HISTORY, {"entries": [ENTRY]},
     {"entries": [{**ENTRY, "from": {**SUMMARY, "source": "git"},
                   "failure": {**OLD_FAILURE, "category": "release-source"}}]}),
    (state.PREFLIGHT_REPORT, {**REPORT, "checks": [PASSED, OLD_FAILED, OLD_SKIPPED]},
     {**REPORT, "causes": [{"cause": "unclassified", "summary": OLD_FAILED["message"],
                            "remediation": OLD_FAILED["remediation"],
                            "checks": ["release.manifest"]}],
      "checks": [PASSED, OLD_FAILED, NOT_RUN]}),
]


@pytest.mark.parametrize(("state_file", "old", "new"), CASES,
                         ids=[case[0].name for case in CASES])
def test_an_old_file_reads_in_the_new_shape_and_is_stored_so_at_the_next_write(
        root, state_file, old, new):
    path = state_file.path(root)
    path.write_text(json.dumps(old))
    assert state.read(state_file) == new
    assert json.loads(path.read_text()) == old  # reading never rewrites the file
    state.write(state_file, state.read(state_file))
    assert json.loads(path.read_text()) == new


@pytest.mark.parametrize(("state_file", "_", "new"), CASES, ids=[case[0].name for case in CASES])
def test_a_file_in_the_new_shape_passes_unchanged(root, state_file, _, new):
    state.write(state_file, new)
    assert state.read(state_file) == new


def test_an_explicit_release_source_wins_over_a_leftover_repo_url():
    """Both only when a newer version wrote release_source beside a file's old key."""
    document = {**INPUTS, "overrides": {"repo_url": REPO_URL,
                                        "release_source": "oci://ghcr.io/a/b"}}
    assert migrations.setup_inputs(document)["overrides"] == {
        "release_source": "oci://ghcr.io/a/b"}


def test_an_oci_selection_is_not_taken_for_git():
    oci = json.loads((TESTS / "schema_examples/selected-release/valid-oci.json").read_text())
    assert migrations.selected_release(copy.deepcopy(oci)) == oci


MIGRATIONS = [migrations.setup_inputs, migrations.selected_release, migrations.install_state,
              migrations.update_history, migrations.preflight_report]
# Documents of any shape, rich in the keys and values the migrations look at: they run
# before validation, so they meet whatever is on disk.
keys = st.sampled_from(["overrides", "repo_url", "release_source", "branch", "source",
                        "proxy", "url", "user", "password",
                        "phases", "release", "failure", "category", "entries", "from", "to",
                        "checks", "status", "message", "causes"])
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(
        ["github-release-source", "release-source", "network", "git", "oci", REPO_URL,
         "http://u:p%40@proxy:3128", "http://@proxy:3128", "proxy:3128@",
         "fail", "skipped: release.manifest did not succeed"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16)
documents = st.dictionaries(keys, values, max_size=5) | st.sampled_from(
    [old for _, old, _ in CASES])


@given(migrate=st.sampled_from(MIGRATIONS), document=documents)
def test_migrating_twice_is_migrating_once(migrate, document):
    once = migrate(copy.deepcopy(document))
    assert migrate(copy.deepcopy(once)) == once
