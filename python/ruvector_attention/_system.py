"""Facts about the machine that several checks need (one owner for each)."""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["beyond_memory", "physical_memory"]


def physical_memory() -> Optional[int]:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def beyond_memory(needed: int) -> Optional[str]:
    """``"X GiB, more than this machine's Y GiB"`` when ``needed`` bytes exceed the physical
    memory, for a message refusing the work before it starts; None when it fits (or the system
    does not say)."""
    memory = physical_memory()
    if memory is None or needed <= memory:
        return None
    return f"{needed / 2**30:.1f} GiB, more than this machine's {memory / 2**30:.1f} GiB"
