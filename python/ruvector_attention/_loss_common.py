"""What the loss classes share: ``Reduction``, ``Gradients`` and the checks of their inputs.

Shapes are checked here, before the extension runs, so that messages name the argument, its shape
and what was expected. Values are not inspected: NaN and Inf flow through to the result.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional, Union

import numpy as np
import numpy.typing as npt

from ._arrays import FloatArray, as_float32
from .errors import ArgumentError, ShapeError

__all__ = [
    "Gradients",
    "NativeLossResult",
    "Reduction",
    "ReductionLike",
    "check_weights",
    "grad_scale",
    "one_sample",
    "reduce",
    "terms_shape",
    "triplet_inputs",
]


class Reduction(enum.Enum):
    """How per-row (or per-term) losses become the returned value.

    ``MEAN`` and ``SUM`` return a Python float; ``NONE`` returns the float32 array of the
    individual losses (and gradients are those of their sum). The strings ``"mean"``, ``"sum"``
    and ``"none"`` are accepted wherever a reduction is taken.

    Examples:
        >>> Reduction("mean") is Reduction.MEAN
        True
    """

    MEAN = "mean"
    SUM = "sum"
    NONE = "none"

    @classmethod
    def parse(cls, value: object) -> Reduction:
        if isinstance(value, Reduction):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        raise ArgumentError(
            f"reduction must be 'mean', 'sum', 'none' or a Reduction, got {value!r}"
        )


ReductionLike = Union[Reduction, str]

#: What the extension's loss functions return: float64 per-item losses and, when asked,
#: gradients (anchors, positives, negatives-or-None).
NativeLossResult = tuple[
    npt.NDArray[np.float64], Optional[tuple[FloatArray, FloatArray, Optional[FloatArray]]]
]


class Gradients(NamedTuple):
    """Gradients of a batched loss, shaped like its inputs.

    ``negatives`` is ``None`` for in-batch negatives (their gradient is part of ``positives``).

    Examples:
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> a = np.eye(3, dtype=np.float32)
        >>> _, grads = ra.InfoNCELoss(0.5).batch_with_gradients(a, a, a)
        >>> grads.anchors.shape, grads.negatives.shape
        ((3, 3), (3, 3))
    """

    anchors: FloatArray
    positives: FloatArray
    negatives: Optional[FloatArray]


def reduce(losses: npt.NDArray[np.float64], reduction: Reduction) -> Union[float, FloatArray]:
    """Reduce float64 per-item losses: a float for MEAN / SUM, a float32 array for NONE."""
    if reduction is Reduction.MEAN:
        return float(losses.mean())
    if reduction is Reduction.SUM:
        return float(losses.sum())
    return losses.astype(np.float32)


def grad_scale(reduction: Reduction, count: int) -> float:
    """The factor every gradient carries: 1/count for a mean, 1 otherwise."""
    return 1.0 / count if reduction is Reduction.MEAN else 1.0


def check_weights(weights: object, shape: tuple[int, ...]) -> FloatArray:
    """Per-item upstream weights of an unreduced loss, as C-contiguous float32 of ``shape``."""
    w = as_float32(weights, "weights")
    if w.shape != shape:
        raise ShapeError(f"weights must have the losses' shape {shape}, got {w.shape}")
    return w


def terms_shape(anchors: tuple[int, ...], negatives: tuple[int, ...]) -> tuple[int, int]:
    """``(B, N)`` of a margin loss's terms, one per (anchor, negative), from the inputs' shapes:
    negatives are (B, N, D) per anchor or a shared pool (N, D)."""
    count = negatives[1] if len(negatives) == 3 else negatives[0]
    return anchors[0], count


def _check_2d(x: FloatArray, name: str) -> None:
    if x.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (B, D), got shape {x.shape}")
    if x.size == 0:
        raise ShapeError(f"{name} is empty (shape {x.shape}); pass at least one row of D >= 1")


def triplet_inputs(
    anchors: object,
    positives: object,
    negatives: object,
    *,
    allow_in_batch: bool,
) -> tuple[FloatArray, FloatArray, Optional[FloatArray]]:
    """Convert and check batched inputs: anchors and positives (B, D); negatives (B, N, D),
    (N, D), or None when ``allow_in_batch``."""
    a = as_float32(anchors, "anchors")
    p = as_float32(positives, "positives")
    _check_2d(a, "anchors")
    if p.shape != a.shape:
        raise ShapeError(f"positives must have the shape of anchors {a.shape}, got {p.shape}")
    if negatives is None:
        if not allow_in_batch:
            raise ShapeError("negatives is required here: pass (B, N, D) or (N, D)")
        if a.shape[0] < 2:
            raise ShapeError(
                "in-batch negatives need a batch of at least 2 (each anchor's negatives are the "
                f"other rows' positives); got B = {a.shape[0]}"
            )
        return a, p, None
    n = as_float32(negatives, "negatives")
    b, d = a.shape
    expected = "(B, N, D) or (N, D)" + (" or None" if allow_in_batch else "")
    if n.ndim == 3:
        if n.shape[0] != b or n.shape[2] != d:
            raise ShapeError(f"negatives must be {expected} with B={b}, D={d}; got shape {n.shape}")
    elif n.ndim == 2:
        if n.shape[1] != d:
            raise ShapeError(f"negatives must be {expected} with D={d}; got shape {n.shape}")
    else:
        raise ShapeError(f"negatives must be {expected}, got shape {n.shape}")
    if n.size == 0:
        raise ShapeError(f"negatives is empty (shape {n.shape}); pass at least one negative")
    return a, p, n


def one_sample(
    anchor: object, positive: object, negatives: object
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The crate's one-sample form: anchor and positive (D,), negatives (N, D); returned as a
    batch of one (1, D), (1, D), (1, N, D)."""
    a = as_float32(anchor, "anchor")
    p = as_float32(positive, "positive")
    n = as_float32(negatives, "negatives")
    if a.ndim != 1 or a.size == 0:
        raise ShapeError(f"anchor must be a non-empty 1-D vector (D,), got shape {a.shape}")
    if p.shape != a.shape:
        raise ShapeError(f"positive must have the shape of anchor {a.shape}, got {p.shape}")
    if n.ndim != 2 or n.shape[1] != a.shape[0]:
        raise ShapeError(f"negatives must be (N, {a.shape[0]}), got shape {n.shape}")
    if n.shape[0] == 0:
        raise ShapeError("negatives is empty (N = 0); pass at least one negative")
    return a[None, :], p[None, :], n[None, :, :]
