"""The one dtype and layout policy for array arguments.

Read-only inputs: real floats only. float32 C-contiguous aligned arrays pass through untouched
(zero copy); float64, other real float dtypes, strided and unaligned arrays are converted once
(values beyond float32's range become +-inf). int, bool,
complex, object and string data raise ``TypeError``, because silently turning labels or indices
into embeddings hides bugs.

In-place arguments (parameters, gradients to clip) are never converted: a converted copy would be
updated and thrown away. Their checks (float32, C-contiguous, writeable, no overlap) happen in the
extension, before anything is written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from .errors import ShapeError

__all__ = [
    "ArrayList",
    "FloatArray",
    "as_array_list",
    "as_float32",
    "check_inplace_list",
    "float_matrix",
    "is_scipy_sparse",
]

FloatArray = npt.NDArray[np.float32]
ArrayList = Union[npt.NDArray[Any], Sequence[npt.NDArray[Any]]]

_FLOAT32 = np.dtype(np.float32)


def as_float32(value: object, name: str) -> FloatArray:
    """Return ``value`` as a C-contiguous float32 array, without a copy when it already is one.

    Raises:
        TypeError: ``value`` is not real floating-point data.
    """
    if (
        type(value) is np.ndarray
        and value.dtype == _FLOAT32
        and value.flags.c_contiguous
        and value.flags.aligned
    ):
        return value
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real floats: {exc}") from exc
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must contain real floating-point numbers, got dtype {arr.dtype}")
    # Values beyond float32's range become +-inf, as NumPy's own cast makes them. asarray keeps
    # 0-d arrays 0-d (ascontiguousarray would make them (1,)).
    with np.errstate(over="ignore"):
        result = np.asarray(arr, dtype=np.float32, order="C")
    if not result.flags.aligned:  # a float32 view at an odd byte offset: the kernels need aligned
        result = result.copy()
    return result


def as_array_list(value: object, name: str) -> list[Any]:
    """Accept one array or a list/tuple of arrays; return a list (items unchanged)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ShapeError(f"{name} is an empty list; pass at least one array")
        return list(value)
    raise TypeError(
        f"{name} must be a numpy.ndarray or a list of numpy.ndarray, got {type(value).__name__}"
    )


def check_inplace_list(items: list[Any], name: str) -> None:
    """Reject anything that is not a numpy array before the extension sees it.

    The extension checks dtype, layout, writeability and overlap; this only gives non-arrays
    (Python lists, scalars) a message that says why they cannot be updated in place.
    """
    for i, item in enumerate(items):
        if not isinstance(item, np.ndarray):
            label = name if len(items) == 1 else f"{name}[{i}]"
            raise TypeError(
                f"{label} must be a float32 numpy.ndarray to be updated in place, "
                f"got {type(item).__name__}"
            )


def float_matrix(
    value: object, name: str, *, cols: int | None = None, min_rows: int = 1
) -> FloatArray:
    """``value`` as a float32 (N, D) matrix with N >= ``min_rows``, D >= 1 (and D == ``cols``).

    Raises:
        TypeError: not real floating-point data.
        ShapeError: another rank, an empty dimension, or the wrong number of columns.
    """
    arr = as_float32(value, name)
    if arr.ndim != 2 or arr.shape[0] < min_rows or arr.shape[1] == 0:
        what = "a non-empty 2-D array (N, D)" if min_rows else "2-D (N, D) with D >= 1"
        raise ShapeError(f"{name} must be {what}, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise ShapeError(f"{name} must be (N, {cols}), got shape {arr.shape}")
    return arr


def is_scipy_sparse(value: object) -> bool:
    """Whether ``value`` is a scipy.sparse matrix or array. scipy is optional: if it was never
    imported, ``value`` cannot be one of its objects."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and bool(sparse.issparse(value))
