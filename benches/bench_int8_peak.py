"""What an int8 prefilter could gain on this CPU (issue 26), measured, one core:

- the instruction peaks: ``cargo run --release -p ruvector-gemm-bench --bin peaks`` (throughput
  loops of float32 FMA and of ``vpdpbusd``);
- what a tuned library reaches on the miner's product shape (1024 queries x 768 x 16,384 rows):
  ``torch._int_mm`` (int8 x int8 -> int32, oneDNN) against ``torch.mm`` in float32, and our float32
  GEMM (``HardNegativeMiner.mine_batch`` with k=1 is GEMM-bound at this shape).

Operations count a multiply and an add as two. Usage: python benches/bench_int8_peak.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
from _common import cpu_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_seconds(fn, repeats=7):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    print(f"CPU: {cpu_name()}")
    peaks = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "ruvector-gemm-bench", "--bin", "peaks"],
        cwd=os.path.join(ROOT, "rust"),
        capture_output=True,
        text=True,
    )
    print(peaks.stdout.strip() or peaks.stderr.strip())
    m, k, n = 1024, 768, 16_384
    ops = 2.0 * m * k * n
    try:
        import torch
    except ImportError:
        print("torch not installed: no library comparison")
        return
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    a8 = torch.from_numpy(rng.integers(-127, 128, (m, k), dtype=np.int8))
    b8 = torch.from_numpy(rng.integers(-127, 128, (k, n), dtype=np.int8))
    a32, b32 = a8.float(), b8.float()
    rows = {
        "torch._int_mm (int8 -> int32)": lambda: torch._int_mm(a8, b8),
        "torch.mm float32": lambda: torch.mm(a32, b32),
    }
    import ruvector_attention as ra

    ra.set_num_threads(1)
    miner = ra.HardNegativeMiner.hardest(seed=0)
    anchors = np.ascontiguousarray(a32.numpy())
    rows_c = np.ascontiguousarray(b32.numpy().T)
    rows["ruvector float32 GEMM + top-1 (mine_batch)"] = lambda: miner.mine_batch(
        anchors, None, rows_c, 1
    )
    for name, fn in rows.items():
        seconds = best_seconds(fn)
        print(f"{name:44s} {ops / seconds / 1e9:8.1f} G ops/s  ({seconds * 1000:.1f} ms)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
