#!/usr/bin/env python3
"""Benchmark what verifying the base ISO adds to `isobuild build`, on a ~2.7 GB replica of the
Ubuntu 24.04 live-server ISO (ci/replica.py, a random placeholder squashfs of FILLER_MIB).

The replica sits in isobuild's cache under the pinned name, with a SHA256SUMS for it signed
by a throwaway key that the builds trust through the pin's override (as the tests do), and
a loopback HTTPS mirror serving that SHA256SUMS and its signature. After one warm-up run
each (which also fills the page cache), RUNS runs, taken in turns, of:

- unverified: `isobuild build --base-iso BASE` (no SHA256SUMS);
- local, verified: the same with `--sha256sums` and `--sha256sums-gpg`;
- download, cached: `isobuild build` with no --base-iso (fetch SHA256SUMS and its signature,
  gpgv, re-hash the cached ISO, then build).

It prints the median wall times and how much each verified build adds to the unverified one.

    RUNS=5 .venv/bin/python ci/bench/base_verify.py   # BENCH_DIR=/var/tmp/alga-isobuild-bench
"""

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "ci")]

import replica  # noqa: E402
from support.mirror import SigningKey, UbuntuMirror  # noqa: E402
from support.netlab import Route, TestCA  # noqa: E402

from isobuild.checksums import sha256_file  # noqa: E402
from isobuild.download import ISO_NAME, SIGNATURE, SUMS  # noqa: E402

ISOBUILD = str(ROOT / ".venv" / "bin" / "isobuild")


def replica_in_cache(work: Path, filler_mib: int) -> Path:
    """The replica under the pinned name in the cache, built once per size."""
    iso = work / f"cache-{filler_mib}" / ISO_NAME
    if not iso.is_file():
        print(f"==> building a replica with a {filler_mib} MiB placeholder squashfs", flush=True)
        iso.parent.mkdir(parents=True, exist_ok=True)
        replica.build_replica(iso.with_suffix(".partial"), hwe=True, filler_mib=filler_mib)
        iso.with_suffix(".partial").rename(iso)
    return iso


def timed(variants: dict[str, list[str]], env: dict, runs: int,
          output: Path) -> dict[str, list[float]]:
    """Wall seconds of `runs` runs of each variant after one warm-up, taken in turns so that
    a load change on the machine falls on all of them; each starts without an output."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(runs + 1):
        for name, argv in variants.items():
            output.unlink(missing_ok=True)
            started = time.monotonic()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            if run:
                times[name].append(time.monotonic() - started)
    return times


def main() -> None:
    work = Path(os.environ.get("BENCH_DIR", "/var/tmp/alga-isobuild-bench"))
    runs = int(os.environ.get("RUNS", "5"))
    iso = replica_in_cache(work, int(os.environ.get("FILLER_MIB", "2600")))
    print(f"==> base: {iso.stat().st_size} bytes", flush=True)
    out = work / "verify-out.iso"
    key_directory = work / f"key-{os.getpid()}"
    key_directory.mkdir()
    key = SigningKey(key_directory, "bench")
    sums = iso.parent / SUMS
    try:
        sums.write_text(f"{sha256_file(iso)} *{ISO_NAME}\n")
        (iso.parent / SIGNATURE).write_bytes(key.sign(sums.read_bytes()))
        with UbuntuMirror(TestCA()) as mirror:
            mirror.routes[mirror.PRIMARY + SUMS] = Route(body=sums.read_bytes())
            mirror.routes[mirror.PRIMARY + SIGNATURE] = Route(
                body=(iso.parent / SIGNATURE).read_bytes())
            env = mirror.environment(iso.parent, key)
            build = [ISOBUILD, "build", "--output", str(out)]
            medians = timed({
                "unverified": [*build, "--base-iso", str(iso)],
                "local, verified": [*build, "--base-iso", str(iso), "--sha256sums", str(sums),
                                    "--sha256sums-gpg", str(iso.parent / SIGNATURE)],
                "download, cached": build,
            }, env, runs, out)
    finally:
        key.close()
        shutil.rmtree(key_directory)
        for leftover in (out, *out.parent.glob(f"{out.name}.*")):
            leftover.unlink(missing_ok=True)
    base = statistics.median(medians["unverified"])
    for name, times in medians.items():
        median = statistics.median(times)
        print(f"{name:17} wall median {median:6.2f} s (min {min(times):.2f}, max "
              f"{max(times):.2f})   verification adds {median - base:+.2f} s")


if __name__ == "__main__":
    main()
