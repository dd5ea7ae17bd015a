"""The losses as ``torch.nn.Module``s whose backward is the kernels' exact gradient.

Each module wraps the NumPy class of the same name (which checks the inputs and owns the
formulas) in a ``torch.autograd.Function``:

- ``mean`` / ``sum``: the forward computes value and gradients in one kernel call when any
  input requires grad (as the NumPy ``batch_with_gradients`` does), and the backward scales them
  by the upstream gradient (nothing to do for the usual ``loss.backward()``).
- ``none``: the forward computes the per-item losses only; the backward runs the kernel once
  more with the upstream gradient as per-item weights, so ``(losses * w).sum().backward()`` is
  exact for any ``w``.

Double backward (``create_graph=True``) raises: the kernels give first derivatives only.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import info_nce as _info_nce
from .. import local_contrastive as _local_contrastive
from .. import spectral as _spectral
from .._loss_common import Gradients, Reduction, ReductionLike
from ..errors import ArgumentError
from ._tensors import as_array, from_array

__all__ = ["InfoNCELoss", "LocalContrastiveLoss", "SpectralRegularization"]

_Kernel = Any  # the NumPy loss object (InfoNCELoss or LocalContrastiveLoss)


_Backward = Callable[[Any, torch.Tensor], tuple[Any, ...]]


def _first_order(backward: _Backward) -> _Backward:
    """A backward that refuses ``create_graph=True`` (autograd runs a backward with grad mode on
    exactly then) instead of returning gradients that silently carry no graph."""

    @functools.wraps(backward)
    def wrapper(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "ruvector_attention.torch losses have first derivatives only: double backward "
                "(create_graph=True) is not supported"
            )
        return backward(ctx, grad_output)

    return wrapper


def _value_tensor(value: object, like: torch.Tensor) -> torch.Tensor:
    """The forward's result in the anchors' dtype: 0-d for a float, else the per-item array."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value).to(like.dtype)
    return torch.scalar_tensor(value, dtype=like.dtype)


def _scaled(grad: Optional[np.ndarray], like: Optional[torch.Tensor], factor: float) -> Any:
    """The gradient for ``like``, times the upstream factor (a new tensor unless it is 1)."""
    if grad is None or like is None:
        return None
    out = from_array(grad, like)
    return out if factor == 1.0 else out * factor


class _TripletFunction(torch.autograd.Function):
    """Anchors, positives and negatives (or None for in-batch InfoNCE) through a NumPy loss."""

    @staticmethod
    def forward(
        ctx: Any,
        kernel: _Kernel,
        reduction: Reduction,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        negatives: Optional[torch.Tensor],
    ) -> torch.Tensor:
        a = as_array(anchors, "anchors")
        p = as_array(positives, "positives")
        n = None if negatives is None else as_array(negatives, "negatives")
        wants_grad = any(ctx.needs_input_grad[2:])
        ctx.kernel = kernel
        ctx.reduction = reduction
        ctx.grads = None
        ctx.save_for_backward(anchors, positives, negatives)
        if wants_grad and reduction is not Reduction.NONE:
            value, ctx.grads = kernel.batch_with_gradients(a, p, n, reduction=reduction)
        else:
            value = kernel.batch(a, p, n, reduction=reduction)
        return _value_tensor(value, anchors)

    @staticmethod
    @_first_order
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        # saved_tensors also checks that no input was modified in place since the forward.
        anchors, positives, negatives = ctx.saved_tensors
        factor = 1.0
        if ctx.reduction is Reduction.NONE:
            weights = as_array(grad_output, "grad_output")
            grads: Gradients = ctx.kernel._weighted_gradients(
                as_array(anchors, "anchors"),
                as_array(positives, "positives"),
                None if negatives is None else as_array(negatives, "negatives"),
                weights,
            )
        else:
            # The forward's gradients are handed to autograd without a copy (it may accumulate
            # into them), so they serve one backward; another (retain_graph) recomputes them.
            grads, ctx.grads = ctx.grads, None
            if grads is None:
                _, grads = ctx.kernel.batch_with_gradients(
                    as_array(anchors, "anchors"),
                    as_array(positives, "positives"),
                    None if negatives is None else as_array(negatives, "negatives"),
                    reduction=ctx.reduction,
                )
            factor = float(grad_output)
        needs = ctx.needs_input_grad
        return (
            None,
            None,
            _scaled(grads.anchors, anchors, factor) if needs[2] else None,
            _scaled(grads.positives, positives, factor) if needs[3] else None,
            _scaled(grads.negatives, negatives, factor) if needs[4] else None,
        )


class InfoNCELoss(torch.nn.Module):
    """InfoNCE over cosine similarities (:class:`ruvector_attention.InfoNCELoss`) in autograd.

    ``forward(anchors, positives, negatives=None)``: anchors and positives (B, D); negatives
    (B, N, D) per anchor, (N, D) shared by every anchor, or None for in-batch negatives (anchor
    i against every other row's positive). Returns a 0-d tensor (``mean``, ``sum``) or the (B,)
    losses (``none``) in the anchors' dtype.

    Args:
        temperature: > 0; values below 0.01 are clamped to 0.01, as the crate does.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import InfoNCELoss
        >>> a = torch.randn(8, 16, requires_grad=True)
        >>> p = torch.randn(8, 16)
        >>> loss = InfoNCELoss(temperature=0.1)(a, p)  # in-batch negatives
        >>> loss.backward()
        >>> a.grad.shape
        torch.Size([8, 16])
    """

    def __init__(self, temperature: float = 0.07, reduction: ReductionLike = "mean") -> None:
        super().__init__()
        self._kernel = _info_nce.InfoNCELoss(temperature)
        self.reduction = Reduction.parse(reduction)

    @property
    def temperature(self) -> float:
        """The temperature in use (after the 0.01 clamp); assign to anneal it."""
        return self._kernel.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._kernel = _info_nce.InfoNCELoss(value)

    def forward(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        negatives: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        out: torch.Tensor = _TripletFunction.apply(
            self._kernel, self.reduction, anchors, positives, negatives
        )
        return out

    def extra_repr(self) -> str:
        return f"temperature={self.temperature!r}, reduction={self.reduction.value!r}"


class LocalContrastiveLoss(torch.nn.Module):
    """The Euclidean margin loss (:class:`ruvector_attention.LocalContrastiveLoss`) in autograd.

    ``forward(anchors, positives, negatives)``: anchors and positives (B, D); negatives
    (B, N, D) or a shared pool (N, D). One term ``max(0, |a - p| - |a - n| + margin)`` per
    (anchor, negative): ``mean`` averages all B x N terms, ``none`` returns them (B, N).

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import LocalContrastiveLoss
        >>> a = torch.zeros(1, 2, requires_grad=True)
        >>> loss = LocalContrastiveLoss(margin=1.0)(a, torch.tensor([[0.0, 1.0]]),
        ...                                         torch.tensor([[[0.0, 1.5], [3.0, 0.0]]]))
        >>> round(loss.item(), 6)
        0.25
    """

    def __init__(self, margin: float = 1.0, reduction: ReductionLike = "mean") -> None:
        super().__init__()
        self._kernel = _local_contrastive.LocalContrastiveLoss(margin)
        self.reduction = Reduction.parse(reduction)

    @property
    def margin(self) -> float:
        return self._kernel.margin

    def forward(
        self, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        if negatives is None:
            raise ArgumentError("negatives is required: pass (B, N, D) or a shared pool (N, D)")
        out: torch.Tensor = _TripletFunction.apply(
            self._kernel, self.reduction, anchors, positives, negatives
        )
        return out

    def extra_repr(self) -> str:
        return f"margin={self.margin!r}, reduction={self.reduction.value!r}"


class _SpectralFunction(torch.autograd.Function):
    """A scalar penalty of one signal X (N, D); the graph is data, not differentiated."""

    @staticmethod
    def forward(
        ctx: Any, kernel: _spectral.SpectralRegularization, graph: object, x: torch.Tensor
    ) -> torch.Tensor:
        ctx.kernel = kernel
        ctx.graph = graph
        ctx.grad = None
        ctx.save_for_backward(x)
        if ctx.needs_input_grad[2]:
            value, ctx.grad = _spectral_with_gradient(kernel, graph, as_array(x, "X"))
        elif graph is None:
            value = kernel.variance_penalty(as_array(x, "X"))
        else:
            value = kernel.laplacian(as_array(x, "X"), graph)
        return torch.scalar_tensor(value, dtype=x.dtype)

    @staticmethod
    @_first_order
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        grad, ctx.grad = ctx.grad, None  # one backward each, as in _TripletFunction
        if grad is None:
            _, grad = _spectral_with_gradient(ctx.kernel, ctx.graph, as_array(x, "X"))
        return None, None, _scaled(grad, x, float(grad_output))


def _spectral_with_gradient(
    kernel: _spectral.SpectralRegularization, graph: object, x: np.ndarray
) -> tuple[float, np.ndarray]:
    if graph is None:
        return kernel.variance_penalty_with_gradients(x)
    return kernel.laplacian_with_gradients(x, graph)


class SpectralRegularization(torch.nn.Module):
    """Graph-Laplacian smoothness (or the crate's variance penalty) in autograd.

    ``forward(X, graph)`` is ``weight * tr(X^T L X)`` for a signal X (N, D) on ``graph`` (a
    :class:`ruvector_attention.Graph`, a dense or ``scipy.sparse`` adjacency, or an (E, 2) edge
    list; build a ``Graph`` once when it does not change). ``forward(X)`` without a graph is the
    crate's variance-uniformity penalty of the embeddings X. Both return a 0-d tensor.

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import SpectralRegularization
        >>> x = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
        >>> value = SpectralRegularization(weight=1.0)(x, [[0, 1], [1, 2]])  # 1^2 + 2^2
        >>> value.backward()
        >>> value.item(), x.grad.flatten().tolist()
        (5.0, [-2.0, -2.0, 4.0])
    """

    def __init__(self, weight: float = 0.01) -> None:
        super().__init__()
        self._kernel = _spectral.SpectralRegularization(weight)

    @property
    def weight(self) -> float:
        return self._kernel.weight

    def forward(self, x: torch.Tensor, graph: object = None) -> torch.Tensor:
        out: torch.Tensor = _SpectralFunction.apply(self._kernel, graph, x)
        return out

    def extra_repr(self) -> str:
        return f"weight={self.weight!r}"
