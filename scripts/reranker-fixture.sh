#!/usr/bin/env bash
# Regenerate testdata/rerankers/ (two small random cross-encoders and
# sentence-transformers' scores for them) with scripts/reranker-fixture.py.
#
#   bash scripts/reranker-fixture.sh [--bench DIR]
#
# Runs in the golden fixture's venv (torch, transformers and
# sentence-transformers at pinned versions, outside the repository), which
# scripts/golden-fixture.sh creates when it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${QUARRY_GOLDEN_VENV:-$HOME/.cache/quarry/golden-venv}"
if ! "$venv/bin/python" -c 'import sentence_transformers, transformers, torch' 2>/dev/null; then
  bash "$here/golden-fixture.sh" --out "$(mktemp)"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/reranker-fixture.py" "$@"
