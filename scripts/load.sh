#!/usr/bin/env bash
# Load figures for `quarry serve` with wrk (Debian's `wrk`): p50, p99,
# req/s and responses by status for bm25, dense and hybrid searches at
# concurrency 1, 8 and 64, with the result cache off and on, idle and while
# the server itself syncs the same corpus into another collection (its own
# embedding worker, so queries meet bulk work in its queue).
#
#   scripts/load.sh [DATASET_DIR] [SECONDS]   # default ../shared/datasets/scifact-train, 5
#
# Needs a built quarry (target/release if present, else target/debug) and
# the cached model. Prints one line per run; nothing is written to the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=$(cd "${1:-../shared/datasets/scifact-train}" && pwd)
secs=${2:-5}
quarry=${CARGO_TARGET_DIR:-target}/release/quarry
[ -x "$quarry" ] || quarry=${CARGO_TARGET_DIR:-target}/debug/quarry
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
python3 -c 'import json,sys
for line in open(sys.argv[1]):
    print(json.dumps(json.loads(line)["text"]))' "$dataset/queries.jsonl" > "$work/queries"
# QUARRY_LOAD_INDEX: a folder to keep the indexed corpus in between runs.
if [ -n "${QUARRY_LOAD_INDEX:-}" ] && [ -d "$QUARRY_LOAD_INDEX" ]; then
  cp -r "$QUARRY_LOAD_INDEX" "$work/base"
else
  echo "indexing $dataset ..." >&2
  "$quarry" sync --beir "$dataset/corpus.jsonl" -c scifact --data-dir "$work/base" >/dev/null 2>&1
  [ -n "${QUARRY_LOAD_INDEX:-}" ] && cp -r "$work/base" "$QUARRY_LOAD_INDEX"
fi
url=http://127.0.0.1:7790
next=0
# Keeps one sync running: starts the next source when none is.
keep_syncing() {
  if ! curl -fs "$url/v1/sources" | grep -q '"running":true'; then
    next=$((next + 1))
    curl -fs -X POST "$url/v1/sources/again$next/sync" >/dev/null
    echo "(started the sync of again$next)" >&2
    sleep 1
  fi
}
for cache in 0 67108864; do
  rm -rf "$work/data" && cp -r "$work/base" "$work/data"
  {
    printf '[server]\ncache_bytes = %s\nmax_concurrency = 64\n' "$cache"
    # Every dense query runs the model: no query-embedding cache.
    printf '[retrieval]\nquery_cache = 0\n'
    # More settings to compare, e.g. QUARRY_LOAD_CONFIG=$'[embed]\nbusy_bulk_batch_tokens = 1024'
    printf '%s\n' "${QUARRY_LOAD_CONFIG:-}"
    for i in $(seq 20); do
      printf '[[sources]]\nname = "again%s"\ntype = "beir"\npath = "%s/corpus.jsonl"\n' "$i" "$dataset"
    done
  } > "$work/quarry.toml"
  "$quarry" serve --addr 127.0.0.1:7790 --config "$work/quarry.toml" --data-dir "$work/data" 2>"$work/log" &
  pid=$!
  for _ in $(seq 300); do curl -fs "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  label=$([ "$cache" = 0 ] && echo off || echo on)
  for phase in idle during-sync; do
    for mode in bm25 dense hybrid; do
      for c in 1 8 64; do
        [ "$phase" = during-sync ] && keep_syncing
        line=$(QUARRY_QUERIES="$work/queries" QUARRY_MODE=$mode wrk -t "$([ "$c" = 1 ] && echo 1 || echo 2)" \
          -c "$c" -d "${secs}s" --latency -s scripts/load/search.lua "$url" | tail -1)
        echo "$phase cache=$label mode=$mode c=$c $line"
      done
    done
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  next=0
done
