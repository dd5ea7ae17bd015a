"""Local contrastive (triplet margin) loss with Euclidean distances, and its exact gradient."""

from __future__ import annotations

from typing import Optional, Union

from . import _native
from . import _validate as check
from ._arrays import FloatArray
from ._loss_common import (
    Gradients,
    Reduction,
    ReductionLike,
    check_weights,
    grad_scale,
    one_sample,
    reduce,
    terms_shape,
    triplet_inputs,
)

__all__ = ["LocalContrastiveLoss"]


class LocalContrastiveLoss:
    """One term per (anchor, negative): ``max(0, |a - p| - |a - n| + margin)``.

    ``MEAN`` averages over all (anchor, negative) terms, in the value and in its gradient alike
    (the crate averages its gradient over active terms only; this library does not copy that).
    ``NONE`` returns every term: (N,) in the one-sample form, (B, N) in the batched form, with the
    gradients of their sum. A zero distance contributes no gradient (its direction is undefined);
    a term exactly at zero is inactive.

    Args:
        margin: finite, >= 0.
        reduction: the default reduction of every method (``"mean"``, ``"sum"``, ``"none"``).

    Examples:
        >>> import numpy as np
        >>> loss = LocalContrastiveLoss(margin=1.0)
        >>> a, p = np.zeros(2, np.float32), np.array([0.0, 1.0], np.float32)
        >>> loss.compute(a, p, np.array([[0.0, 1.5], [3.0, 0.0]], np.float32))  # (0.5 + 0) / 2
        0.25
    """

    def __init__(self, margin: float = 1.0, reduction: ReductionLike = "mean") -> None:
        self._margin = check.float32_non_negative("margin", margin)
        self._reduction = Reduction.parse(reduction)

    @property
    def margin(self) -> float:
        return self._margin

    @property
    def reduction(self) -> Reduction:
        return self._reduction

    def __repr__(self) -> str:
        return f"LocalContrastiveLoss(margin={self._margin!r}, reduction={self._reduction.value!r})"

    def _mode(self, reduction: Optional[ReductionLike]) -> Reduction:
        return self._reduction if reduction is None else Reduction.parse(reduction)

    # -- the crate's one-sample form ------------------------------------------------------------

    def compute(
        self, anchor: object, positive: object, negatives: object
    ) -> Union[float, FloatArray]:
        """Loss of one anchor (D,) with its positive (D,) against negatives (N, D)."""
        a, p, n = one_sample(anchor, positive, negatives)
        terms, _ = _native.local_contrastive(a, p, n, margin=self._margin)
        return reduce(terms[0], self._reduction)

    def compute_with_gradients(
        self, anchor: object, positive: object, negatives: object
    ) -> tuple[Union[float, FloatArray], FloatArray]:
        """``(value, d value / d anchor)`` for one sample."""
        a, p, n = one_sample(anchor, positive, negatives)
        scale = grad_scale(self._reduction, n.shape[1])
        terms, grads = _native.local_contrastive(a, p, n, margin=self._margin, grad_scale=scale)
        assert grads is not None
        return reduce(terms[0], self._reduction), grads[0][0]

    # -- batched forms --------------------------------------------------------------------------

    def batch(
        self,
        anchors: object,
        positives: object,
        negatives: object,
        *,
        reduction: Optional[ReductionLike] = None,
    ) -> Union[float, FloatArray]:
        """Loss of a batch; ``negatives`` is (B, N, D) or a shared pool (N, D)."""
        mode = self._mode(reduction)
        a, p, n = triplet_inputs(anchors, positives, negatives, allow_in_batch=False)
        assert n is not None
        terms, _ = _native.local_contrastive(a, p, n, margin=self._margin)
        return reduce(terms, mode)

    def batch_with_gradients(
        self,
        anchors: object,
        positives: object,
        negatives: object,
        *,
        reduction: Optional[ReductionLike] = None,
    ) -> tuple[Union[float, FloatArray], Gradients]:
        """``(value, Gradients)``; with ``none`` the gradients are those of the sum."""
        mode = self._mode(reduction)
        a, p, n = triplet_inputs(anchors, positives, negatives, allow_in_batch=False)
        assert n is not None
        b, count = terms_shape(a.shape, n.shape)
        scale = grad_scale(mode, b * count)
        terms, grads = _native.local_contrastive(a, p, n, margin=self._margin, grad_scale=scale)
        assert grads is not None
        return reduce(terms, mode), Gradients(*grads)

    def _weighted_gradients(
        self, anchors: object, positives: object, negatives: object, weights: FloatArray
    ) -> Gradients:
        """Gradients of ``sum_ij weights[i, j] * term_ij`` (weights (B, N) float32): the backward
        of the unreduced loss in the PyTorch and JAX front ends."""
        a, p, n = triplet_inputs(anchors, positives, negatives, allow_in_batch=False)
        assert n is not None
        w = check_weights(weights, terms_shape(a.shape, n.shape))
        _, grads = _native.local_contrastive(
            a, p, n, margin=self._margin, grad_scale=1.0, grad_weights=w
        )
        assert grads is not None
        return Gradients(*grads)
