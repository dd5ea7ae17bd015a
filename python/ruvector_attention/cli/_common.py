"""What every command shares: reading its ``.npy`` inputs, and the one-line error it ends with
(exit 2), so the rule and its messages are written once."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["InputError", "check_output_file", "describe", "fail", "load_npy"]


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


def check_output_file(path: str, flag: str) -> None:
    """Refuses, before any work, an output file that could not be written at the end: a
    directory, or a folder that is missing, not a folder, or not writable."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise InputError(f"{flag} {path} is a directory; name the file to write")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: the folder {folder} is not writable")


def fail(command: str, message: str) -> int:
    """Prints ``ruvector-attention COMMAND: error: MESSAGE`` on stderr; returns exit status 2."""
    print(f"ruvector-attention {command}: error: {message}", file=sys.stderr)
    return 2


def describe(exc: BaseException) -> str:
    """An exception as one line: ``file: reason`` for OS errors, its message otherwise."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc)
