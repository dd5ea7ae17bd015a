"""The one dtype and layout policy for array arguments.

Read-only inputs: real floats only. float32 C-contiguous aligned arrays pass through untouched
(zero copy); float64, other real float dtypes, strided and unaligned arrays are converted once
(values beyond float32's range become +-inf). int, bool,
complex, object and string data raise ``TypeError``, because silently turning labels or indices
into embeddings hides bugs.

Read-only inputs may also be any CPU array of another library that speaks DLPack or the array API
standard (PyTorch and JAX CPU tensors, array-API arrays): they are read through
``numpy.from_dlpack``, without a copy where the layout allows. An array on another device (a GPU,
PyTorch's ``meta``) is refused with a message naming the device.

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

from .errors import ArgumentError, ShapeError

__all__ = [
    "ArrayList",
    "FloatArray",
    "as_array_list",
    "as_float32",
    "check_inplace_list",
    "float_matrix",
    "from_interchange",
    "is_scipy_sparse",
]

FloatArray = npt.NDArray[np.float32]
ArrayList = Union[npt.NDArray[Any], Sequence[npt.NDArray[Any]]]

_FLOAT32 = np.dtype(np.float32)
#: DLPack's device type of host (CPU) memory.
_DLPACK_CPU = 1


def from_interchange(value: object, name: str) -> Any:
    """``value`` itself, or, for an object of another array library (one with ``__dlpack__``,
    such as a PyTorch or JAX CPU tensor), a NumPy view of its memory (no copy).

    Raises:
        ArgumentError: the array lives on another device than the CPU.
        TypeError: it cannot be exported (a PyTorch tensor that requires grad, bfloat16).
    """
    if isinstance(value, np.ndarray) or not hasattr(value, "__dlpack__"):
        return value
    device = _device_other_than_cpu(value)
    if device is not None:
        raise ArgumentError(
            f"{name} is on device {device}; ruvector_attention computes on the CPU: copy it there "
            "first (PyTorch: .cpu(), JAX: jax.device_put(x, jax.devices('cpu')[0]))"
        )
    try:
        return np.from_dlpack(value)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        raise TypeError(f"{name} cannot be read as a CPU array through DLPack: {exc}") from exc


def _device_other_than_cpu(value: Any) -> str | None:
    """The name of the device ``value`` lives on, or None for the CPU."""
    try:
        kind = int(value.__dlpack_device__()[0])
    except Exception:  # e.g. PyTorch's meta device has no DLPack device type
        kind = None
    if kind == _DLPACK_CPU:
        return None
    device = getattr(value, "device", None)
    return str(device) if device is not None else f"of DLPack type {kind}"


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
    value = from_interchange(value, name)
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
    """Accept one array or a list/tuple of arrays; return a list (items unchanged). One array may
    also be another library's (``__dlpack__``): gradients, which are only read, can be."""
    if isinstance(value, np.ndarray) or hasattr(value, "__dlpack__"):
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
