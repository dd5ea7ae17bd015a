#!/usr/bin/env bash
# Installs the one wheel in dist/ into a fresh virtual environment and runs the test suite
# against it (from outside the source tree, so the installed wheel is what is tested). Used by
# .github/workflows/release.yml on every platform; the parity tests need the original crate
# built with cargo, so they are left to CI (.ci/run).
set -euo pipefail
python -m venv venv
if [ -x venv/bin/python ]; then PY=$PWD/venv/bin/python; else PY=$PWD/venv/Scripts/python.exe; fi
"$PY" -m pip install --upgrade pip
WHEEL=$(ls dist/*.whl)
"$PY" -m pip install "$WHEEL[test,dask]"
mkdir -p outside
cd outside
"$PY" -m pytest -p no:cacheprovider ../tests -q \
  --ignore=../tests/test_parity_losses.py \
  --ignore=../tests/test_parity_mining.py \
  --ignore=../tests/test_parity_optim.py
