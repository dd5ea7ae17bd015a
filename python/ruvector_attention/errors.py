"""The library's exception hierarchy.

``RuvectorError`` is the base of every error the library raises itself. ``ShapeError`` also
derives from ``ValueError`` so that ``except ValueError`` keeps working for callers who do not
know this library. Wrong dtypes raise the built-in ``TypeError``; invalid hyper-parameters raise
``ValueError``. The Rust extension raises these same classes (it looks them up here).
"""

from __future__ import annotations

__all__ = ["RuvectorError", "ShapeError"]


class RuvectorError(Exception):
    """Base class of the errors raised by ruvector_attention."""


class ShapeError(RuvectorError, ValueError):
    """An array has the wrong rank, mismatched or empty shape, or a size that changed."""
