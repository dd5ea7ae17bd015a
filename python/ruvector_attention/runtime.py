"""Thread count and instruction-set path of the Rust kernels."""

from __future__ import annotations

from . import _native
from . import _validate as check

__all__ = ["get_num_threads", "set_num_threads", "simd_path"]


def set_num_threads(n: int) -> None:
    """Set how many threads the kernels use (default: every CPU this process may use).

    Small calls always run on the calling thread; only large ones are split.

    Example:
        >>> import ruvector_attention as ra
        >>> before = ra.get_num_threads()
        >>> ra.set_num_threads(1)
        >>> ra.get_num_threads()
        1
        >>> ra.set_num_threads(before)
    """
    _native.set_num_threads(check.positive_int("n", n))


def get_num_threads() -> int:
    """The number of threads the kernels use.

    Example:
        >>> import ruvector_attention as ra
        >>> ra.get_num_threads() >= 1
        True
    """
    return int(_native.get_num_threads())


def simd_path() -> str:
    """The instruction set the kernels run with: ``"avx512"``, ``"avx2+fma"`` or ``"baseline"``.

    Chosen on first use from what the CPU supports, so one wheel is fast on every x86-64
    machine; every path gives bit-identical results.

    Example:
        >>> import ruvector_attention as ra
        >>> ra.simd_path() in {"avx512", "avx2+fma", "baseline"}
        True
    """
    return str(_native.simd_path())
