"""Forks repeatedly while another thread is inside the kernels; each child makes one call.

Exit status 0 when every child finished, 1 (with the count) when any hung. Run by
tests/test_runtime.py in a subprocess, so a hung child can never hang the test session.
Usage: python fork_beside_kernel.py TRIALS CHILD_TIMEOUT_SECONDS
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

import ruvector_attention as ra


def main() -> int:
    trials, child_timeout = int(sys.argv[1]), float(sys.argv[2])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 32), dtype=np.float32)
    p = rng.standard_normal((256, 32), dtype=np.float32)
    negatives = rng.standard_normal((256, 8, 32), dtype=np.float32)
    candidates = rng.standard_normal((4096, 32), dtype=np.float32)
    loss = ra.InfoNCELoss(temperature=0.1)
    miner = ra.HardNegativeMiner.hardest(seed=0)
    stop = threading.Event()

    def compute() -> None:
        # Small and large calls alike: every lock of the kernels is taken over and over.
        while not stop.is_set():
            loss.batch_with_gradients(a, p, None)
            loss.batch_with_gradients(a, p, negatives)
            miner.mine_batch(a, None, candidates, 4)
            ra.get_num_threads()
            ra.cached_memory()

    worker = threading.Thread(target=compute, daemon=True)
    worker.start()
    time.sleep(0.05)
    hung = 0
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
    for _ in range(trials):
        pid = os.fork()
        if pid == 0:
            try:
                loss.batch_with_gradients(a, p, None)
                miner.mine_batch(a, None, candidates, 4)
                ra.release_cached_memory()
            finally:
                os._exit(0)
        deadline = time.monotonic() + child_timeout
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.002)
    stop.set()
    worker.join()
    print(f"{hung} of {trials} children hung")
    return 1 if hung else 0


if __name__ == "__main__":
    sys.exit(main())
