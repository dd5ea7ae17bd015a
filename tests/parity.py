"""Runs the original Rust crate `ruvector-attention` (through rust/parity) on generated cases.

The binary is built with cargo on first use (incremental, so quick once built). Without cargo
the parity tests are skipped on a developer machine, and fail under CI where the run selects
them (`-m parity`); the release job, whose runners may lack cargo, deselects them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frameworks import strict

ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def parity_binary() -> Path:
    explicit = os.environ.get("RUVECTOR_PARITY_BIN")
    if explicit:
        return Path(explicit)
    cargo = shutil.which("cargo")
    if cargo is None:
        if strict("parity"):
            pytest.fail("parity tests need cargo to build rust/parity, and CI must run them")
        pytest.skip("cargo is not installed: cannot build the crate for parity tests")
    subprocess.run(
        [cargo, "build", "--release", "--quiet", "-p", "ruvector-parity"],
        cwd=ROOT,
        check=True,
    )
    # Where cargo put it: CARGO_TARGET_DIR when set (as .ci/run sets it), else the workspace's.
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "release" / "ruvector-parity"


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        # Nested lists keep the shape (negatives are rows); float32 -> float64 is exact.
        return value.astype(np.float64).tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def run_crate(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run every case through the crate; float32 arrays go in and come back exactly."""
    payload = json.dumps({"cases": _plain(cases)})
    done = subprocess.run(
        [str(parity_binary())],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)["results"]
    assert len(results) == len(cases)
    return results


def observe_curriculum(s):
    """What a curriculum scheduler shows, as the crate's parity binary reports it."""
    stage = s.current_stage()
    return {
        "stage": stage.name if stage else None,
        "difficulty": s.difficulty(),
        "temperature": s.temperature(),
        "negative_count": s.negative_count(),
        "progress": s.progress(),
        "is_complete": s.is_complete(),
    }
