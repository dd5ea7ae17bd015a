#!/usr/bin/env bash
# Installs the one wheel in dist/ with the extras in $EXTRAS (default "test,dask") into a fresh
# virtual environment and runs the tests and the package's doctests against it, from outside the
# source tree (so the installed wheel is what is tested). The release workflow runs it on every
# platform (GitHub sets CI=true); .ci/run runs it too, as a dry run, with EXTRAS=test and with
# EXTRAS=test,dask.
#
# Test groups are chosen by marker (pyproject.toml), never by file lists: the PyTorch, JAX and Ray
# groups need extras this job does not install, and the parity group needs cargo, which some
# runners (Alpine) lack; .ci/run runs those. The dask group runs where its extra is installed.
# MARKERS replaces the selection (.ci/run's dask dry run selects the dask group alone).
set -euo pipefail
EXTRAS=${EXTRAS:-test,dask}
SELECT="not torch and not jax and not ray and not datasets and not parity"
case ",$EXTRAS," in *,dask,*) ;; *) SELECT="$SELECT and not dask" ;; esac
SELECT=${MARKERS:-$SELECT}
python -m venv venv
if [ -x venv/bin/python ]; then PY=$PWD/venv/bin/python; else PY=$PWD/venv/Scripts/python.exe; fi
"$PY" -m pip install --quiet --upgrade pip
WHEEL=$(ls dist/*.whl)
"$PY" -m pip install --quiet "$WHEEL[$EXTRAS]"
PACKAGE=$("$PY" -c 'import os, ruvector_attention as r; print(os.path.dirname(r.__file__))')
echo "testing $WHEEL [$EXTRAS], CI=${CI:-}, markers: $SELECT"
mkdir -p outside
cd outside
# The doctests of the PyTorch and JAX front ends import their frameworks, absent here: pytest's
# own switch skips modules that cannot be imported for doctests (the tests import every other
# module, so an import error elsewhere still fails the run).
"$PY" -m pytest -p no:cacheprovider -q -m "$SELECT" ../tests "$PACKAGE" \
  --doctest-ignore-import-errors --durations=15
