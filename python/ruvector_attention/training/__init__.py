"""The crate's ``ruvector_attention::training`` module: every public name of the package.

Its list is the package's own (``ruvector_attention.__all__``), so the two cannot drift apart.
"""

from __future__ import annotations

from .. import *  # noqa: F403
from .. import __all__ as _PACKAGE_NAMES

__all__ = [name for name in _PACKAGE_NAMES if name != "__version__"]
