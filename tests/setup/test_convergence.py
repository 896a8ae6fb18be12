"""Killing the k3s or release phase at any point and running it again converges to the
same end state as an uninterrupted run (the release from the OCI source, the default, on a
real registry)."""

import json
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.base import make_host_root
from support.cluster import end_state, phase_process
from support.netlab import (
    HttpsServer,
    Route,
)
from support.registry import Registry
from support.releases import (
    K3S_BINARY,
    K3S_BINARY_PATH,
    K3S_SUMS_PATH,
    READY_NODE,
    k3s_sums,
    oci_source,
    publish_oci,
)

from host.core import state


@pytest.fixture(scope="module")
def servers(ca):
    routes = {K3S_BINARY_PATH: Route(body=K3S_BINARY),
              K3S_SUMS_PATH: Route(body=k3s_sums(K3S_BINARY))}
    with HttpsServer(ca, routes) as github, Registry(ca) as registry:
        publish_oci(registry)
        yield ca, github, registry


def new_root(base: Path, servers) -> Path:
    ca, github, registry = servers
    make_host_root(base, "usr/local/bin")
    (base / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    (base / "store.json").write_text(json.dumps({"Node//n": READY_NODE}))
    state.write(state.ENDPOINTS, {"k3s_release_base": f"{github.url}/k3s",
                                  "ca_bundle": str(ca.ca_pem_path),
                                  "release_source": oci_source(registry)}, base)
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "https://psa.example.com",
                                     "dns": {"mode": "system"}, "proxy": None, "overrides": {}},
                base)
    return base


@pytest.fixture(scope="module")
def reference(servers, tmp_path_factory):
    root = new_root(tmp_path_factory.mktemp("clean"), servers)
    for phase in ("k3s", "release"):
        assert phase_process(root, phase).wait(60) == 0
    found = end_state(root)
    assert "OCIRepository/flux-system/alga-appliance" in found["store"]
    return found


@settings(max_examples=8)
@given(st.sampled_from(["k3s", "release"]), st.floats(0.05, 1.5))
def test_killed_phase_reruns_to_the_same_end_state(servers, reference, tmp_path_factory,
                                                   killed, delay):
    root = new_root(tmp_path_factory.mktemp("killed"), servers)
    if killed == "release":
        assert phase_process(root, "k3s").wait(60) == 0
    victim = phase_process(root, killed)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for phase in ("k3s", "release")[("k3s", "release").index(killed):]:
        assert phase_process(root, phase).wait(60) == 0, phase
    assert end_state(root) == reference


def test_release_killed_after_its_work_but_before_its_success_is_recorded(
        servers, reference, tmp_path_factory):
    """The last moment a kill can land: every object applied and the host files written,
    only the engine's success record missing. The re-run must still apply a fresh install."""
    root = new_root(tmp_path_factory.mktemp("late-kill"), servers)
    assert phase_process(root, "k3s").wait(60) == 0
    before = state.INSTALL_STATE.path(root).read_bytes()
    assert phase_process(root, "release").wait(60) == 0
    state.INSTALL_STATE.path(root).write_bytes(before)  # as if killed just before recording
    assert phase_process(root, "release").wait(60) == 0
    assert end_state(root) == reference
