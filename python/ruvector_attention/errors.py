"""The library's exception hierarchy.

``RuvectorError`` is the base of every error the library raises itself. One class per kind of
problem, each also a ``ValueError`` so that ``except ValueError`` keeps working for callers who do
not know this library:

- ``ArgumentError``: a value outside its domain (a negative learning rate, ``k`` beyond the pool);
- ``ShapeError``: an array of the wrong rank, mismatched or empty shape;
- ``LayoutError``: an array whose memory the kernels cannot use in place (a strided view, a
  misaligned buffer, memory shared with another argument or in use by another call).

Wrong dtypes and non-numbers raise the built-in ``TypeError``. The Rust extension raises these
same classes (it looks them up here), so a check gives the same class whichever layer makes it.
"""

from __future__ import annotations

__all__ = ["ArgumentError", "LayoutError", "RuvectorError", "ShapeError"]


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


class ArgumentError(RuvectorError, ValueError):
    """An argument's value is outside its domain (a negative learning rate, ``k`` beyond the pool).

    Examples:
        >>> import ruvector_attention as ra
        >>> try:
        ...     ra.InfoNCELoss(temperature=-1.0)
        ... except ValueError as exc:  # ArgumentError is also a ValueError
        ...     print(type(exc).__name__, exc)
        ArgumentError temperature must be > 0, got -1.0
    """


class LayoutError(RuvectorError, ValueError):
    """An array's memory cannot be used in place: a strided view, a buffer at an odd byte offset,
    memory shared with another argument of the call, or an array another call is using.

    Examples:
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> param = np.zeros((4, 4), np.float32)[:, ::2]  # a strided view
        >>> try:
        ...     ra.SGD(lr=0.1).step(param, np.ones((4, 2), np.float32))
        ... except ValueError as exc:  # LayoutError is also a ValueError
        ...     print(type(exc).__name__)
        LayoutError
    """
