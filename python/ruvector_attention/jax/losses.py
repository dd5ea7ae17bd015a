"""``info_nce``, ``local_contrastive`` and ``spectral`` as ``jax.custom_vjp`` functions."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import info_nce as _info_nce
from .. import local_contrastive as _local_contrastive
from .. import spectral as _spectral
from .._loss_common import Reduction, ReductionLike, terms_shape, triplet_inputs
from ..errors import ArgumentError, ShapeError

__all__ = ["info_nce", "local_contrastive", "spectral"]

_Array = Any  # a jax.Array (or anything jnp.asarray takes)

#: Under vmap, a callback is called once per batch element (correct for any kernel).
_VMAP = "sequential"


def _spec(shape: tuple[int, ...], like: _Array) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, like.dtype)


def _host(x: Any) -> np.ndarray:
    """A callback's operand as float32 NumPy (the kernels' dtype)."""
    return np.asarray(x, dtype=np.float32)


def _triplet(kernel: Any, reduction: Reduction, item_shape: Callable[..., tuple[int, ...]]) -> Any:
    """A custom_vjp function of (anchors, positives, negatives-or-None) through ``kernel``.

    ``item_shape(a, p, n)`` is the shape of the unreduced losses (B,) or (B, N).
    """

    def value_shape(a: _Array, p: _Array, n: Optional[_Array]) -> tuple[int, ...]:
        return () if reduction is not Reduction.NONE else item_shape(a, p, n)

    def run_value(a: _Array, p: _Array, n: Optional[_Array]) -> _Array:
        def callback(*xs: Any) -> np.ndarray:
            value = kernel.batch(*_unpack(xs, n is None), reduction=reduction)
            return np.asarray(value, dtype=a.dtype)

        return jax.pure_callback(
            callback, _spec(value_shape(a, p, n), a), *_pack(a, p, n), vmap_method=_VMAP
        )

    def run_with_grads(a: _Array, p: _Array, n: Optional[_Array]) -> tuple[_Array, ...]:
        def callback(*xs: Any) -> tuple[np.ndarray, ...]:
            value, grads = kernel.batch_with_gradients(*_unpack(xs, n is None), reduction=reduction)
            return (np.asarray(value, dtype=a.dtype), *_grads_out(grads, a, p, n))

        shapes = (_spec(value_shape(a, p, n), a), *(_spec(x.shape, x) for x in _pack(a, p, n)))
        return jax.pure_callback(callback, shapes, *_pack(a, p, n), vmap_method=_VMAP)

    def run_weighted(a: _Array, p: _Array, n: Optional[_Array], w: _Array) -> tuple[_Array, ...]:
        def callback(*xs: Any) -> tuple[np.ndarray, ...]:
            *inputs, weights = xs
            grads = kernel._weighted_gradients(*_unpack(inputs, n is None), _host(weights))
            return tuple(_grads_out(grads, a, p, n))

        shapes = tuple(_spec(x.shape, x) for x in _pack(a, p, n))
        return jax.pure_callback(callback, shapes, *_pack(a, p, n), w, vmap_method=_VMAP)

    @jax.custom_vjp
    def fn(a: _Array, p: _Array, n: Optional[_Array]) -> _Array:
        return run_value(a, p, n)

    def fwd(a: _Array, p: _Array, n: Optional[_Array]) -> tuple[_Array, Any]:
        if reduction is Reduction.NONE:
            return run_value(a, p, n), (a, p, n)
        value, *grads = run_with_grads(a, p, n)
        return value, tuple(grads)

    def bwd(residual: Any, g: _Array) -> tuple[Optional[_Array], ...]:
        if reduction is Reduction.NONE:
            a, p, n = residual
            grads = run_weighted(a, p, n, g)
        else:
            grads = tuple(x * g.astype(x.dtype) for x in residual)
        ga, gp, *rest = grads
        return ga, gp, (rest[0] if rest else None)

    fn.defvjp(fwd, bwd)
    return fn


def _pack(a: _Array, p: _Array, n: Optional[_Array]) -> tuple[_Array, ...]:
    return (a, p) if n is None else (a, p, n)


def _unpack(xs: Any, in_batch: bool) -> tuple[Optional[np.ndarray], ...]:
    arrays = [_host(x) for x in xs]
    return (arrays[0], arrays[1], None if in_batch else arrays[2])


def _grads_out(grads: Any, a: _Array, p: _Array, n: Optional[_Array]) -> list[np.ndarray]:
    out = [np.asarray(grads.anchors, dtype=a.dtype), np.asarray(grads.positives, dtype=p.dtype)]
    if n is not None:
        out.append(np.asarray(grads.negatives, dtype=n.dtype))
    return out


def _as_float_array(x: object, name: str) -> _Array:
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    return arr


def info_nce(
    anchors: _Array,
    positives: _Array,
    negatives: Optional[_Array] = None,
    *,
    temperature: float = 0.07,
    reduction: ReductionLike = "mean",
) -> _Array:
    """InfoNCE (:class:`ruvector_attention.InfoNCELoss`) with the kernels' exact gradient.

    ``negatives``: (B, N, D) per anchor, (N, D) shared, or None for in-batch negatives. Returns
    a scalar (``mean``, ``sum``) or the (B,) losses (``none``) in the anchors' dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> from ruvector_attention.jax import info_nce
        >>> a = jnp.eye(3)
        >>> round(float(info_nce(a, a, temperature=1.0)), 4)  # log(e + 2) - 1
        0.5514
    """
    kernel = _info_nce.InfoNCELoss(temperature)
    mode = Reduction.parse(reduction)
    a = _as_float_array(anchors, "anchors")
    p = _as_float_array(positives, "positives")
    n = None if negatives is None else _as_float_array(negatives, "negatives")
    # Shapes are checked here, at trace time, with the NumPy API's messages.
    _check_shapes(kernel, a, p, n)
    return _triplet(kernel, mode, lambda a, p, n: (a.shape[0],))(a, p, n)


def local_contrastive(
    anchors: _Array,
    positives: _Array,
    negatives: _Array,
    *,
    margin: float = 1.0,
    reduction: ReductionLike = "mean",
) -> _Array:
    """The Euclidean margin loss (:class:`ruvector_attention.LocalContrastiveLoss`): one term
    per (anchor, negative); ``none`` returns them (B, N).

    Examples:
        >>> import jax.numpy as jnp
        >>> from ruvector_attention.jax import local_contrastive
        >>> a, p = jnp.zeros((1, 2)), jnp.array([[0.0, 1.0]])
        >>> float(local_contrastive(a, p, jnp.array([[[0.0, 1.5], [3.0, 0.0]]])))
        0.25
    """
    if negatives is None:
        raise ArgumentError("negatives is required: pass (B, N, D) or a shared pool (N, D)")
    kernel = _local_contrastive.LocalContrastiveLoss(margin)
    mode = Reduction.parse(reduction)
    a = _as_float_array(anchors, "anchors")
    p = _as_float_array(positives, "positives")
    n = _as_float_array(negatives, "negatives")
    _check_shapes(kernel, a, p, n)
    return _triplet(kernel, mode, lambda a, p, n: terms_shape(a.shape, n.shape))(a, p, n)


def _check_shapes(kernel: Any, a: _Array, p: _Array, n: Optional[_Array]) -> None:
    """The NumPy API's shape checks, at trace time, on zero stand-ins of the inputs' shapes
    (np.zeros maps untouched zero pages: no memory is written, no data leaves JAX)."""
    stand_ins = [None if x is None else np.zeros(x.shape, np.float32) for x in (a, p, n)]
    triplet_inputs(*stand_ins, allow_in_batch=isinstance(kernel, _info_nce.InfoNCELoss))


def spectral(x: _Array, graph: object = None, *, weight: float = 0.01) -> _Array:
    """``weight * tr(X^T L X)`` on ``graph`` (a :class:`ruvector_attention.Graph`, an adjacency
    matrix or an (E, 2) edge list), or without a graph the crate's variance penalty of X.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from ruvector_attention.jax import spectral
        >>> x = jnp.array([[0.0], [1.0], [3.0]])
        >>> edges = [[0, 1], [1, 2]]
        >>> float(spectral(x, edges, weight=1.0))  # 1^2 + 2^2
        5.0
        >>> jax.grad(spectral)(x, edges, weight=1.0).ravel().tolist()
        [-2.0, -2.0, 4.0]
    """
    kernel = _spectral.SpectralRegularization(weight)
    arr = _as_float_array(x, "X")
    if arr.ndim != 2:
        raise ShapeError(f"X must be 2-D (N, D), got shape {arr.shape}")
    # Converted and checked once, outside the traced function.
    prepared = (
        None
        if graph is None
        else (graph if isinstance(graph, _spectral.Graph) else _spectral.Graph(graph, arr.shape[0]))
    )

    def value_and_grad(values: np.ndarray) -> tuple[float, np.ndarray]:
        if prepared is None:
            return kernel.variance_penalty_with_gradients(values)
        return kernel.laplacian_with_gradients(values, prepared)

    def value_only(values: np.ndarray) -> float:
        if prepared is None:
            return kernel.variance_penalty(values)
        return kernel.laplacian(values, prepared)

    @jax.custom_vjp
    def fn(v: _Array) -> _Array:
        return jax.pure_callback(
            lambda h: np.asarray(value_only(_host(h)), dtype=v.dtype),
            _spec((), v),
            v,
            vmap_method=_VMAP,
        )

    def fwd(v: _Array) -> tuple[_Array, _Array]:
        def callback(h: Any) -> tuple[np.ndarray, np.ndarray]:
            value, grad = value_and_grad(_host(h))
            return np.asarray(value, dtype=v.dtype), np.asarray(grad, dtype=v.dtype)

        value, grad = jax.pure_callback(
            callback, (_spec((), v), _spec(v.shape, v)), v, vmap_method=_VMAP
        )
        return value, grad

    def bwd(grad: _Array, g: _Array) -> tuple[_Array]:
        return (grad * g.astype(grad.dtype),)

    fn.defvjp(fwd, bwd)
    return fn(arr)
