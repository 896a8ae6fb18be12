#!/usr/bin/env python3
"""Benchmark resolving a channel from the OCI release source: the full flow (challenge,
anonymous token, manifest, config blob through the blob host's redirect, the config
bundle's manifest by digest) against the tests' real registry (Debian's docker-registry
behind a token service and a blob-redirecting front, tests/support/registry.py) on
loopback with TLS.

Prints the median and p95 wall time over RUNS resolutions (each a fresh session, as a
phase or an update check starts one) and the HTTP requests one resolution makes, by
server (docs/performance.md).

    .venv/bin/python ci/bench/oci_resolve.py [RUNS]
"""

import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.netlab import TestCA  # noqa: E402
from support.registry import Registry  # noqa: E402
from support.releases import oci_source, publish_oci  # noqa: E402

from host.net import https  # noqa: E402
from host.net.endpoints import Endpoints  # noqa: E402
from host.releases import oci_source as oci_release  # noqa: E402

TIMEOUT = 10.0


def resolve(registry: Registry) -> dict:
    """One resolution of stable, every step as preflight runs them; the selection."""
    session = https.session({"proxy": None}, Endpoints(ca_bundle=str(registry.ca.ca_pem_path)))
    resolution = oci_release.Resolution(
        session, oci_release.Reference.parse(oci_source(registry)), "stable")
    for _, step in resolution.steps:
        step(TIMEOUT)
    resolution.profile_values(TIMEOUT)
    return resolution.selection("2026-12-06T00:00:00Z")


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with Registry(TestCA()) as registry:
        digest, _ = publish_oci(registry)
        assert resolve(registry)["manifest_digest"] == digest  # also warms the registry
        registry.requests.reset()
        resolve(registry)
        per_server = Counter(request.role for request in registry.requests)
        walls = []
        for _ in range(runs):
            started = time.perf_counter()
            resolve(registry)
            walls.append(time.perf_counter() - started)
    walls.sort()
    p95 = walls[max(0, round(0.95 * len(walls)) - 1)]
    print(f"resolve stable: median {statistics.median(walls) * 1000:.1f} ms, p95 "
          f"{p95 * 1000:.1f} ms (min {walls[0] * 1000:.1f}, max {walls[-1] * 1000:.1f}) over "
          f"{runs} runs")
    print(f"HTTP requests per resolution: {sum(per_server.values())} "
          f"({', '.join(f'{role} {count}' for role, count in sorted(per_server.items()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
