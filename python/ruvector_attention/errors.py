"""The library's exception hierarchy.

``RuvectorError`` is the base of every error the library raises itself. ``ShapeError`` also
derives from ``ValueError`` so that ``except ValueError`` keeps working for callers who do not
know this library. Wrong dtypes raise the built-in ``TypeError``; invalid hyper-parameters raise
``ValueError``. The Rust extension raises these same classes (it looks them up here).
"""

from __future__ import annotations

__all__ = ["RuvectorError", "ShapeError"]


class RuvectorError(Exception):
    """Base class of the errors raised by ruvector_attention.

    Examples:
        >>> import ruvector_attention as ra
        >>> [issubclass(e, ra.RuvectorError) for e in (ra.ShapeError, ra.StateFileError)]
        [True, True]
    """


class ShapeError(RuvectorError, ValueError):
    """An array has the wrong rank, mismatched or empty shape, or a size that changed.

    Examples:
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> try:
        ...     ra.InfoNCELoss(0.1).batch(np.ones((2, 3)), np.ones((2, 4)))
        ... except ValueError as exc:  # ShapeError is also a ValueError
        ...     print(type(exc).__name__)
        ShapeError
    """
