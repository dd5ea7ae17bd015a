"""What every command shares: reading its ``.npy`` inputs, and the one-line error it ends with
(exit 2), so the rule and its messages are written once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "STOP_SIGNALS",
    "InputError",
    "Stopped",
    "check_output_file",
    "describe",
    "exit_code",
    "fail",
    "load_npy",
    "stop_signals_raise",
]

#: What a user or a job scheduler sends to stop a command: Ctrl-C, and SIGTERM (timeout, Slurm,
#: Kubernetes, systemd) and SIGHUP (a closed terminal) where the system has them.
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where Ctrl-C raises KeyboardInterrupt; the exit code says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal's number, as shells report it: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the command runs, SIGTERM and SIGHUP raise ``Stopped`` as Ctrl-C raises
    KeyboardInterrupt, so every stop takes the same path (a checkpoint, one line, its code)
    instead of killing the process where it stands. Main thread only (signals are delivered
    there); elsewhere nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_stopped(signum: int, frame: object) -> None:
        raise Stopped(signum)

    others = [s for s in STOP_SIGNALS if s != signal.SIGINT]
    previous = {s: signal.signal(s, raise_stopped) for s in others}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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


#: The selection flags that have a default (the others default to None, "not set").
SELECTION_DEFAULTS: dict[str, Any] = {"k": 10, "range_min": 0, "sampling": "top"}

#: Every selection flag, as the keyword of ``mine_hard_negatives`` / ``select_negatives``.
SELECTION_OPTIONS = (
    "k", "range_min", "range_max", "min_score", "max_score", "absolute_margin",
    "relative_margin", "max_positive_similarity", "sampling", "seed",
)  # fmt: skip


def add_selection_flags(add: Any, *, with_defaults: bool) -> None:
    """The flags that choose negatives from the ranked candidates, shared by ``mine`` and
    ``select`` (the names of ``mine_hard_negatives``' arguments). ``mine`` leaves them unset by
    default, to tell whether any was given (they do not apply when it writes a store)."""

    def default(name: str) -> Any:
        return SELECTION_DEFAULTS[name] if with_defaults else None

    add("--k", type=int, default=default("k"), help="negatives per query (default 10)")
    add(
        "--range-min",
        type=int,
        default=default("range_min"),
        help="first rank of the window (default 0)",
    )
    add("--range-max", type=int, help="end of the rank window (default: none)")
    add("--min-score", type=float, help="lowest similarity a negative may have")
    add("--max-score", type=float, help="highest similarity a negative may have")
    add("--absolute-margin", type=float, help="s <= positive_score - margin")
    add("--relative-margin", type=float, help="s <= positive_score * (1 - margin), in [0, 1)")
    add(
        "--max-positive-similarity",
        type=float,
        help="drop candidates whose cosine to any positive is at least this",
    )
    add("--sampling", choices=["top", "random"], default=default("sampling"), help="default top")
    add("--seed", type=int, help="seed of --sampling random")


def selection_options(args: Any) -> dict[str, Any]:
    """The selection flags as keyword arguments, unset ones with a default given it."""
    options = {name: getattr(args, name) for name in SELECTION_OPTIONS}
    for name, value in SELECTION_DEFAULTS.items():
        if options[name] is None:
            options[name] = value
    return options
