#!/usr/bin/env bash
# Regenerate the docs' pictures of the product: the UI screenshots in docs/screenshots/
# from the browser tests (real chromium, real service, state from real flows), and the
# console captures in docs/admin-guide.md from the console tests (tmux and a pty). Run
# after changing ui-static/ or host/console/, then review the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
captures=$(mktemp -d)
trap 'rm -rf "$captures"' EXIT
rm -rf docs/screenshots
UI_SCREENSHOT_DIR="$PWD/docs/screenshots" CONSOLE_CAPTURE_DIR="$captures" \
  .venv/bin/python -m pytest -p no:cacheprovider -q \
  tests/web/test_ui.py tests/web/test_ui_updates.py tests/web/test_ui_self_update.py \
  tests/web/test_ui_time.py \
  tests/web/test_ui_logs.py tests/web/test_ui_facts.py tests/web/test_ui_words.py \
  tests/console/test_console.py \
  tests/console/test_menu.py \
  tests/console/test_network_console.py
ls docs/screenshots
.venv/bin/python ci/embed_captures.py "$captures" docs/admin-guide.md
