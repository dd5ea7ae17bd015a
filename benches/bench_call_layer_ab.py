"""The calls issue 29's call layer touched (which calls release the GIL or watch for Ctrl-C, the
optimizers' prepared plan, the hyper-parameter checks), timed in one process. Run it under two
builds (each installed in its own venv) in alternating fresh processes and compare the medians:

    python benches/bench_call_layer_ab.py          # one JSON line: median seconds per call

Small calls are timed in loops of many calls (their cost is the overhead the change could add);
large ones one call at a time. Only the package's PyTorch-style names are used, which both builds
have.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
from _common import cpu_name

import ruvector_attention as ra


def median_per_call(call: Callable[[], object], loop: int, rounds: int = 7) -> float:
    """Median over ``rounds`` of the mean time per call in a loop of ``loop`` calls."""
    for _ in range(min(loop, 50)):
        call()  # warm: caches, thread pool, the buffer cache
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loop):
            call()
        times.append((time.perf_counter() - start) / loop)
    return float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    f32 = np.float32

    def adamw_step(size: int, set_lr: bool = False) -> Callable[[], object]:
        w, g = rng.standard_normal(size).astype(f32), rng.standard_normal(size).astype(f32)
        opt = ra.AdamW(lr=1e-3)
        opt.step(w, g)  # the state exists: the single-array path from here on

        def step() -> None:
            if set_lr:
                opt.lr = 1e-3  # what a scheduler does before every step
            opt.step(w, g)

        return step

    sgd_w = rng.standard_normal(1000).astype(f32)
    sgd = ra.SGD(lr=0.01, momentum=0.9)
    clip_g = rng.standard_normal(1000).astype(f32)
    small = [rng.standard_normal(s).astype(f32) for s in ((64, 64), (64, 64), (64, 16, 64))]
    a = rng.standard_normal((1024, 256)).astype(f32)
    p = (a + 0.3 * rng.standard_normal(a.shape)).astype(f32)
    neg64 = rng.standard_normal((1024, 64, 256)).astype(f32)
    neg16 = neg64[:, :16].copy()
    info_nce = ra.InfoNCELoss(0.1)
    margin = ra.LocalContrastiveLoss(0.5)
    miner = ra.HardNegativeMiner.hardest()
    pool = rng.standard_normal((1000, 64)).astype(f32)
    calls: dict[str, tuple[Callable[[], object], int]] = {
        "AdamW step, 1,000 params": (adamw_step(1000), 20_000),
        "AdamW step, 1,000 params, lr set first": (adamw_step(1000, set_lr=True), 20_000),
        "AdamW step, 4,096 params": (adamw_step(4096), 10_000),
        "AdamW step, 20,000 params": (adamw_step(20_000), 2000),
        "AdamW step, 1M params": (adamw_step(1_000_000), 50),
        "SGD momentum step, 1,000 params": (lambda: sgd.step(sgd_w, clip_g), 20_000),
        "clip_grad_norm, 1,000 params": (lambda: ra.clip_grad_norm(clip_g, 1e9), 20_000),
        "InfoNCE per anchor B=64 N=16 D=64 + grads": (
            lambda: info_nce.batch_with_gradients(*small),
            2000,
        ),
        "InfoNCE per anchor B=1024 N=64 D=256 + grads": (
            lambda: info_nce.batch_with_gradients(a, p, neg64),
            10,
        ),
        "margin loss B=64 N=16 D=64 + grads": (lambda: margin.batch_with_gradients(*small), 2000),
        "margin loss B=1024 N=16 D=256 + grads": (
            lambda: margin.batch_with_gradients(a, p, neg16),
            20,
        ),
        "InfoNCE in-batch B=1024 D=256 + grads": (lambda: info_nce.batch_with_gradients(a, p), 10),
        "HARDEST top-10, 64 x 1000, D=64": (
            lambda: miner.mine_batch(small[0], None, pool, 10),
            500,
        ),
    }
    result = {name: median_per_call(call, loop) for name, (call, loop) in calls.items()}
    print(json.dumps({"cpu": cpu_name(), **result}))


if __name__ == "__main__":
    main()
