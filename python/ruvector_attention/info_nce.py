"""InfoNCE (NT-Xent) loss over cosine similarities, with exact gradients."""

from __future__ import annotations

from typing import Optional, Union

from . import _native
from . import _validate as check
from ._arrays import FloatArray
from ._loss_common import (
    Gradients,
    NativeLossResult,
    Reduction,
    ReductionLike,
    check_weights,
    grad_scale,
    one_sample,
    reduce,
    triplet_inputs,
)

__all__ = ["InfoNCELoss"]

#: The crate clamps temperatures below this value (1 / 0.01 = 100 is the largest logit scale);
#: owned by the kernels (``ruvector_kernels::loss::MIN_TEMPERATURE``).
MIN_TEMPERATURE: float = _native.MIN_TEMPERATURE


class InfoNCELoss:
    """InfoNCE: ``loss_i = logsumexp([s(a_i, p_i), s(a_i, n_i1), ...] / t) - s(a_i, p_i) / t``.

    ``s(x, y) = x.y / (max(|x|, 1e-8) * max(|y|, 1e-8))`` is the cosine similarity. The log-sum-exp
    is max-shifted, so ``t = 0.01`` with unit vectors is exact, and gradients are the exact
    derivatives of the value through the normalisation.

    Negatives for the batched forms are ``(B, N, D)`` (per anchor), ``(N, D)`` (one pool shared
    by every anchor) or ``None`` (in-batch: anchor i uses ``positives[j]`` for every j != i, as
    CLIP and sentence-transformers' MultipleNegativesRankingLoss with ``scale = 1 / t``). The
    shared-pool and in-batch forms never build the B x N similarity matrix.

    Args:
        temperature: > 0; values below 0.01 are clamped to 0.01, as the crate does.

    Examples:
        >>> import numpy as np
        >>> loss = InfoNCELoss(temperature=0.1)
        >>> rng = np.random.default_rng(0)
        >>> a, p = rng.normal(size=(2, 4, 8)).astype(np.float32)
        >>> value, grads = loss.batch_with_gradients(a, p)  # in-batch negatives
        >>> isinstance(value, float), grads.anchors.shape, grads.negatives is None
        (True, (4, 8), True)
    """

    def __init__(self, temperature: float = 0.07) -> None:
        self._temperature = check.temperature("temperature", temperature)

    @property
    def temperature(self) -> float:
        """The temperature in use (after the 0.01 clamp)."""
        return self._temperature

    def __repr__(self) -> str:
        return f"InfoNCELoss(temperature={self._temperature!r})"

    # -- the crate's one-sample form ------------------------------------------------------------

    def compute(self, anchor: object, positive: object, negatives: object) -> float:
        """Loss of one anchor (D,) with its positive (D,) against negatives (N, D)."""
        a, p, n = one_sample(anchor, positive, negatives)
        losses, _ = _native.info_nce_per_anchor(a, p, n, temperature=self._temperature)
        return float(losses[0])

    def compute_with_gradients(
        self, anchor: object, positive: object, negatives: object
    ) -> tuple[float, FloatArray]:
        """``(loss, d loss / d anchor)`` for one sample, as the crate returns them."""
        a, p, n = one_sample(anchor, positive, negatives)
        losses, grads = _native.info_nce_per_anchor(
            a, p, n, temperature=self._temperature, grad_scale=1.0
        )
        assert grads is not None
        return float(losses[0]), grads[0][0]

    # -- batched forms --------------------------------------------------------------------------

    def batch(
        self,
        anchors: object,
        positives: object,
        negatives: object = None,
        *,
        reduction: ReductionLike = "mean",
    ) -> Union[float, FloatArray]:
        """Loss of a batch: a float (``mean``, ``sum``) or the (B,) losses (``none``)."""
        mode = Reduction.parse(reduction)
        a, p, n = triplet_inputs(anchors, positives, negatives, allow_in_batch=True)
        losses, _ = self._run(a, p, n, None)
        return reduce(losses, mode)

    def batch_with_gradients(
        self,
        anchors: object,
        positives: object,
        negatives: object = None,
        *,
        reduction: ReductionLike = "mean",
    ) -> tuple[Union[float, FloatArray], Gradients]:
        """``(value, Gradients)``; with ``none`` the gradients are those of the sum."""
        mode = Reduction.parse(reduction)
        a, p, n = triplet_inputs(anchors, positives, negatives, allow_in_batch=True)
        losses, grads = self._run(a, p, n, grad_scale(mode, a.shape[0]))
        assert grads is not None
        return reduce(losses, mode), Gradients(*grads)

    def _weighted_gradients(
        self, anchors: object, positives: object, negatives: object, weights: FloatArray
    ) -> Gradients:
        """Gradients of ``sum_i weights[i] * loss_i`` (weights (B,) float32): the backward of the
        unreduced loss in the PyTorch and JAX front ends, whose upstream gradient is ``weights``."""
        a, p, n = triplet_inputs(anchors, positives, negatives, allow_in_batch=True)
        _, grads = self._run(a, p, n, 1.0, check_weights(weights, (a.shape[0],)))
        assert grads is not None
        return Gradients(*grads)

    def _run(
        self,
        a: FloatArray,
        p: FloatArray,
        n: Optional[FloatArray],
        scale: Optional[float],
        weights: Optional[FloatArray] = None,
    ) -> NativeLossResult:
        if n is not None and n.ndim == 3:
            return _native.info_nce_per_anchor(
                a, p, n, temperature=self._temperature, grad_scale=scale, grad_weights=weights
            )
        return _native.info_nce_pooled(
            a, p, n, temperature=self._temperature, grad_scale=scale, grad_weights=weights
        )
