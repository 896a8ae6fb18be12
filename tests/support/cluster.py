"""The fake cluster (pytest plugin): the stand-ins of tests/fakes first on PATH (kubectl
and k3s, systemctl, journalctl, ufw, agetty), with every file they keep under one root:
store.json ($FAKE_KUBE_STORE), kubectl.log ($FAKE_KUBE_LOG), pod-logs/ ($FAKE_POD_LOGS),
systemctl.log, journal.log, ufw.log and agetty.log. Fixture `fake_cluster` sets it up on
tmp_path; FakeCluster(root).use(monkeypatch) or .knobs() on any other root."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host.core import state
from support.base import FAKES, ROOT


class FakeCluster:
    def __init__(self, root: Path):
        self.root = root
        self.store, self.log, self.pod_logs = (root / "store.json", root / "kubectl.log",
                                               root / "pod-logs")

    def knobs(self, quiet: bool = False) -> dict[str, str]:
        """PATH and the fakes' files (tests/README.md lists the other knobs); `quiet` sends
        the call logs to /dev/null (the benchmarks time the code, not the logging)."""
        logs = {"FAKE_KUBE_LOG": self.log,
                **{f"FAKE_{tool}_LOG": self.root / f"{tool.lower()}.log"
                   for tool in ("SYSTEMCTL", "JOURNAL", "UFW", "AGETTY")}}
        return {"PATH": f"{FAKES}:/usr/bin:/bin", "FAKE_KUBE_STORE": str(self.store),
                "FAKE_POD_LOGS": str(self.pod_logs),
                **{name: "/dev/null" if quiet else str(path) for name, path in logs.items()}}

    def use(self, monkeypatch: pytest.MonkeyPatch) -> "FakeCluster":
        for name, value in self.knobs().items():
            monkeypatch.setenv(name, value)
        return self

    def objects(self) -> dict:
        """The store: objects by kind/namespace/name."""
        return json.loads(self.store.read_text()) if self.store.exists() else {}

    def get(self, kind: str, namespace: str, name: str) -> dict:
        return self.objects()[f"{kind}/{namespace}/{name}"]

    def put(self, *objects: dict) -> None:
        store = self.objects()
        for obj in objects:
            meta = obj["metadata"]
            store[f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"] = obj
        self.store.write_text(json.dumps(store))

    def calls(self) -> list[dict]:
        """kubectl's calls so far: argv and stdin of each."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch) -> FakeCluster:
    """The fakes on PATH, their files in tmp_path."""
    return FakeCluster(tmp_path).use(monkeypatch)


def phase_process(root: Path, phase: str) -> subprocess.Popen:
    """`alga-appliance phase PHASE` on `root` in a process of its own, on the fakes."""
    env = {**os.environ, **FakeCluster(root).knobs(), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "host", "--root", str(root), "phase", phase,
                             "--kubeconfig", str(root / "k3s.yaml")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def end_state(root: Path) -> dict:
    """What setup's phases leave behind on the fake cluster and the host root, without
    timestamps and server-assigned fields: what a re-run or a resumed run must reproduce."""
    store = json.loads((root / "store.json").read_text())
    for obj in store.values():
        for field in ("uid", "resourceVersion", "annotations"):
            obj["metadata"].pop(field, None)
    secret = store.pop("Secret/msp/alga-psa-shared", None)
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.is_file() and p.parts[len(root.parts)] in ("usr", "etc")
             and "alga-appliance" not in p.parts}
    return {"store": store, "has_secret": secret is not None, "files": files,
            "selected": state.read(state.SELECTED_RELEASE, root)["release_version"]}
