"""Atomic, durable replacement of a file: readers see the old file or the new one, never a part.

The bytes go to a uniquely named temporary file in the same directory (so that two writers never
share one and ``os.replace`` stays on one file system), which is flushed and fsynced, renamed over
the target, and then the directory is fsynced so that the rename itself survives a power cut. A
crash at any point leaves the previous file intact; only a stray ``.tmp`` file may remain.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["write_atomically"]


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises:
        OSError: the directory is missing or not writable, the disk is full, ... (the previous
            file, if any, is untouched and no temporary file is left behind).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its rename is already durable
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
