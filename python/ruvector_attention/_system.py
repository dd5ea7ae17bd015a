"""Facts about the machine that several checks need (one owner for each)."""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["physical_memory"]


def physical_memory() -> Optional[int]:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None
