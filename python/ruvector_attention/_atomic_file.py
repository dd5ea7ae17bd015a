"""Atomic, durable replacement of a file: readers see the old file or the new one, never a part.

The bytes go to a uniquely named temporary file in the same directory (so that two writers never
share one and ``os.replace`` stays on one file system), which is flushed and fsynced, renamed over
the target, and then the directory is fsynced so that the rename itself survives a power cut. A
crash at any point leaves the previous file intact; only a stray ``.tmp`` file may remain.

Like any other tool's output, a new file gets the mode ``0o666`` less the process's umask (an
existing file keeps its own mode), not the ``0o600`` of a temporary file. A path that is a
symbolic link is followed: its target is replaced, in the target's directory, and the link stays.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["is_leftover", "write_atomically"]

#: How a temporary file is named: ``.<target's name>.<random>.tmp`` beside the target.
_PREFIX, _SUFFIX = ".", ".tmp"


def is_leftover(name: str) -> bool:
    """Whether a directory entry is a temporary file of ``write_atomically`` (left behind only
    when its writer was killed before the rename: never part of a finished write)."""
    return name.startswith(_PREFIX) and name.endswith(_SUFFIX) and len(name) > 5


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises:
        OSError: the directory is missing or not writable, the disk is full, ... (the previous
            file, if any, is untouched and no temporary file is left behind).
    """
    target = os.path.realpath(path)  # a link's target is what gets replaced
    directory = os.path.dirname(target)
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f"{_PREFIX}{os.path.basename(target)}.", suffix=_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if os.name == "posix":
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _mode_for(target: str) -> int:
    """The permission bits the written file gets: the existing file's, else 0o666 & ~umask."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (the only portable way to read it)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its rename is already durable
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
