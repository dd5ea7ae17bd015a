"""examples/torch_digits.py, run as a user runs it: ruvector's loss, miner and optimizer reach the
held-out recall@1 of the same model trained with a pure-PyTorch loss and torch.optim.AdamW."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from frameworks import require

pytestmark = [pytest.mark.torch, pytest.mark.slow]
require("torch", "torch")
require("sklearn", "torch")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch_digits.py"


@pytest.mark.parametrize("seed", [0, 1])
def test_example_matches_pure_pytorch_within_one_point(seed):
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "150", "--seed", str(seed), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    results = json.loads(out.stdout)
    ours = results["ruvector"]["test_recall_at_1"]
    theirs = results["torch"]["test_recall_at_1"]
    assert ours > 0.9 and theirs > 0.9, results  # both actually learned (chance is 0.1)
    assert abs(ours - theirs) <= 0.01, results
