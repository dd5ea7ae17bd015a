"""Reading the commands' ``.npy`` inputs: one rule, one set of messages, for every command."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["InputError", "load_npy"]


class InputError(ValueError):
    """An input file of a command cannot be used (the message says which and why)."""


def load_npy(path: str, what: str, *, mmap: bool = False) -> npt.NDArray[Any]:
    """The one array in ``path`` (memory-mapped when ``mmap``); never unpickles anything."""
    if not os.path.exists(path):
        raise InputError(f"{what} file not found: {path}")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"cannot read {what} from {path} as a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{what} file {path} holds several arrays; save one array with np.save")
    return arr
