"""Threads in tests: the same computation on different thread counts (results must not change),
and whether a call lets other Python threads run (releases the GIL)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import ruvector_attention as ra

T = TypeVar("T")


def with_thread_counts(fn: Callable[[], T], counts: Sequence[int] = (1, 2)) -> list[T]:
    """``fn()`` once per thread count, restoring the caller's setting afterwards."""
    before = ra.get_num_threads()
    results = []
    try:
        for count in counts:
            ra.set_num_threads(count)
            results.append(fn())
    finally:
        ra.set_num_threads(before)
    return results


def ticks_during(call: Callable[[], object]) -> tuple[int, float]:
    """How often another Python thread ran while ``call()`` was under way (ticks strictly between
    its start and its end, with a thread switch asked for every 0.1 ms), and its seconds."""
    ticks: list[float] = []
    running, stop = threading.Event(), threading.Event()

    def ticker() -> None:
        running.set()
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0002)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        running.wait()
        start = time.perf_counter()
        call()
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    return sum(start < t < end for t in ticks), end - start


def assert_releases_the_gil(call: Callable[[], object]) -> None:
    """``call()`` lets another thread run while it works; a control of about the same length
    that holds the GIL (``sum(range(n))``) lets it run at most at its edges, measured the same
    way in the same run, so the measure itself is shown to tell the two apart. Counting across
    several calls, or comparing tick rates, passed for GIL-holding calls too (the ticks came
    between the calls) or failed on a loaded machine."""
    ticks, seconds = ticks_during(call)
    n = 10_000_000
    while True:
        held, held_seconds = ticks_during(lambda n=n: sum(range(n)))
        if held_seconds >= seconds or n > 10**9:
            break
        n *= 2
    assert held <= 2, (held, held_seconds)
    assert ticks >= 10, (ticks, seconds)
