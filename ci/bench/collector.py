#!/usr/bin/env python3
"""Benchmark the status collector on a large cluster: 500 pods and 2,000 events.

Builds a root prefix and a kubectl stand-in store in the real API formats, then runs
`alga-appliance collect-status` under /usr/bin/time RUNS times and prints the median wall
time and peak RSS (goal: under 1 s and 60 MB; docs/performance.md).

    .venv/bin/python ci/bench/collector.py [RUNS]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "ci")]

from support.builders import event, healthy, installed_root, pod, store_for  # noqa: E402
from support.cluster import FakeCluster  # noqa: E402


def build(root: Path) -> dict:
    installed_root(root)
    pods = [pod(f"worker-{i:03d}-x", "ReplicaSet", f"worker-{i:03d}",
                waiting="CrashLoopBackOff" if i % 10 == 0 else "", restarts=i % 7)
            for i in range(500)]
    events = [event(f"worker-{i % 500:03d}-x", "BackOff", f"back-off {i}",
                    f"2026-11-27T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z")
              for i in range(2000)]
    (root / "store.json").write_text(json.dumps(store_for(healthy(), pods, events)))
    return {**os.environ, **FakeCluster(root).knobs(quiet=True), "PYTHONPATH": str(ROOT)}


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    env = build(root)
    command = [sys.executable, "-m", "host", "--root", str(root), "collect-status",
               "--kubeconfig", str(root / "k3s.yaml")]
    walls, peaks = [], []
    for _ in range(runs + 1):  # the first run warms caches and is not counted
        timing = root / "time.txt"
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *command], env=env,
                       check=True, capture_output=True)
        wall, peak = timing.read_text().split()
        walls.append(float(wall))
        peaks.append(int(peak) / 1024)
    walls, peaks = walls[1:], peaks[1:]
    print(f"collector: wall median {statistics.median(walls):.2f} s "
          f"(min {min(walls):.2f}, max {max(walls):.2f}), peak RSS median "
          f"{statistics.median(peaks):.1f} MB (max {max(peaks):.1f})")
    snapshot = json.loads((root / "var/lib/alga-appliance/status.json").read_text())
    print(f"snapshot: {len(snapshot['components']['pods'])} pods, {len(snapshot['blockers'])} "
          f"blockers, {len(snapshot['events'])} events, rollup {snapshot['rollup']['state']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
