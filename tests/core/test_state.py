"""State files: validated on write and read, atomic, under a movable root."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.base import ROOT

from host.core import paths, state
from host.core.validation import DocumentInvalid

INPUTS = {"channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
          "proxy": None, "overrides": {}}


@pytest.fixture
def root(tmp_path, monkeypatch):
    for directory in ("etc/alga-appliance", "var/lib/alga-appliance"):
        (tmp_path / directory).mkdir(parents=True)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    return tmp_path


def test_round_trip_with_mode_under_the_root(root):
    path = state.write(state.SETUP_INPUTS, INPUTS)
    assert path == root / "etc/alga-appliance/setup-inputs.json"
    assert path.stat().st_mode & 0o777 == 0o640
    assert state.read(state.SETUP_INPUTS) == INPUTS
    assert state.read(state.INSTALL_STATE) is None  # not written yet
    assert [p.name for p in path.parent.iterdir()] == ["setup-inputs.json"]  # no temp left


def test_invalid_document_is_never_written(root):
    state.write(state.SETUP_INPUTS, INPUTS)
    with pytest.raises(DocumentInvalid) as caught:
        state.write(state.SETUP_INPUTS, {**INPUTS, "channel": "beta"})
    assert caught.value.pointer == "/channel"
    assert state.read(state.SETUP_INPUTS) == INPUTS


@pytest.mark.parametrize(("content", "pointer"), [
    ('{"channel": "beta"}', ""),
    (json.dumps({**INPUTS, "dns": {"mode": "custom", "servers": []}}), "/dns/servers"),
    ("{not json", ""),
])
def test_invalid_file_is_reported_by_name_path_and_pointer_and_kept(root, content, pointer):
    path = root / "etc/alga-appliance/setup-inputs.json"
    path.write_text(content)
    with pytest.raises(state.StateFileInvalid) as caught:
        state.read(state.SETUP_INPUTS)
    message = str(caught.value)
    assert message.startswith(f"setup inputs ({path}) is invalid at {pointer or '/'}")
    assert caught.value.pointer == pointer
    assert path.read_text() == content  # never silently replaced


WRITER = """
import itertools, sys
from host.core import state
documents = [dict(DOC, app_url="http://10.0.0.5:3000"), dict(DOC, app_url="http://10.0.0.6:3000")]
print("ready", flush=True)
for n in itertools.count():
    state.write(state.SETUP_INPUTS, documents[n % 2])
""".replace("DOC", repr(INPUTS))


@settings(max_examples=15)
@given(st.floats(0.0, 0.25))
def test_killing_a_writer_at_any_point_leaves_a_valid_old_or_new_file(tmp_path_factory, delay):
    root = tmp_path_factory.mktemp("root")
    (root / "etc/alga-appliance").mkdir(parents=True)
    env = {**os.environ, paths.ROOT_ENV: str(root),
           "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=env, stdout=subprocess.PIPE)
    assert writer.stdout.readline() == b"ready\n"
    time.sleep(delay)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    document = state.read(state.SETUP_INPUTS, root)
    assert document is None or document["app_url"] in ("http://10.0.0.5:3000",
                                                       "http://10.0.0.6:3000")


@pytest.mark.parametrize("target", [state.INSTALL_STATE, state.SETUP_INPUTS, state.STATUS])
def test_a_killed_writers_temp_files_go_at_the_next_write_a_live_writers_stay(root, target):
    path = target.path()
    stale = [path.parent / f".{path.name}.{suffix}" for suffix in ("k1ll3d", "a*b[c")]
    for temp in stale:
        temp.write_text('{"half": ')
        os.utime(temp, (time.time() - 120, time.time() - 120))
    live = path.parent / f".{path.name}.wr1t1ng"  # another writer, mid-write just now
    live.write_text("{")
    other = path.parent / ".preflight-report.json.0ld"  # not this file's: left to its writer
    other.write_text("{")
    os.utime(other, (time.time() - 120, time.time() - 120))
    examples = ROOT / "tests/schema_examples" / target.schema.removesuffix(".schema.json")
    state.write(target, json.loads(sorted(examples.glob("valid*"))[0].read_text()))
    assert not any(temp.exists() for temp in stale)
    assert live.exists() and other.exists()
    assert state.read(target) is not None


@pytest.mark.parametrize(("damage", "problem"), [
    (b"\xff\xfe{}", "not UTF-8 text"), (b"", "not JSON"), (None, "unreadable (Is a directory)")])
def test_an_unreadable_file_is_reported_with_the_next_step(root, damage, problem):
    path = state.INSTALL_STATE.path()
    if damage is None:
        path.mkdir()
    else:
        path.write_bytes(damage)
    with pytest.raises(state.StateFileInvalid) as caught:
        state.read(state.INSTALL_STATE)
    assert problem in caught.value.problem
    assert f"sudo mv {path} {path}.broken" in caught.value.next_step
    assert str(caught.value).startswith(f"install state ({path}) is invalid at /: {problem}")
