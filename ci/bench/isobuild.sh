#!/usr/bin/env bash
# Benchmark `isobuild build` against the reference tool and a plain copy, on a ~2.7 GB
# replica of the Ubuntu 24.04 live-server ISO (a random placeholder squashfs).
#
# For each of  isobuild build | xorriso -boot_image any replay (same edits) | cp
# it runs RUNS times (after one warm-up that also fills the page cache) and prints the
# median wall time and peak RSS from /usr/bin/time. Goals (docs/performance.md):
# isobuild <= 1.5x xorriso and <= 2x cp in time; isobuild peak RSS <= 100 MB.
#
#   ci/bench/isobuild.sh            BENCH_DIR=/var/tmp/alga-isobuild-bench RUNS=5 FILLER_MIB=2600
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${BENCH_DIR:-/var/tmp/alga-isobuild-bench}
runs=${RUNS:-5}
filler_mib=${FILLER_MIB:-2600}
python=.venv/bin/python
mkdir -p "$work"

base="$work/ubuntu-24.04.1-live-server-amd64-${filler_mib}.iso"
if [ ! -f "$base" ]; then
  echo "==> building a replica with a ${filler_mib} MiB placeholder squashfs"
  "$python" ci/replica.py "$base" --hwe --filler-mib "$filler_mib"
fi
echo "==> base: $(stat -c %s "$base") bytes"

# The exact files isobuild adds, for xorriso to map in.
PYTHONPATH=. "$python" ci/xorriso_replay.py prepare "$base" "$work/edits"
mapfile -t map_args < "$work/edits/map.args"
out="$work/out.iso"

measure() {  # name, then the command; each run starts with no output file
  local name=$1 log="$work/$1.times"
  shift
  rm -f "$out" "$out.manifest.json"
  "$@" > /dev/null 2>&1  # warm-up, not counted: also fills the page cache
  : > "$log"
  for _ in $(seq "$runs"); do
    rm -f "$out" "$out.manifest.json"
    /usr/bin/time -f "%e %M" -a -o "$log" "$@" > /dev/null 2>&1
  done
}

measure isobuild .venv/bin/isobuild build --base-iso "$base" --output "$out"
measure xorriso xorriso -indev "$base" -outdev "$out" -boot_image any replay "${map_args[@]}" -commit
measure cp cp "$base" "$out"
rm -f "$out" "$out.manifest.json"

"$python" - "$work" <<'PY'
import statistics, sys
from pathlib import Path
work = Path(sys.argv[1])
median = {}
for name in ("isobuild", "xorriso", "cp"):
    rows = [line.split() for line in (work / f"{name}.times").read_text().splitlines()]
    wall = [float(r[0]) for r in rows]
    rss = [int(r[1]) / 1024 for r in rows]
    median[name] = statistics.median(wall)
    print(f"{name:8} wall median {median[name]:6.2f} s (min {min(wall):.2f}, max {max(wall):.2f})"
          f"   peak RSS median {statistics.median(rss):6.1f} MB (max {max(rss):.1f})")
print(f"ratios   isobuild/xorriso {median['isobuild'] / median['xorriso']:.2f}"
      f"   isobuild/cp {median['isobuild'] / median['cp']:.2f}")
PY
