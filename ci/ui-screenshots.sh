#!/usr/bin/env bash
# Regenerate the UI screenshots in docs/screenshots/ from the browser tests (real chromium,
# real service, state from real flows). Run after changing ui-static/, then review the
# images in the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/screenshots
UI_SCREENSHOT_DIR="$PWD/docs/screenshots" .venv/bin/python -m pytest -p no:cacheprovider -q \
  tests/test_ui.py tests/test_ui_updates.py
ls docs/screenshots
