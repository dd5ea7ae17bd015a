"""Skip markers for tests of operating-system features (the release workflow runs the suite on
Linux, macOS and Windows; CI runs it on Linux, where none of these skip)."""

from __future__ import annotations

import sys

import pytest

#: Address-space and file-size limits (`resource`), /proc, glibc's heap: Linux.
linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="uses Linux process limits or /proc"
)
#: Signals sent to a child (SIGINT, SIGKILL), fork, flock: POSIX.
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals, fork or flock")
