"""An interrupted setup never stays running: kill any phase's real process (SIGKILL or
SIGTERM, at a moment hypothesis picks), and the run is recorded as interrupted in that
phase (or the phase had finished); resuming it, as often as it takes, ends in succeeded."""

import datetime
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.base import FAKES, make_host_root
from support.cluster import end_state, phase_process
from support.netlab import DnsServer, HttpsServer, Route, free_loopback_address
from support.preflight_lab import push_pulled_images
from support.registry import Registry
from support.releases import (
    DNS_NAMES,
    FLUX_INSTALL,
    FLUX_INSTALL_PATH,
    FLUX_SUMS_PATH,
    K3S_BINARY,
    K3S_BINARY_PATH,
    K3S_SUMS_PATH,
    READY_NODE,
    flux_sums,
    github_routes,
    k3s_sums,
    oci_source,
    publish_oci,
)

from host import cli
from host.core import busy, paths, runlock, state
from host.setup import chain, recovery
from host.setup import request as setup_request


@pytest.fixture(scope="module")
def servers(ca):
    routes = {**github_routes(), K3S_BINARY_PATH: Route(body=K3S_BINARY),
              K3S_SUMS_PATH: Route(body=k3s_sums(K3S_BINARY)),
              FLUX_INSTALL_PATH: Route(body=FLUX_INSTALL),
              FLUX_SUMS_PATH: Route(body=flux_sums(FLUX_INSTALL))}
    records = {name: ["127.0.0.1"] for name in DNS_NAMES}
    with HttpsServer(ca, routes, hostnames=("github.test",)) as github, \
            DnsServer(free_loopback_address(), records) as dns, Registry(ca) as registry:
        publish_oci(registry)
        push_pulled_images(registry)  # GHCR's and Docker Hub's stand-in for preflight's pulls
        yield ca, github, dns, registry


def new_root(base: Path, servers) -> Path:
    """A host root whose setup was accepted: every phase can run to success."""
    ca, github, dns, registry = servers
    make_host_root(base, "usr/local/bin", paths.SPOOL_DIR)
    (base / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    (base / "etc/resolv.conf").write_text(f"nameserver {dns.address}\n")
    (base / "store.json").write_text(json.dumps({"Node//alga-appliance": READY_NODE}))
    state.write(state.ENDPOINTS, {
        "raw_base": github.url, "ghcr_base": registry.url,
        "dockerhub_base": registry.url, "k3s_release_base": f"{github.url}/k3s",
        "flux_release_base": f"{github.url}/flux", "ca_bundle": str(ca.ca_pem_path),
        "release_source": oci_source(registry)}, base)
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://10.0.0.5:3000",
                                     "dns": {"mode": "system"}, "proxy": None,
                                     "overrides": {}}, base)
    return base


def accepted(root: Path) -> None:
    """The install state as the oneshot that took the request leaves it: owned by that
    process, which has exited since."""
    oneshot = subprocess.Popen(["sleep", "60"])
    owner = runlock.owner(oneshot.pid)
    oneshot.kill()
    oneshot.wait()
    state.write(state.INSTALL_STATE, {**setup_request._queued(None, None), "owner": owner},
                root)


def run_chain(root: Path, names=chain.NAMES) -> None:
    """What the setup target does: each phase in order, stopping at the first failure."""
    for name in names:
        assert phase_process(root, name).wait(120) == 0, (
            name, state.read(state.INSTALL_STATE, root)["phases"][name]["failure"])


def test_the_whole_chain_succeeds_in_the_lab(servers, tmp_path):
    root = new_root(tmp_path, servers)
    run_chain(root)
    install = state.read(state.INSTALL_STATE, root)
    assert install["status"] == "succeeded" and "owner" not in install


@pytest.fixture(scope="module")
def reference(servers, tmp_path_factory):
    root = new_root(tmp_path_factory.mktemp("clean"), servers)
    run_chain(root)
    return end_state(root)


def resume(root: Path) -> None:
    """Resume as the admin does (the request, then the oneshot that takes it), then what
    the setup target starts: the chain, the phases that finished skipped."""
    setup_request.submit_resume(root)
    assert setup_request.accept(root) is not None
    assert state.read(state.INSTALL_STATE, root)["status"] == "pending"
    run_chain(root)


@settings(max_examples=12, deadline=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(chain.NAMES), st.sampled_from([signal.SIGKILL, signal.SIGTERM]),
       st.floats(0.0, 1.5))
def test_a_phase_killed_at_any_moment_is_interrupted_and_resumes_to_the_same_end(
        servers, reference, tmp_path_factory, killed, signum, delay):
    root = new_root(tmp_path_factory.mktemp("killed"), servers)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
        patch.setenv("FAKE_SYSTEMCTL_LOG", str(root / "systemctl.log"))
        # No handover time: a run between phases is as dead as its last owner at once.
        patch.setattr(busy, "HANDOVER_SECONDS", 0)
        accepted(root)
        run_chain(root, chain.NAMES[:chain.NAMES.index(killed)])
        victim = phase_process(root, killed)
        time.sleep(delay)
        victim.send_signal(signum)
        victim.wait()
        found = recovery.recover(root)
        install = state.read(state.INSTALL_STATE, root)
        if found is None:  # it finished first: the whole setup, as the last phase
            assert (killed, install["status"]) == (chain.NAMES[-1], "succeeded")
        else:
            assert install["status"] == "failed" and "owner" not in install
            stopped = chain.NAMES[chain.NAMES.index(killed):]
            assert found.phase in stopped[:2]  # it, or the next one it handed over to
            failure = install["phases"][found.phase]["failure"]
            assert failure["interrupted"] == {"phase": found.phase, "at": found.at}
            assert failure["category"] == chain.category(found.phase)
            assert recovery.recover(root) is None  # recorded once
            resume(root)
        install = state.read(state.INSTALL_STATE, root)
    assert install["status"] == "succeeded" and "owner" not in install
    assert end_state(root) == reference


def gone_owner(**changes) -> dict:
    """The owner record of a process that has exited."""
    process = subprocess.Popen(["sleep", "60"])
    owner = runlock.owner(process.pid)
    process.kill()
    process.wait()
    return {**owner, **changes}


def phase_record(state_: str, last_action: str | None = None) -> dict:
    return {"state": state_, "started_at": "2026-12-01T10:00:00Z" if state_ != "pending" else None,
            "finished_at": "2026-12-01T10:01:00Z" if state_ == "succeeded" else None,
            "last_action": last_action, "failure": None}


def in_k3s(owner: dict | None, updated_at: str = "2026-12-01T10:02:00Z") -> dict:
    """A run the install state shows in the k3s phase."""
    install = {"status": "running", "current_phase": "k3s", "updated_at": updated_at,
               "request_id": "20261201T100000Z-0a1b2c3d",
               "phases": {"preflight": phase_record("succeeded"),
                          "dns": phase_record("succeeded"),
                          "k3s": phase_record("running", "waiting for the node"),
                          "flux": phase_record("pending"), "release": phase_record("pending")}}
    return install if owner is None else {**install, "owner": owner}


@pytest.fixture
def root(tmp_path, monkeypatch):
    make_host_root(tmp_path, paths.SPOOL_DIR)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://10.0.0.5:3000",
                                     "dns": {"mode": "system"}, "proxy": None,
                                     "overrides": {}}, tmp_path)
    return tmp_path


def systemctl_calls(root: Path) -> list[str]:
    log = root / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_live_owner_is_not_interrupted(root):
    state.write(state.INSTALL_STATE, in_k3s(runlock.owner()), root)
    assert recovery.find(state.read(state.INSTALL_STATE, root)) is None
    assert recovery.recover(root) is None
    assert state.read(state.INSTALL_STATE, root)["status"] == "running"


def test_a_dead_owner_is_recorded_as_interrupted_in_its_phase_with_its_log(root):
    (root / "var/log/alga-appliance/k3s.log").write_text("2026-12-01T10:01:59Z → waiting\n")
    state.write(state.INSTALL_STATE, in_k3s(gone_owner()), root)
    found = recovery.recover(root)
    assert found == recovery.Interruption("k3s", "2026-12-01T10:02:00Z", rebooted=False)
    install = state.read(state.INSTALL_STATE, root)
    assert (install["status"], install["current_phase"]) == ("failed", "k3s")
    assert "owner" not in install
    record = install["phases"]["k3s"]
    assert record["state"] == "failed" and record["finished_at"]
    failure = record["failure"]
    assert failure["interrupted"] == {"phase": "k3s", "at": "2026-12-01T10:02:00Z"}
    assert failure["category"] == "k3s" and failure["last_action"] == "waiting for the node"
    assert "Install k3s stopped without recording a result" in failure["suspected_cause"]
    assert "2026-12-01T10:02:00Z" in failure["suspected_cause"]
    assert failure["next_step"].startswith("resume setup")
    assert "→ waiting" in failure["log_excerpt"]
    assert "interrupted: Install k3s stopped" in (root / "var/log/alga-appliance/k3s.log"
                                                 ).read_text()
    assert install["phases"]["dns"]["state"] == "succeeded"
    assert systemctl_calls(root) == []  # the same boot: resumed only when asked


def test_a_run_from_before_owners_were_recorded_counts_as_interrupted(root):
    state.write(state.INSTALL_STATE, in_k3s(None), root)
    assert recovery.recover(root).phase == "k3s"


def test_a_run_between_phases_has_time_to_hand_over(root):
    """The next phase's unit is starting: nobody owns the run for a moment."""
    install = in_k3s(gone_owner(), updated_at=state.timestamp())
    install["phases"]["k3s"] = phase_record("succeeded")
    state.write(state.INSTALL_STATE, install, root)
    assert recovery.recover(root) is None
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=busy.HANDOVER_SECONDS + 1)
    found = recovery.find(state.read(state.INSTALL_STATE, root), now=later)
    assert found.phase == "flux"  # the phase that never started


def test_the_lock_held_means_someone_is_at_work(root):
    state.write(state.INSTALL_STATE, in_k3s(None), root)
    with runlock.held(root):
        assert recovery.recover(root) is None
    assert state.read(state.INSTALL_STATE, root)["status"] == "running"


def test_after_a_reboot_the_boot_unit_resumes_setup_from_the_interrupted_phase(root):
    state.write(state.INSTALL_STATE, in_k3s(gone_owner(boot_id="an-earlier-boot")), root)
    result = CliRunner().invoke(cli.main, ["recover-setup"])
    assert result.exit_code == 0, result.output
    assert "interrupted by a reboot in k3s" in result.output and "resumed" in result.output
    assert systemctl_calls(root) == ["start --no-block alga-appliance-setup.target"]
    install = state.read(state.INSTALL_STATE, root)
    assert install["status"] == "pending"
    assert install["request_id"] == "20261201T100000Z-0a1b2c3d"  # the same run, followed on
    assert [install["phases"][n]["state"] for n in chain.NAMES] == [
        "succeeded", "succeeded", "pending", "pending", "pending"]
    assert "the machine restarted while Install k3s ran" in (
        root / "var/log/alga-appliance/k3s.log").read_text()
    again = CliRunner().invoke(cli.main, ["recover-setup"])  # owned by the resumed chain now
    assert again.exit_code == 0 and "no interrupted setup" in again.output


def test_the_boot_unit_in_the_same_boot_records_but_does_not_resume(root):
    state.write(state.INSTALL_STATE, in_k3s(gone_owner()), root)
    result = CliRunner().invoke(cli.main, ["recover-setup"])
    assert result.exit_code == 0 and "recorded as failed" in result.output
    assert systemctl_calls(root) == []
    assert state.read(state.INSTALL_STATE, root)["status"] == "failed"


def test_the_boot_unit_reports_an_unreadable_state_without_a_traceback(root):
    state.INSTALL_STATE.path(root).write_text("{not json")
    result = CliRunner().invoke(cli.main, ["recover-setup"])
    assert result.exit_code == 1 and result.output.startswith("recover-setup: install state")
    assert state.INSTALL_STATE.path(root).read_text() == "{not json"  # left for support


def test_the_status_collector_records_an_interrupted_run_and_reports_it_failed(root):
    state.write(state.INSTALL_STATE, in_k3s(gone_owner()), root)
    result = CliRunner().invoke(cli.main, ["collect-status", "--kubeconfig",
                                           str(root / "no-cluster-yet.yaml")])
    assert result.exit_code == 0, result.output
    assert state.read(state.INSTALL_STATE, root)["phases"]["k3s"]["failure"]["interrupted"]
    assert state.read(state.STATUS, root)["rollup"]["state"] == "failed_action_required"
