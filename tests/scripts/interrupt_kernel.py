"""Runs a long kernel call and reports how soon Ctrl-C (SIGINT) ended it.

Prints "started" just before the call; the test sends SIGINT and reads the line that follows,
"interrupted" or "finished", timing it with its own clock (a handler here would run only once an
uninterruptible call had returned, and so could not tell).
Then a second, small call checks that the miner still works. Usage: interrupt_kernel.py KIND
THREADS with KIND "mine", "info_nce" (pooled, in-batch), "per_anchor" (InfoNCE with negatives per
anchor) or "margin" (the local contrastive loss against a shared pool) and THREADS the kernels'
thread count (with one thread the call runs on a helper thread, with more as a job on the
kernels' pool).
"""

from __future__ import annotations

import sys

import numpy as np

import ruvector_attention as ra


def main() -> None:
    kind, threads = sys.argv[1], int(sys.argv[2])
    ra.set_num_threads(threads)
    rng = np.random.default_rng(0)
    block = rng.standard_normal((1000, 128), dtype=np.float32)
    miner = ra.HardNegativeMiner.hardest()
    loss = ra.InfoNCELoss(0.1)
    if kind == "mine":
        anchors = block[:512].repeat(4, axis=0)
        candidates = np.tile(block, (2000, 1))  # 2,000,000 x 128: several seconds
        call = lambda: miner.mine_batch(anchors, None, candidates, 10)  # noqa: E731
    elif kind == "info_nce":
        big = np.tile(block, (24, 1))  # in-batch B = 24,000: several seconds with gradients
        call = lambda: loss.batch_with_gradients(big, big)  # noqa: E731
    elif kind == "per_anchor":
        # 12,000 anchors x 256 negatives x 128: 1.6 GB of negatives (and as much of gradients),
        # 1.8 s with gradients on one core of a 2-vCPU EPYC, 1 s on two.
        anchors = np.tile(block, (12, 1))
        negatives = rng.standard_normal((12_000, 256, 128), dtype=np.float32)
        call = lambda: loss.batch_with_gradients(anchors, anchors, negatives)  # noqa: E731
    elif kind == "margin":
        anchors = np.tile(block, (24, 1))  # 24,000 anchors x a shared pool of 4,000: seconds
        margin = ra.LocalContrastiveLoss(1.0)
        call = lambda: margin.batch_with_gradients(anchors, anchors, block[:1000].repeat(4, 0))  # noqa: E731
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    print("started", flush=True)
    try:
        call()
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    picks = miner.mine_batch(block[:4], None, block, 3)
    assert picks.shape == (4, 3) and (picks >= 0).all()
    print("ok", flush=True)


if __name__ == "__main__":
    main()
