"""The concurrency contract: calls release the GIL, and different objects used from two Python
threads at once give exactly the results they give one after another."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ruvector_attention as ra
from threads import assert_releases_the_gil


def optimizer_run(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(300_000).astype(np.float32)  # large: the GIL is released
    opt = ra.AdamW(lr=0.01, weight_decay=0.1)
    for _ in range(40):
        opt.step(w, rng.standard_normal(w.shape).astype(np.float32))
    return w


def loss_run(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    a, p = rng.standard_normal((2, 512, 64)).astype(np.float32)
    neg = rng.standard_normal((512, 16, 64)).astype(np.float32)
    out = []
    for _ in range(8):
        _, g = ra.InfoNCELoss(0.1).batch_with_gradients(a, p)
        _, h = ra.InfoNCELoss(0.2).batch_with_gradients(a, p, neg)
        _, m = ra.LocalContrastiveLoss(0.5).batch_with_gradients(a, p, neg)
        out += [g.anchors.copy(), h.negatives.copy(), m.anchors.copy()]
    return out


def miner_run(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((256, 32)).astype(np.float32)
    c = rng.standard_normal((20_000, 32)).astype(np.float32)
    miners = [
        ra.HardNegativeMiner.hardest(),
        ra.HardNegativeMiner.distance_weighted(0.3, seed=seed),
        ra.HardNegativeMiner.semi_hard(0.5, seed=seed),
        ra.HardNegativeMiner.random(seed=seed),
    ]
    return [m.mine_batch(a, a * 0.9, c, 8) for m in miners for _ in range(3)]


def test_two_threads_give_exactly_the_sequential_results():
    jobs = [
        (optimizer_run, 1),
        (loss_run, 2),
        (miner_run, 3),
        (optimizer_run, 4),
        (miner_run, 5),
        (loss_run, 6),
    ]
    sequential = [job(seed) for job, seed in jobs]
    concurrent: list[object] = [None] * len(jobs)

    def run(indices: list[int]) -> None:
        for i in indices:
            job, seed = jobs[i]
            concurrent[i] = job(seed)

    threads = [
        threading.Thread(target=run, args=([0, 1, 2],)),
        threading.Thread(target=run, args=([3, 4, 5],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for expected, got in zip(sequential, concurrent):
        if isinstance(expected, np.ndarray):
            np.testing.assert_array_equal(got, expected)
        else:
            assert isinstance(got, list) and len(got) == len(expected)
            for e, g in zip(expected, got):
                np.testing.assert_array_equal(g, e)


@pytest.mark.timing
def test_large_calls_release_the_gil():
    # While one thread is inside a long mining call, another thread runs Python code.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 64)).astype(np.float32)
    c = rng.standard_normal((300_000, 64)).astype(np.float32)
    assert_releases_the_gil(lambda: ra.HardNegativeMiner.hardest().mine_batch(a, None, c, 10))
