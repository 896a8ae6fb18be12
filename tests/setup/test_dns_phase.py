"""The DNS phase: nothing in system mode; custom resolvers for the host and for k3s,
recorded and reversible, in custom mode."""

from pathlib import Path

import pytest
from support.base import FAKES, make_host_root
from support.scenarios import assert_next_step_is_ours

from host.core import state
from host.setup import engine

DROPIN = "etc/systemd/resolved.conf.d/alga-appliance-dns.conf"
K3S_RESOLV = "etc/rancher/k3s/resolv.conf"


@pytest.fixture
def root(tmp_path, monkeypatch):
    make_host_root(tmp_path)
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    return tmp_path


def set_dns(root: Path, dns: dict) -> None:
    state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": "http://10.0.0.5:3000",
                                     "dns": dns, "proxy": None, "overrides": {}}, root)


def systemctl_calls(root: Path) -> list[str]:
    log = root / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def test_system_mode_changes_nothing(root):
    set_dns(root, {"mode": "system"})
    assert engine.run_phase("dns", root) == 0
    assert not (root / DROPIN).exists() and not (root / K3S_RESOLV).exists()
    assert systemctl_calls(root) == []
    assert state.read(state.HOST_CHANGES, root) == {"files": []}


def test_custom_mode_writes_both_files_and_records_them(root):
    set_dns(root, {"mode": "custom", "servers": ["10.0.0.53", "2001:db8::53"]})
    assert engine.run_phase("dns", root) == 0
    dropin = (root / DROPIN).read_text()
    assert "[Resolve]\nDNS=10.0.0.53 2001:db8::53\n" in dropin
    assert (root / K3S_RESOLV).read_text().endswith("nameserver 10.0.0.53\n"
                                                    "nameserver 2001:db8::53\n")
    assert "127.0.0.53" not in (root / K3S_RESOLV).read_text()
    assert all((root / p).stat().st_mode & 0o777 == 0o644 for p in (DROPIN, K3S_RESOLV))
    assert systemctl_calls(root) == ["try-restart systemd-resolved.service"]
    recorded = {f["path"] for f in state.read(state.HOST_CHANGES, root)["files"]}
    assert recorded == {f"/{DROPIN}", f"/{K3S_RESOLV}"}


def test_switching_back_to_system_undoes_custom_dns(root):
    set_dns(root, {"mode": "custom", "servers": ["10.0.0.53"]})
    engine.run_phase("dns", root)
    set_dns(root, {"mode": "system"})
    assert engine.run_phase("dns", root) == 0
    assert not (root / DROPIN).exists() and not (root / K3S_RESOLV).exists()
    assert systemctl_calls(root) == ["try-restart systemd-resolved.service"] * 2
    assert state.read(state.HOST_CHANGES, root) == {"files": []}


def test_resolved_failing_to_restart_is_classified_dns(root, monkeypatch):
    monkeypatch.setenv("FAKE_SYSTEMCTL_FAIL", "1")
    set_dns(root, {"mode": "custom", "servers": ["10.0.0.53"]})
    assert engine.run_phase("dns", root) == engine.EXIT_FAILED
    failure = state.read(state.INSTALL_STATE, root)["phases"]["dns"]["failure"]
    assert failure["category"] == "dns"
    assert "systemd-resolved did not restart" in failure["suspected_cause"]
    assert_next_step_is_ours(failure["next_step"])
