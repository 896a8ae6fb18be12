#!/usr/bin/env bash
# The whole test suite: set up, lint, then pytest (including the qemu boot tier).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh --test
echo "==> ruff check"
.venv/bin/ruff check .
echo "==> pytest"
.venv/bin/python -m pytest -p no:cacheprovider -rfEs --durations=15 "$@"
