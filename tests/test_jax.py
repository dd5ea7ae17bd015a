"""The JAX front end: jax.grad through the kernels equals the NumPy API and central finite
differences; jit and vmap work; errors are clear."""

import numpy as np
import pytest

from frameworks import require
from reference import (
    info_nce,
    local_contrastive_terms,
    loss_inputs,
    numeric_grad,
    variance_penalty,
)

pytestmark = pytest.mark.jax
jax = require("jax", "jax")
import jax.numpy as jnp  # noqa: E402

import ruvector_attention as ra  # noqa: E402
from ruvector_attention.jax import info_nce as jinfo_nce  # noqa: E402
from ruvector_attention.jax import local_contrastive as jlocal  # noqa: E402
from ruvector_attention.jax import spectral as jspectral  # noqa: E402

B, N, D = 5, 4, 6


def _inputs(rng, layout):
    return loss_inputs(rng, layout, B, N, D)


@pytest.mark.parametrize("layout", ["per_anchor", "shared", "in_batch"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("jit", [False, True])
def test_info_nce_grad_matches_numpy_api_and_finite_differences(rng, layout, reduction, jit):
    a, p, n = _inputs(rng, layout)
    t = 0.25
    w = rng.uniform(0.5, 2.0, size=B).astype(np.float32)

    def objective(a, p, n):
        value = jinfo_nce(a, p, n, temperature=t, reduction=reduction)
        return jnp.sum(value * w) if reduction == "none" else value

    argnums = (0, 1) if n is None else (0, 1, 2)
    grad_fn = jax.grad(objective, argnums=argnums)
    if jit:
        grad_fn = jax.jit(grad_fn)
    grads = grad_fn(a, p, n)
    value = objective(a, p, n)

    np_value, np_grads = ra.InfoNCELoss(t).batch_with_gradients(a, p, n, reduction=reduction)
    if reduction != "none":
        assert float(value) == pytest.approx(np_value, rel=1e-6)
        for got, expected in zip(grads, np_grads):
            np.testing.assert_array_equal(np.asarray(got), expected)
    weights = {"mean": np.full(B, 1.0 / B), "sum": np.ones(B), "none": w.astype(np.float64)}
    for k, got in enumerate(grads):
        args = [a, p, n]

        def f(x, k=k, args=args):
            args = list(args)
            args[k] = x
            return float(np.dot(weights[reduction], info_nce(*args, t)))

        np.testing.assert_allclose(np.asarray(got), numeric_grad(f, args[k]), atol=2e-5)


@pytest.mark.parametrize("layout", ["per_anchor", "shared"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_local_contrastive_grad_matches_finite_differences(rng, layout, reduction):
    a, p, n = _inputs(rng, layout)
    w = rng.uniform(0.5, 2.0, size=(B, N))

    def objective(a, p, n):
        value = jlocal(a, p, n, margin=2.0, reduction=reduction)
        return jnp.sum(value * w) if reduction == "none" else value

    grads = jax.jit(jax.grad(objective, argnums=(0, 1, 2)))(a, p, n)
    weights = np.full((B, N), 1.0 / (B * N)) if reduction == "mean" else w
    for k, got in enumerate(grads):
        args = [a, p, n]

        def f(x, k=k, args=args):
            args = list(args)
            args[k] = x
            return float(np.sum(weights * local_contrastive_terms(*args, 2.0)))

        np.testing.assert_allclose(np.asarray(got), numeric_grad(f, args[k]), atol=2e-5)


def test_spectral_value_and_grad(rng):
    x = rng.normal(size=(6, 3)).astype(np.float32)
    edges = np.array([[0, 1], [1, 2], [2, 5], [3, 4]])
    graph = ra.Graph(edges, num_nodes=6)
    value, grad = jax.jit(jax.value_and_grad(lambda v: 3.0 * jspectral(v, graph, weight=0.5)))(x)
    w = np.zeros((6, 6))
    w[edges[:, 0], edges[:, 1]] = w[edges[:, 1], edges[:, 0]] = 1.0
    lap = np.diag(w.sum(1)) - w
    assert float(value) == pytest.approx(1.5 * float(np.sum(x * (lap @ x))), rel=1e-6)
    np.testing.assert_allclose(np.asarray(grad), 3.0 * 0.5 * 2 * lap @ x, rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda v: jspectral(v, weight=2.0))(x)
    expected = numeric_grad(lambda v: variance_penalty(v, 2.0), x)
    np.testing.assert_allclose(np.asarray(grad), expected, atol=1e-6)


def test_vmap_is_a_correct_sequential_batching_rule(rng):
    stacks = [_inputs(rng, "shared") for _ in range(3)]
    a, p, n = (np.stack([s[k] for s in stacks]) for k in range(3))
    values = jax.vmap(lambda a, p, n: jinfo_nce(a, p, n, temperature=0.3))(a, p, n)
    # The gradients of every input, not only the anchors'.
    grads = jax.vmap(
        jax.grad(lambda a, p, n: jinfo_nce(a, p, n, temperature=0.3), argnums=(0, 1, 2))
    )(a, p, n)
    for i in range(3):
        v, g = ra.InfoNCELoss(0.3).batch_with_gradients(a[i], p[i], n[i])
        assert float(values[i]) == pytest.approx(v, rel=1e-6)
        for got, expected in zip(grads, (g.anchors, g.positives, g.negatives)):
            assert np.abs(expected).max() > 0
            np.testing.assert_array_equal(np.asarray(got[i]), expected)


def test_errors_are_clear(rng):
    a, p, n = _inputs(rng, "shared")
    with pytest.raises(ra.ShapeError, match="positives must have the shape of anchors"):
        jinfo_nce(a, p[:, :2])
    with pytest.raises(ra.ShapeError, match="in-batch negatives need a batch of at least 2"):
        jinfo_nce(a[:1], p[:1])
    with pytest.raises(TypeError, match="anchors must be a floating-point array"):
        jinfo_nce(np.zeros((3, 2), np.int32), p)
    with pytest.raises(ValueError, match="negatives is required"):
        jlocal(a, p, None)
    with pytest.raises(ValueError, match="reduction must be"):
        jinfo_nce(a, p, n, reduction="avg")
    with pytest.raises(ValueError, match="temperature"):
        jinfo_nce(a, p, n, temperature=0.0)
    with pytest.raises(ra.ShapeError, match="X must be 2-D"):
        jspectral(np.zeros(3, np.float32))


def test_importing_the_package_does_not_import_jax():
    import subprocess
    import sys

    code = "import ruvector_attention, sys; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
