#!/usr/bin/env python3
"""Benchmark the support bundle on a large, failing install: 500 pods (one in ten
crash-looping, each with 1 MiB of logs this run and the last), 2,000 events, 60 Secrets,
Flux controllers with 5 MiB of logs each, five 3 MiB phase logs and the journal's 5,000
lines per unit.

Builds a root prefix and a kubectl stand-in store in the real API formats, starts DNS and
HTTPS servers on loopback for the network checks, then runs
`alga-appliance support-bundle` as root under /usr/bin/time RUNS times and prints the
median wall time, peak RSS and archive size (goals: under 30 s, 100 MB and 20 MB;
docs/performance.md).

    sudo .venv/bin/python ci/bench/bundle.py [RUNS]
    OBFUSCATE=1 sudo .venv/bin/python ci/bench/bundle.py   # with --obfuscate-network
"""

import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "ci")]

from support.builders import event, healthy, installed_root, pod, store_for  # noqa: E402
from support.cluster import FakeCluster  # noqa: E402
from support.netlab import DnsServer, HttpsServer, Route, TestCA, free_loopback_address  # noqa: E402
from support.releases import DNS_NAMES, github_routes  # noqa: E402

from host.core import paths, state  # noqa: E402
from host.setup import chain  # noqa: E402

MIB = 1 << 20
GOAL_SECONDS, GOAL_RSS_MB, GOAL_SIZE_MB = 30, 100, 20
OPTIONS = ["--obfuscate-network"] if os.environ.get("OBFUSCATE") else []


def log_lines(what: str, size: int) -> bytes:
    """`size` bytes of log. Each line carries a random request id, so it compresses like a
    real log rather than like a repeated line; one in twenty names a token and a key, as real
    logs do, so the redactor's line rules have work."""
    line = f"2026-11-27T10:00:00.000Z level=info msg=\"{what}\" node=10.0.0.5 id=%016x\n"
    noted = ("2026-11-27T10:00:00.000Z level=info msg=\"refreshing token\" "
             "key=app.kubernetes.io/name url=https://github.com/Nine-Minds/alga-psa id=%016x\n")
    ids = random.Random(what)
    return b"".join(((noted if i % 20 == 0 else line) % ids.getrandbits(64)).encode()
                    for i in range(size // len(line % 0)))


def secret(index: int) -> dict:
    value = base64.b64encode(f"generated-secret-value-{index:04d}".encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"app-secret-{index}", "namespace": "msp"},
            "data": {"password": value, "username": base64.b64encode(b"alga").decode()}}


def build(root: Path, dns: DnsServer, github: HttpsServer, ghcr: HttpsServer,
          ca: TestCA) -> dict:
    installed_root(root)
    state.write(state.ENDPOINTS, {"raw_base": github.url, "ghcr_base": ghcr.url,
                                  "k3s_release_base": f"{github.url}/k3s",
                                  "flux_release_base": f"{github.url}/flux",
                                  "ca_bundle": str(ca.ca_pem_path)}, root)
    (root / "etc/resolv.conf").write_text(f"nameserver {dns.address}\n")
    token_file = root / paths.TOKEN_FILE.lstrip("/")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text("BENC-HT0K-EN00-0123-4567-89AB-CDEF\n")
    for phase in chain.NAMES:
        (root / paths.LOG_DIR.lstrip("/") / f"{phase}.log").write_bytes(
            log_lines(f"{phase} step", 3 * MIB))
    pods = [pod(f"worker-{i:03d}-x", "ReplicaSet", f"worker-{i:03d}",
                waiting="CrashLoopBackOff" if i % 10 == 0 else "",
                restarts=3 if i % 10 == 0 else 0) for i in range(500)]
    events = [event(f"worker-{i % 500:03d}-x", "BackOff", f"back-off {i}",
                    f"2026-11-27T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z")
              for i in range(2000)]
    store = store_for(healthy(), pods, events)
    store.update({f"Secret/msp/app-secret-{i}": secret(i) for i in range(60)})
    (root / "store.json").write_text(json.dumps(store))
    logs = FakeCluster(root).pod_logs
    for i in range(0, 500, 10):
        folder = logs / "msp" / f"worker-{i:03d}-x"
        folder.mkdir(parents=True)
        for run in ("main", "main.previous"):
            (folder / f"{run}.log").write_bytes(log_lines(f"worker {i} {run}", MIB))
    for controller in ("source-controller", "kustomize-controller", "helm-controller"):
        folder = logs / "flux-system" / "deployment" / controller
        folder.mkdir(parents=True)
        (folder / "all.log").write_bytes(log_lines(f"{controller} reconciling", 5 * MIB))
    return {**os.environ, **FakeCluster(root).knobs(quiet=True), "PYTHONPATH": str(ROOT)}


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    root = Path(tempfile.mkdtemp(prefix="bundle-bench-"))
    ca = TestCA()
    with DnsServer(free_loopback_address(), {n: ["127.0.0.1"] for n in DNS_NAMES}) as dns, \
            HttpsServer(ca, github_routes()) as github, \
            HttpsServer(ca, {"/v2/": Route(status=401)}) as ghcr:
        env = build(root, dns, github, ghcr, ca)
        walls, peaks, sizes = [], [], []
        for run in range(runs):
            output, timing = root / f"bundle-{run}.tar.gz", root / "time.txt"
            subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(timing), sys.executable,
                            "-m", "host", "--root", str(root), "support-bundle", "-o",
                            str(output), *OPTIONS], env=env, check=True, capture_output=True)
            wall, peak = timing.read_text().split()
            walls.append(float(wall))
            peaks.append(int(peak) / 1024)
            sizes.append(output.stat().st_size / MIB)
    with tarfile.open(output) as tar:
        manifest = json.load(tar.extractfile(tar.getmembers()[0]))
        unpacked = sum(member.size for member in tar.getmembers()) / MIB
    failed = [c["name"] for c in manifest["collectors"] if c["status"] in ("failed", "timed_out")]
    print(f"bundle: wall median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max "
          f"{max(walls):.1f}), peak RSS median {statistics.median(peaks):.1f} MB (max "
          f"{max(peaks):.1f}), archive {statistics.median(sizes):.2f} MB "
          f"({unpacked:.1f} MB unpacked, {len(manifest['members'])} members)")
    print(f"goals: time < {GOAL_SECONDS} s, RSS < {GOAL_RSS_MB} MB, size < {GOAL_SIZE_MB} MB")
    print(f"collectors failed: {', '.join(failed) or 'none'} (the stand-ins have no k3s binary "
          "or resolvectl)")
    slowest = sorted(manifest["collectors"], key=lambda c: -c["duration_ms"])[:3]
    print("slowest collectors: " + ", ".join(f"{c['name']} {c['duration_ms'] / 1000:.1f} s"
                                             for c in slowest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
