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

__all__ = [
    "FINISHED",
    "FRESH",
    "LOCK_FILE",
    "RESUME",
    "OutputDirError",
    "locked_output_dir",
    "plan_runs",
]

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


#: What a run directory needs: a FRESH start, to RESUME from its checkpoint, or nothing
#: (FINISHED: its report is there; only with --resume of several seeds).
FRESH, RESUME, FINISHED = "fresh", "resume", "finished"


def plan_runs(run_dirs: list[str], *, resume: bool, overwrite: bool) -> list[str]:
    """What each run directory needs, checked for all of them before any work.

    Without --resume an earlier checkpoint is never replaced unless --overwrite says so. With
    --resume a single run needs its checkpoint; several seeds' runs (``--repeats``) continue as
    an uninterrupted command would: seeds with a report are done, the interrupted seed continues
    from its checkpoint, and seeds never started start now (at least one must have begun).
    """
    if not resume:
        for run_dir in run_dirs:
            checkpoint = os.path.join(run_dir, CHECKPOINT)
            if not overwrite and os.path.exists(checkpoint):
                raise OutputDirError(
                    f"{checkpoint} exists (an earlier run); continue it with --resume, or start "
                    "over with --overwrite"
                )
        return [FRESH] * len(run_dirs)
    plans = []
    for run_dir in run_dirs:
        if len(run_dirs) > 1 and os.path.exists(os.path.join(run_dir, "metrics.json")):
            plans.append(FINISHED)
        elif os.path.exists(os.path.join(run_dir, CHECKPOINT)):
            plans.append(RESUME)
        else:
            plans.append(FRESH)
    if all(plan == FRESH for plan in plans):
        where = (
            run_dirs[0]
            if len(run_dirs) == 1
            else f"any seed directory of {os.path.dirname(run_dirs[0])}"
        )
        raise OutputDirError(f"--resume: no {CHECKPOINT} in {where}")
    return plans


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
