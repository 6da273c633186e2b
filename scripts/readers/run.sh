#!/usr/bin/env bash
# Runs the real Python readers (pyarrow, polars, HF datasets) over the demo's outputs. Needs pip to reach a package
# index; not part of CI (CI checks the same layout rules with DuckDB). Usage: scripts/readers/run.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${1:-bench/.cache/readers-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pyarrow polars datasets
fi
npm run demo >/dev/null
for ds in pickapic hpd; do node bin/bdpo.cjs tables "demo-out/$ds" >/dev/null; done
HF_HOME="$(mktemp -d)" "$venv/bin/python" scripts/readers/check_readers.py demo-out/pickapic demo-out/hpd \
  --export demo-out/exports/pickapic-majority
