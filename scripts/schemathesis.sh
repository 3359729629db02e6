#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from the
# server's own /openapi.json (with a write key, so every route is reached)
# for a bounded time, and fails on any 5xx or any response that breaks the
# schema (status, content type, headers, body).
#
#   scripts/schemathesis.sh [SECONDS]      # default 120
#
# The seed is fixed (QUARRY_SCHEMATHESIS_SEED; `random` for a fresh one),
# so CI replays a sequence that is known to pass and a failure reproduces;
# explore with a random seed by hand.
#
# Needs a built `quarry` (target/debug) and the cached model; installs
# schemathesis into a venv outside the repository when missing
# (QUARRY_TEST_VENV, default ~/.cache/quarry/test-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
venv=${QUARRY_TEST_VENV:-$HOME/.cache/quarry/test-venv}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi
# Where cargo put it: `CARGO_TARGET_DIR` when set (an absolute path), else ./target.
quarry=${CARGO_TARGET_DIR:-target}/debug/quarry
work=$(mktemp -d)
key=schemathesis-write-key
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
"$quarry" sync --path corpus -c guide --data-dir "$work/data" >/dev/null
QUARRY_WRITE_KEYS=$key "$quarry" serve --addr 127.0.0.1:0 --data-dir "$work/data" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do
  url=$(grep -o 'on http://[0-9.:]*' "$work/log" | head -1 | cut -c4-) && [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$work/log"; exit 1; }
seed=${QUARRY_SCHEMATHESIS_SEED:-176336640092772861119399791385072154033}
seed_args=()
[ "$seed" = random ] || seed_args=(--seed "$seed")
# From the scratch folder: schemathesis keeps a cache in its working directory.
hooks_dir=$(pwd)/scripts
cd "$work"
# Every 5xx fails the run except a request's own deadline passing (504
# deadline_exceeded): see scripts/schemathesis_hooks.py.
PYTHONPATH="$hooks_dir" SCHEMATHESIS_HOOKS=schemathesis_hooks "$venv/bin/schemathesis" run "$url/openapi.json" "${seed_args[@]}" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error_but_deadlines,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-time "$secs" --workers 1 --request-timeout 30 \
  --suppress-health-check all --warnings off
