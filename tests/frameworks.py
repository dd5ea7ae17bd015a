"""Optional frameworks (torch, jax) in the tests: required under CI, skipped cleanly elsewhere.

CI runs these tests in their own virtual environment with the extra installed; there a missing
framework is an error, never a silent skip.
"""

import importlib
import os

import pytest


def require(module_name):
    if os.environ.get("CI"):
        return importlib.import_module(module_name)
    return pytest.importorskip(module_name)
