"""Timing helpers shared by the benchmark scripts (run as ``python benches/<script>.py``)."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "cpu_name",
    "interleaved",
    "measure_in_fresh_process",
    "median_seconds",
    "sgemm_only",
]

#: Defines `status(key)` for the measuring scripts: a line of /proc/self/status in bytes.
#: VmHWM is this address space's peak; ru_maxrss would also count the parent before exec.
_STATUS = """
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
"""


def measure_in_fresh_process(script: str, *args: object) -> dict[str, Any]:
    """Runs `script` (which may call `status("VmRSS:")` / `status("VmHWM:")` and prints one
    JSON object) in a new interpreter, so that its peak memory is its own."""
    done = subprocess.run(
        [sys.executable, "-c", _STATUS + script, *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def median_seconds(fn: Callable[[], Any], *, repeats: int, inner: int = 1) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    inner: int = 1,
    min_round: float = 0.0,
) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating rounds so that drift in
    the machine's speed (shared, noisy hosts) hits every contender alike.

    Each round calls a function ``inner`` times, or more until the round lasts ``min_round``
    seconds: a training loop calls a fast kernel back to back, so its first call after the pause
    below (cold caches, sleeping threads) should not count as a whole round.
    """
    calls: dict[str, int] = {}
    for name, fn in fns.items():
        fn()  # warm-up
        once = []
        for _ in range(3 if min_round else 0):
            start = time.perf_counter()
            fn()
            once.append(time.perf_counter() - start)
        steady = max(statistics.median(once), 1e-9) if once else 0.0
        calls[name] = max(inner, int(min_round / steady) + 1) if min_round else inner
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            # PyTorch's OpenMP workers and OpenBLAS's threads (NumPy, faiss) spin for a while
            # after each call (OpenBLAS: 2^28 cycles, about 0.1 s here); on a 2-core machine a
            # spinning worker would steal a core from whichever contender runs next. A pause
            # longer than that lets them go to sleep so each contender starts on a quiet machine.
            time.sleep(0.2)
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(ts) for name, ts in samples.items()}


def sgemm_only(queries: np.ndarray, corpus: np.ndarray, chunk: int = 65_536) -> None:
    """The floor of any exact search: every query-passage dot product by NumPy's BLAS SGEMM,
    in chunks into one reused buffer, with no normalisation and no selection at all."""
    out = np.empty((queries.shape[0], chunk), dtype=np.float32)
    for start in range(0, corpus.shape[0], chunk):
        block = corpus[start : start + chunk]
        np.matmul(queries, block.T, out=out[:, : block.shape[0]])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
