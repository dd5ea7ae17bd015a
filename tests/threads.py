"""Running the same computation with different thread counts (results must not change)."""

from __future__ import annotations

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
