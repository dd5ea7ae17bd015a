"""Thread count and instruction-set path of the Rust kernels."""

from __future__ import annotations

from typing import Optional

from . import _native
from . import _validate as check

#: The most threads set_num_threads accepts (owned by the kernels: ``parallel::MAX_THREADS``).
MAX_THREADS: int = _native.MAX_THREADS

__all__ = [
    "cached_memory",
    "get_num_threads",
    "release_cached_memory",
    "set_num_threads",
    "simd_path",
]


def set_num_threads(n: Optional[int]) -> None:
    """Set how many threads the kernels use; ``None`` (or ``0``) restores the default, every CPU
    this process may use (followed as the process's CPU affinity changes).

    Small calls always run on the calling thread; only large ones are split. threadpoolctl
    (>= 3.2, when installed) sees the pool too: ``threadpool_limits(1)`` limits it and
    ``threadpool_info()`` lists it (user API ``"ruvector_attention"``). In a Dask worker the
    default is the worker's thread count, its share of the machine, so that workers side by side
    do not each start a thread per core.

    Examples:
        >>> import ruvector_attention as ra
        >>> ra.set_num_threads(1)
        >>> ra.get_num_threads()
        1
        >>> ra.set_num_threads(None)  # back to every CPU this process may use
    """
    threads = 0 if n is None else check.integer("n", n, minimum=0, maximum=MAX_THREADS)
    _native.set_num_threads(threads)


def get_num_threads() -> int:
    """The number of threads the kernels use.

    Examples:
        >>> import ruvector_attention as ra
        >>> ra.get_num_threads() >= 1
        True
    """
    return int(_native.get_num_threads())


def simd_path() -> str:
    """The instruction set the kernels run with: ``"avx512"``, ``"avx2+fma"`` or ``"baseline"``.

    Chosen on first use from what the CPU supports, so one wheel is fast on every x86-64
    machine. Optimizers, per-anchor and margin losses and the Laplacian give bit-identical results
    on every path; the GEMM-based forms (shared-pool and in-batch InfoNCE) use fused multiply-add
    where the CPU has it and agree across paths to float32 round-off.

    Examples:
        >>> import ruvector_attention as ra
        >>> ra.simd_path() in {"avx512", "avx2+fma", "baseline"}
        True
    """
    return str(_native.simd_path())


def cached_memory() -> int:
    """Bytes of large buffers the kernels keep for reuse.

    Output arrays of the losses (and the kernels' scratch space) come from a cache of large
    buffers, and go back to it when freed, so that repeated calls reuse memory that is already
    mapped: touching fresh memory costs the OS a page fault and a page clear per 4 KiB, which
    can cost more than the computation. The cache holds at most 512 MiB.

    Examples:
        >>> import ruvector_attention as ra
        >>> ra.cached_memory() >= 0
        True
    """
    return int(_native.cached_memory())


def release_cached_memory() -> int:
    """Return the cached buffers (see :func:`cached_memory`) to the system; returns the bytes freed.

    Examples:
        >>> import ruvector_attention as ra
        >>> _ = ra.release_cached_memory()
        >>> ra.cached_memory()
        0
    """
    return int(_native.release_cached_memory())


def adopt_worker_share(threads: float) -> None:
    """In a worker of a cluster engine (Dask, Ray): the kernels' pool defaults to the worker's
    share of the machine (its thread count, or the CPUs Ray assigned the task), not every core,
    so that workers side by side do not each start a thread per core. A count the user set in
    the worker is kept."""
    if _native.requested_threads() == 0:
        _native.set_num_threads(max(1, min(int(threads), MAX_THREADS)))
