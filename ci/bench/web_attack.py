#!/usr/bin/env python3
"""Measure the web service under the attacks of issue 19 (docs/performance.md).

Starts `alga-appliance serve` on 127.0.0.1 (tests/support/attacks.py) and runs, one after
the other:

- slowloris from one address: 200 connections from 127.0.0.2, each sending one more byte of
  a request every INTERVAL seconds and opening again when closed, for DURATION seconds, while
  an admin on 127.0.0.1 GETs /healthz and /api/status (with the token) in turn, each on a
  new connection, 0.1 s apart;
- the same from 200 addresses (127.0.1.1 to 127.0.1.200, one connection each);
- 20 concurrent 1 GiB POSTs without a token (half with Content-Length, half chunked), each
  streamed from a generator.

Prints, for each: the connections the server held (sampled every 0.25 s), the admin's
requests served and failed with p50/p99/max latency, the server's RSS and the free space of
the temporary directory before and after, and any temporary file the server opened. The goal
(issue 19): every admin request answered, p99 under 1 s; the uploads refused within a second,
disk and RSS flat. Exits 0 whether or not the goals are met.

    .venv/bin/python ci/bench/web_attack.py            # DURATION=60 INTERVAL=3
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.attacks import (  # noqa: E402
    Sampler,
    concurrent_uploads,
    describe_uploads,
    disk_free,
    running_service,
    slowloris,
)
from support.base import make_host_root  # noqa: E402

from host.core import paths  # noqa: E402

GOAL_P99 = 1.0


def before(service) -> tuple[float, int]:
    return service.rss_mib(), disk_free(tempfile.gettempdir())


def report_resources(service, rss_before: float, disk_before: int, spooled: set) -> None:
    drop = (disk_before - disk_free(tempfile.gettempdir())) / (1 << 20)
    print(f"  server RSS {rss_before:.1f} MiB before, {service.rss_mib():.1f} MiB after; free "
          f"space in {tempfile.gettempdir()} dropped {drop:.1f} MiB; temporary files opened: "
          f"{len(spooled)}")


def measure_slowloris(service, sources: list[str], duration: float, interval: float) -> None:
    print(f"slowloris: 200 connections from {len(sources)} address(es), a byte every "
          f"{interval:g} s each, {duration:g} s")
    rss_before, disk_before = before(service)
    run = slowloris(service, sources, duration, interval)
    for line in run.describe():
        print(f"  {line}")
    report_resources(service, rss_before, disk_before, run.spooled)
    met = not run.polls.failures and run.polls.percentile(0.99) < GOAL_P99
    print(f"  goal every request answered, p99 < {GOAL_P99:g} s: {'met' if met else 'NOT MET'}")


def measure_uploads(service) -> None:
    print("uploads: 20 concurrent POST /api/setup of 1 GiB without a token")
    rss_before, disk_before = before(service)
    with Sampler(service) as sampler:
        done = concurrent_uploads(service.host, service.port)
    print(f"  {describe_uploads(done)}")
    report_resources(service, rss_before, disk_before, sampler.spooled)
    met = {u.outcome for u in done} <= {"413", "closed"} and \
        max(u.seconds for u in done) < 1 and not sampler.spooled
    print(f"  goal refused within 1 s, nothing on disk: {'met' if met else 'NOT MET'}")


def main() -> int:
    duration = float(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DURATION", 60))
    interval = float(os.environ.get("INTERVAL", 3))
    with tempfile.TemporaryDirectory(prefix="web-attack-bench-") as tmp:
        root = make_host_root(Path(tmp), paths.SPOOL_DIR)
        with running_service(root) as service:
            print(f"server pid {service.pid} on {service.url}")
            measure_slowloris(service, ["127.0.0.2"], duration, interval)
            measure_slowloris(service, [f"127.0.1.{n}" for n in range(1, 201)], duration,
                              interval)
            measure_uploads(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
