"""The calls issue 24's fixes touched, timed in one process. Run it under two builds (the commit
before and after, each installed in its own venv) in alternating fresh processes and compare the
medians it prints; the CPU model is printed with them.

    python benches/bench_robustness_ab.py          # one JSON line: median seconds per call
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
from _common import cpu_name

import ruvector_attention as ra


def median_seconds(call: Callable[[], object], repeats: int = 5) -> float:
    call()  # warm: caches, thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    f32 = np.float32
    a = rng.standard_normal((1024, 256)).astype(f32)
    p = (a + 0.3 * rng.standard_normal(a.shape)).astype(f32)
    c = rng.standard_normal((100_000, 256)).astype(f32)
    q = rng.standard_normal((2000, 256)).astype(f32)
    corpus = rng.standard_normal((20_000, 256)).astype(f32)
    x = rng.standard_normal((4096, 64)).astype(f32)
    edges = rng.integers(0, 4096, (40_000, 2))
    neg = rng.standard_normal((1024, 16, 256)).astype(f32)
    semi = ra.HardNegativeMiner.semi_hard(0.5)
    soft = ra.HardNegativeMiner.distance_weighted(0.1, seed=0)
    margin_loss = ra.LocalContrastiveLoss(0.5)
    laplacian = ra.SpectralRegularization(0.1)
    mine = ra.mine_hard_negatives
    calls: dict[str, tuple[Callable[[], object], int]] = {
        "semi-hard 1024 x 100k, D=256": (lambda: semi.mine_batch(a, p, c, 10), 5),
        "softmax sampling 1024 x 100k, D=256": (lambda: soft.mine_batch(a, None, c, 10), 5),
        "corpus top, Q=2000 N=20k": (lambda: mine(q, corpus, k=10), 3),
        "corpus top, range_min=1000": (lambda: mine(q, corpus, k=10, range_min=1000), 2),
        "corpus capped": (lambda: mine(q, corpus, k=10, max_score=0.2, relative_margin=0.05), 3),
        "margin loss B=1024 N=16 D=256": (lambda: margin_loss.batch_with_gradients(a, p, neg), 5),
        "Laplacian 4096 x 64, 40k edges": (
            lambda: laplacian.laplacian_with_gradients(x, edges),
            5,
        ),
    }
    result = {name: median_seconds(call, n) for name, (call, n) in calls.items()}
    print(json.dumps({"cpu": cpu_name(), **result}))


if __name__ == "__main__":
    main()
