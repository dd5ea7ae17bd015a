"""Skip markers for tests of operating-system features (the release workflow runs the suite on
Linux, macOS and Windows; CI runs it on Linux, where none of these skip)."""

from __future__ import annotations

import os
import platform
import sys
import time

import pytest

#: Address-space and file-size limits (`resource`), /proc, glibc's heap: Linux.
linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="uses Linux process limits or /proc"
)
#: Signals sent to a child (SIGINT, SIGKILL), fork, flock: POSIX.
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals, fork or flock")


def cpu_seconds(pid):
    """User + system CPU time a process has used so far (Linux: /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_busy(process, seconds):
    """A handshake: returns once ``process`` has used ``seconds`` more CPU time than when this
    was called, i.e. is well into its work. A loaded machine makes this wait longer; it never
    makes a test fail (unlike a fixed sleep, after which the child may not have started yet)."""
    begun = cpu_seconds(process.pid)
    while cpu_seconds(process.pid) - begun < seconds:
        assert process.poll() is None, "the process ended before it was busy"
        time.sleep(0.01)


def simd_paths():
    """The kernels' SIMD paths this machine runs, in order ("baseline", "avx2", "avx512"). On
    x86-64 at least two, asserted: a comparison of every path that meets one path compares it with
    itself and proves nothing."""
    from ruvector_attention import _native

    order = ["baseline", "avx2", "avx512"]
    best = _native._testing.best_simd_path().split("+")[0]
    paths = order[: order.index(best) + 1]
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert len(paths) >= 2, f"only {paths} on this x86-64 machine"
    return paths
