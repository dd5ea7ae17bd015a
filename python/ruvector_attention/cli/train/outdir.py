"""The output directory of a run: created, locked for the run, and never silently overwritten.

Two runs on one ``--out`` would overwrite each other's checkpoint, so a run holds an exclusive lock
(``flock`` on ``.ruvector-train.lock``, released by the OS even if the process is killed) and a
second run is refused at once. A run without ``--resume`` refuses to replace an earlier run's
checkpoint unless ``--overwrite`` says so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .trainer import CHECKPOINT

__all__ = ["LOCK_FILE", "OutputDirError", "check_checkpoint_policy", "locked_output_dir"]

LOCK_FILE = ".ruvector-train.lock"


class OutputDirError(Exception):
    """The output directory cannot be used (the message says why and what to do)."""


@contextlib.contextmanager
def locked_output_dir(path: str) -> Iterator[None]:
    """Create ``path`` if needed and hold its lock for the run."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirError(f"--out {path} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        lock = open(os.path.join(path, LOCK_FILE), "a+b")
    except OSError as exc:
        raise OutputDirError(f"--out {path}: {exc.strerror or exc}") from None
    try:
        _lock_exclusively(lock, path)
        yield
    finally:
        lock.close()  # closing releases the lock


def check_checkpoint_policy(run_dir: str, *, resume: bool, overwrite: bool) -> None:
    """--resume needs a checkpoint; without --resume or --overwrite, an existing one is kept."""
    checkpoint = os.path.join(run_dir, CHECKPOINT)
    if resume and not os.path.exists(checkpoint):
        raise OutputDirError(f"--resume: no {CHECKPOINT} in {run_dir}")
    if not resume and not overwrite and os.path.exists(checkpoint):
        raise OutputDirError(
            f"{checkpoint} exists (an earlier run); continue it with --resume, or start over "
            "with --overwrite"
        )


def _lock_exclusively(lock: object, path: str) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs are not protected from each other there
        return
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[attr-defined]
    except BlockingIOError:
        raise OutputDirError(
            f"another ruvector-attention train is using --out {path}; wait for it or choose "
            "another directory"
        ) from None
