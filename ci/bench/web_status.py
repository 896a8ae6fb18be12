#!/usr/bin/env python3
"""Benchmark the web service's status endpoint under 50 polling clients.

Builds a root prefix with a token and a status snapshot collected from a healthy cluster of
40 pods and 50 warning events (through the kubectl stand-in), starts
`alga-appliance serve` on 127.0.0.1, then runs 50 clients (5 processes x 10 threads, each
thread its own requests.Session) that GET /api/status in a loop for DURATION seconds,
sleeping INTERVAL seconds after each answer (the UI polls at most once a second; INTERVAL=0
saturates the server). Afterwards it samples the server's CPU time over IDLE seconds without
requests. Prints requests, errors, p50/p99/max latency, the server's peak and final RSS and
idle CPU against the goals (p99 < 50 ms, no errors, RSS < 60 MB, idle CPU < 1 %;
docs/performance.md). Exits 0 whether or not the goals are met.

    .venv/bin/python ci/bench/web_status.py [DURATION]
    DURATION=60 INTERVAL=1 IDLE=30 .venv/bin/python ci/bench/web_status.py
"""

import getpass
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "ci")]

import requests  # noqa: E402
from support.builders import event, healthy, installed_root, pod, store_for  # noqa: E402
from support.cluster import FakeCluster  # noqa: E402

from host import status  # noqa: E402
from host.cluster.kube import Kube  # noqa: E402
from host.cluster.readiness import Verdict  # noqa: E402
from host.core import state, token  # noqa: E402

PROCESSES, THREADS = 5, 10
REQUEST_TIMEOUT = 10.0
GOAL_P99_MS, GOAL_RSS_MB, GOAL_IDLE_CPU = 50.0, 60.0, 1.0


def build(root: Path) -> int:
    """The root prefix with a healthy snapshot; returns the size of status.json in bytes."""
    installed_root(root)
    pods = [pod(f"worker-{i:02d}-x", "ReplicaSet", f"worker-{i:02d}") for i in range(40)]
    events = [event(f"worker-{i % 40:02d}-x", "BackOff", f"back-off restarting container {i}",
                    f"2026-11-27T10:{i:02d}:00Z") for i in range(50)]
    (root / "store.json").write_text(json.dumps(store_for(healthy(), pods, events)))
    with mock.patch.dict(os.environ, FakeCluster(root).knobs(quiet=True)):
        snapshot = status.take_snapshot(root, Kube(str(root / "k3s.yaml")),
                                  probe=lambda url: Verdict(True, f"{url} answered 200"))
    print(f"snapshot: {len(snapshot['components']['pods'])} pods, {len(snapshot['events'])} "
          f"events, rollup {snapshot['rollup']['state']}, "
          f"{state.STATUS.path(root).stat().st_size:,} bytes")
    return state.STATUS.path(root).stat().st_size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not answer /healthz within 15 s")


def client(url: str, bearer: str, start: float, deadline: float, interval: float,
           results: list) -> None:
    """One polling client: GET /api/status until the deadline; appends (latencies, errors)."""
    latencies, errors = [], []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {bearer}"
        time.sleep(max(0.0, start - time.monotonic()))
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                answer = session.get(f"{url}/api/status", timeout=REQUEST_TIMEOUT)
                answer.content  # noqa: B018  (read the whole body, as the UI does)
                if answer.status_code != 200:
                    errors.append(f"HTTP {answer.status_code}")
            except requests.RequestException as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - began)
            if interval:
                time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    results.append((latencies, errors))


def client_process(index: int, url: str, bearer: str, start: float, deadline: float,
                   interval: float) -> tuple[list, list]:
    """THREADS clients in one process, their first requests spread over one interval."""
    results: list = []
    threads = []
    for i in range(THREADS):
        offset = interval * (index * THREADS + i) / (PROCESSES * THREADS)
        threads.append(threading.Thread(
            target=client, args=(url, bearer, start + offset, deadline, interval, results)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ([x for latencies, _ in results for x in latencies],
            [x for _, errors in results for x in errors])


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (fields 14 and 15 of /proc/PID/stat, after the command name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def percentile(ordered: list, fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    duration = float(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DURATION", 60))
    interval = float(os.environ.get("INTERVAL", 1))
    idle = float(os.environ.get("IDLE", 30))
    with tempfile.TemporaryDirectory(prefix="web-status-bench-") as tmp:
        root = Path(tmp)
        build(root)
        bearer = token.ensure_token(root, owner=getpass.getuser())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (root / "server.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "host", "--root", str(root), "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, server)
            check = requests.get(f"{url}/api/status", timeout=REQUEST_TIMEOUT,
                                 headers={"Authorization": f"Bearer {bearer}"})
            if check.status_code != 200 or check.json()["status"] is None:
                raise SystemExit(f"GET /api/status answered {check.status_code}: {check.text}")
            print(f"server pid {server.pid} on {url}, RSS before load "
                  f"{memory_mb(server.pid, 'VmRSS'):.1f} MB; {PROCESSES * THREADS} clients "
                  f"({PROCESSES} processes x {THREADS} threads), {duration:g} s, interval "
                  f"{interval:g} s")
            cpu_before = cpu_seconds(server.pid)
            start = time.monotonic() + 1.0  # every process and thread is up by then
            deadline = start + duration
            with multiprocessing.get_context("fork").Pool(PROCESSES) as pool:
                parts = pool.starmap(client_process, [
                    (index, url, bearer, start, deadline, interval)
                    for index in range(PROCESSES)])
            elapsed = time.monotonic() - start
            load_cpu = cpu_seconds(server.pid) - cpu_before
            peak, rss_after_load = memory_mb(server.pid, "VmHWM"), memory_mb(server.pid, "VmRSS")
            idle_cpu = 0.0
            if idle > 0:
                print(f"sampling idle CPU for {idle:g} s ...", flush=True)
                cpu_idle_start, idle_start = cpu_seconds(server.pid), time.monotonic()
                time.sleep(idle)
                idle_cpu = 100 * (cpu_seconds(server.pid) - cpu_idle_start) / (
                    time.monotonic() - idle_start)
            rss_end = memory_mb(server.pid, "VmRSS")
            peak = max(peak, memory_mb(server.pid, "VmHWM"))
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
        server_log = (root / "server.log").read_text().strip()
    latencies = sorted(x for part, _ in parts for x in part) or [float("nan")]
    errors = [x for _, part in parts for x in part]
    requests_made = len(latencies)
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    print(f"requests: {requests_made:,} in {elapsed:.1f} s ({requests_made / elapsed:.1f}/s), "
          f"errors: {len(errors)}"
          + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))
    print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    print(f"server: CPU under load {100 * load_cpu / elapsed:.1f} % of one core, peak RSS "
          f"(VmHWM) {peak:.1f} MB, RSS after load {rss_after_load:.1f} MB, RSS at the end "
          f"{rss_end:.1f} MB, idle CPU {idle_cpu:.2f} % of one core over {idle:g} s")
    goals = [
        (f"p99 < {GOAL_P99_MS:g} ms", f"{p99:.1f} ms", p99 < GOAL_P99_MS),
        ("zero errors", str(len(errors)), not errors),
        (f"RSS < {GOAL_RSS_MB:g} MB", f"peak {peak:.1f} MB", peak < GOAL_RSS_MB),
        (f"idle CPU < {GOAL_IDLE_CPU:g} %", f"{idle_cpu:.2f} %" if idle > 0 else "not sampled",
         idle > 0 and idle_cpu < GOAL_IDLE_CPU),
    ]
    for goal, figure, met in goals:
        print(f"goal {goal}: {figure}: {'met' if met else 'NOT MET'}")
    queue = [int(line.rsplit(" ", 1)[1]) for line in server_log.splitlines()
             if "Task queue depth is" in line]
    if queue:
        print(f"server: waitress warned {len(queue)} time(s) that requests waited for one of "
              f"its 4 threads (deepest queue {max(queue)})")
    other = [line for line in server_log.splitlines() if "Task queue depth is" not in line]
    if other:
        print("server output:\n" + "\n".join(other[-20:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
