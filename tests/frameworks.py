"""Optional dependencies of test groups (torch, jax, dask, parity's cargo): required where the
run selects the group under CI, skipped cleanly elsewhere.

CI runs each group in its own virtual environment with its extra installed and selects it by
marker (`-m torch`, ...). There a missing dependency is an error, never a silent skip. A run that
deselects a group (the release job's `-m "not torch and ..."`) still imports its modules to
collect them: they skip instead of failing at import.
"""

import importlib
import os
import re

import pytest

#: The running session's config, set by conftest.py (the `-m` expression is read from it).
CONFIG = None


def selected(marker):
    """Whether this run's `-m` expression selects tests carrying ``marker`` (and no other)."""
    expression = CONFIG.getoption("markexpr", "") if CONFIG is not None else ""
    if not expression.strip():
        return True
    tokens = re.findall(r"[A-Za-z_]\w*|\(|\)", expression)
    words = {"and", "or", "not"}
    python = " ".join(t if t in words or t in "()" else str(t == marker) for t in tokens)
    return bool(eval(python, {"__builtins__": {}}))  # only True/False, and/or/not, parentheses


def strict(marker):
    """Whether a missing dependency of ``marker``'s group must fail this run."""
    return bool(os.environ.get("CI")) and selected(marker)


def require(module_name, marker):
    """``import module_name``, or skip the module where that is allowed (see ``strict``)."""
    if strict(marker):
        return importlib.import_module(module_name)
    return pytest.importorskip(module_name)
