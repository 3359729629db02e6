#!/usr/bin/env bash
# Opens a run's report.html in headless Chromium, fails on any console
# message or page error, and checks the screenshot actually shows charts.
#   usage: scripts/eval/check-report.sh RUN_DIR [SCREENSHOT.png]
#          scripts/eval/check-report.sh --self-test   (proves it can fail)
# Needs Debian's `chromium`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "check-report: chromium is not installed (apt-get install chromium)" >&2; exit 2; }

check() { # HTML PNG
  local html="$1" png="$2" log
  log="$(mktemp)"
  rm -f "$png"
  # --enable-logging=stderr prints every console message as "CONSOLE(...)";
  # uncaught exceptions are console errors too.
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --enable-logging=stderr --v=0 --window-size=1000,2600 \
    --screenshot="$png" "file://$(realpath "$html")" >"$log" 2>&1 || true
  if grep -E "CONSOLE|Uncaught|ERR_FILE_NOT_FOUND|Failed to load" "$log" >&2; then
    echo "check-report: console errors in $html" >&2; rm -f "$log"; return 1
  fi
  rm -f "$log"
  [ -s "$png" ] || { echo "check-report: no screenshot written for $html" >&2; return 1; }
  python3 "$here/png_stats.py" "$png"
}

if [ "${1:-}" = "--self-test" ]; then
  tmp="$(mktemp -d)"
  # A colourful page (so only the console check can fail it) with errors.
  bars=""; for c in red green blue orange purple teal navy olive maroon gray; do
    bars="$bars<div style=\"height:120px;background:$c\"></div>"; done
  printf '<!DOCTYPE html><html><body>%s</body></html>' "$bars" >"$tmp/good.html"
  check "$tmp/good.html" "$tmp/good.png" >/dev/null || { echo "check-report self-test: a clean page failed" >&2; exit 1; }
  printf '<!DOCTYPE html><html><body>%s<script>console.error("planted"); missingFunction();</script></body></html>' "$bars" >"$tmp/bad.html"
  if check "$tmp/bad.html" "$tmp/bad.png" 2>/dev/null; then
    echo "check-report self-test: a page with console errors passed" >&2; exit 1
  fi
  printf '<!DOCTYPE html><html><body style="background:#fff"></body></html>' >"$tmp/blank.html"
  if check "$tmp/blank.html" "$tmp/blank.png" 2>/dev/null; then
    echo "check-report self-test: a blank page passed" >&2; exit 1
  fi
  rm -rf "$tmp"
  echo "check-report self-test: passed (a clean page passes; console errors and a blank page are caught)"
  exit 0
fi

run_dir="${1:?usage: check-report.sh RUN_DIR [SCREENSHOT.png]}"
png="${2:-$run_dir/report.png}"
check "$run_dir/report.html" "$png"
echo "check-report: $run_dir/report.html renders without console errors; screenshot $png"
