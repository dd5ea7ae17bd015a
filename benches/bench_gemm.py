"""The kernels' GEMM against NumPy's SGEMM and the `gemm` crate, one thread each, same shapes.

Runs ``cargo run --release -p ruvector-gemm-bench -- --json`` (ours and the gemm crate, best of
several runs each) and times NumPy's ``A @ B.T`` on the same shapes with its BLAS limited to one
thread (set before NumPy loads). Prints GFLOP/s and each contender's share of NumPy's throughput.

Run: ``python benches/bench_gemm.py`` from the repository root (needs cargo).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def numpy_seconds(m: int, n: int, k: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((n, k), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b.T, out=out)
    best, total, runs = float("inf"), 0.0, 0
    while runs < 3 or (total < 0.3 and runs < 50):
        start = time.perf_counter()
        np.matmul(a, b.T, out=out)
        elapsed = time.perf_counter() - start
        best, total, runs = min(best, elapsed), total + elapsed, runs + 1
    return best


def main() -> None:
    print(f"machine: {cpu_name()}; one thread per contender")
    done = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "ruvector-gemm-bench", "--", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    header = ("M", "N", "K", "NumPy GF/s", "ours", "gemm", "ours/NumPy")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (6, 6, 6, 11, 8, 8, 11))))
    for row in rows:
        m, n, k = row["m"], row["n"], row["k"]
        flops = 2.0 * m * n * k
        np_s = numpy_seconds(m, n, k)
        print(
            f"{m:>6} {n:>6} {k:>6} {flops / np_s / 1e9:>11.1f} {flops / row['ours'] / 1e9:>8.1f}"
            f" {flops / row['gemm_crate'] / 1e9:>8.1f} {np_s / row['ours']:>10.0%}"
        )


if __name__ == "__main__":
    main()
