"""The PyTorch losses: autograd gradients equal the NumPy API's, torch float64 autograd of the
same formulas, and central finite differences; every error branch."""

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

pytestmark = pytest.mark.torch
torch = require("torch", "torch")
import ruvector_attention as ra  # noqa: E402
import ruvector_attention.torch as rat  # noqa: E402

B, N, D = 6, 5, 7
LAYOUTS = ["per_anchor", "shared", "in_batch"]
REDUCTIONS = ["mean", "sum", "none"]


def _inputs(rng, layout):
    return loss_inputs(rng, layout, B, N, D)


def _torch_info_nce64(a, p, n, t):
    """InfoNCE written with torch ops in float64 (autograd gives its exact gradient)."""
    unit = lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # noqa: E731
    a, p = unit(a), unit(p)
    if n is None:
        logits = a @ p.T / t
        return torch.logsumexp(logits, 1) - logits.diagonal()
    n = unit(n)
    neg = torch.einsum("bd,bnd->bn", a, n) if n.ndim == 3 else a @ n.T
    logits = torch.cat([(a * p).sum(1, keepdim=True), neg], 1) / t
    return torch.logsumexp(logits, 1) - logits[:, 0]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("which", [(True, True, True), (True, False, False), (False, True, True)])
def test_info_nce_grads_match_numpy_api_and_float64_autograd(rng, layout, reduction, which):
    a, p, n = _inputs(rng, layout)
    t = 0.2
    ta = torch.tensor(a, requires_grad=which[0])
    tp = torch.tensor(p, requires_grad=which[1])
    tn = None if n is None else torch.tensor(n, requires_grad=which[2])
    value = rat.InfoNCELoss(t, reduction)(ta, tp, tn)
    # An upstream gradient that is not uniform for "none": weights exercise the weighted kernel.
    w = rng.uniform(0.5, 2.0, size=B).astype(np.float32)
    (value * torch.tensor(w)).sum().backward() if reduction == "none" else value.backward()

    # The NumPy API's value (and, for mean/sum, its gradients bit for bit).
    np_value, np_grads = ra.InfoNCELoss(t).batch_with_gradients(a, p, n, reduction=reduction)
    np.testing.assert_allclose(value.detach().numpy(), np_value, rtol=1e-6)
    if reduction != "none":
        for tensor, grad in zip((ta, tp, tn), np_grads):
            if tensor is not None and tensor.requires_grad:
                np.testing.assert_array_equal(tensor.grad.numpy(), grad)

    # Float64 autograd of the same formula, weighted like the test's upstream gradient.
    ra64 = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    rp64 = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    rn64 = None if n is None else torch.tensor(n, dtype=torch.float64, requires_grad=True)
    losses = _torch_info_nce64(ra64, rp64, rn64, t)
    weights = {"mean": torch.full((B,), 1.0 / B), "sum": torch.ones(B), "none": torch.tensor(w)}
    (losses * weights[reduction].double()).sum().backward()
    for tensor, ref in zip((ta, tp, tn), (ra64, rp64, rn64)):
        if tensor is None:
            continue
        if tensor.requires_grad:
            scale = float(ref.grad.abs().max())
            np.testing.assert_allclose(
                tensor.grad.numpy(), ref.grad.numpy(), atol=2e-6 * scale + 1e-7
            )
        else:
            assert tensor.grad is None


def test_info_nce_none_matches_finite_differences(rng):
    a, p, n = _inputs(rng, "shared")
    w = rng.uniform(-1.0, 2.0, size=B)
    ta, tp, tn = (torch.tensor(x, requires_grad=True) for x in (a, p, n))
    (
        rat.InfoNCELoss(0.3, "none")(ta, tp, tn) * torch.tensor(w, dtype=torch.float32)
    ).sum().backward()
    for k, tensor in enumerate((ta, tp, tn)):
        args = [a, p, n]

        def f(x, k=k, args=args):
            args = list(args)
            args[k] = x
            return float(np.dot(w, info_nce(*args, 0.3)))

        expected = numeric_grad(f, args[k])
        np.testing.assert_allclose(tensor.grad.numpy(), expected, atol=2e-5)


@pytest.mark.parametrize("layout", ["per_anchor", "shared"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_local_contrastive_grads_match_numpy_api_and_finite_differences(rng, layout, reduction):
    a, p, n = _inputs(rng, layout)
    margin = 1.5
    ta, tp, tn = (torch.tensor(x, requires_grad=True) for x in (a, p, n))
    value = rat.LocalContrastiveLoss(margin, reduction)(ta, tp, tn)
    w = rng.uniform(0.5, 2.0, size=(B, N))
    if reduction == "none":
        assert value.shape == (B, N)
        (value * torch.tensor(w, dtype=torch.float32)).sum().backward()
    else:
        value.backward()
        np_value, np_grads = ra.LocalContrastiveLoss(margin).batch_with_gradients(
            a, p, n, reduction=reduction
        )
        assert value.item() == pytest.approx(np_value, rel=1e-6)
        for tensor, grad in zip((ta, tp, tn), np_grads):
            np.testing.assert_array_equal(tensor.grad.numpy(), grad)
    weights = {"mean": np.full((B, N), 1.0 / (B * N)), "sum": np.ones((B, N)), "none": w}[reduction]
    for k, tensor in enumerate((ta, tp, tn)):
        args = [a, p, n]

        def f(x, k=k, args=args):
            args = list(args)
            args[k] = x
            return float(np.sum(weights * local_contrastive_terms(*args, margin)))

        np.testing.assert_allclose(tensor.grad.numpy(), numeric_grad(f, args[k]), atol=2e-5)


def test_spectral_laplacian_and_variance_grads(rng):
    x = rng.normal(size=(6, 3)).astype(np.float32)
    edges = np.array([[0, 1], [1, 2], [2, 5], [3, 4]])
    tx = torch.tensor(x, requires_grad=True)
    value = rat.SpectralRegularization(0.5)(tx, edges)
    (3.0 * value).backward()  # an upstream factor other than 1
    w = np.zeros((6, 6))
    w[edges[:, 0], edges[:, 1]] = w[edges[:, 1], edges[:, 0]] = 1.0
    lap = np.diag(w.sum(1)) - w
    assert value.item() == pytest.approx(0.5 * float(np.sum(x * (lap @ x))), rel=1e-6)
    np.testing.assert_allclose(tx.grad.numpy(), 3.0 * 0.5 * 2 * lap @ x, rtol=1e-5, atol=1e-6)

    tx = torch.tensor(x, requires_grad=True)
    value = rat.SpectralRegularization(2.0)(tx)
    value.backward()
    assert value.item() == pytest.approx(variance_penalty(x, 2.0), rel=1e-5)
    expected = numeric_grad(lambda v: variance_penalty(v, 2.0), x)
    np.testing.assert_allclose(tx.grad.numpy(), expected, atol=1e-6)


def test_float32_input_is_not_copied_and_other_dtypes_get_their_gradients_back(rng):
    a, p, _ = _inputs(rng, "in_batch")
    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    tp = torch.tensor(p, dtype=torch.bfloat16, requires_grad=True)
    value = rat.InfoNCELoss(0.2)(ta, tp)
    assert value.dtype == torch.float64
    value.backward()
    assert ta.grad.dtype == torch.float64 and tp.grad.dtype == torch.bfloat16
    _, grads = ra.InfoNCELoss(0.2).batch_with_gradients(a, tp.detach().float().numpy())
    np.testing.assert_allclose(ta.grad.numpy(), grads.anchors, rtol=1e-6, atol=1e-9)

    from ruvector_attention.torch._tensors import as_array

    t = torch.randn(4, 3)
    assert np.shares_memory(as_array(t, "x"), t.numpy())


def test_no_grad_and_retain_graph(rng):
    a, p, n = _inputs(rng, "shared")
    ta = torch.tensor(a, requires_grad=True)
    with torch.no_grad():
        v = rat.InfoNCELoss(0.2)(ta, torch.tensor(p), torch.tensor(n))
    assert not v.requires_grad
    loss = rat.InfoNCELoss(0.2)(ta, torch.tensor(p), torch.tensor(n))
    loss.backward(retain_graph=True)
    first = ta.grad.clone()
    loss.backward()  # a second backward recomputes; the first gradient was not disturbed
    np.testing.assert_allclose(ta.grad.numpy(), 2 * first.numpy(), rtol=1e-6)


def test_temperature_can_be_annealed(rng):
    # The forward must use the new temperature (checking the attribute alone would pass with a
    # setter that changes nothing the loss computes with).
    a, p, n = _inputs(rng, "shared")
    loss = rat.InfoNCELoss(0.5)
    ta, tp, tn = (torch.tensor(x) for x in (a, p, n))
    at_half = float(loss(ta, tp, tn))
    for new, used in ((0.2, 0.2), (0.001, 0.01)):  # 0.01: the crate's clamp
        loss.temperature = new
        assert loss.temperature == pytest.approx(used)
        expected = float(info_nce(a, p, n, used).mean())
        assert float(loss(ta, tp, tn)) == pytest.approx(expected, rel=1e-5)
        assert float(loss(ta, tp, tn)) != pytest.approx(at_half, rel=1e-3)
    assert "temperature=0.01" in repr(loss)


# -- errors ---------------------------------------------------------------------------------------


def test_double_backward_is_refused(rng):
    a, p, _ = _inputs(rng, "in_batch")
    ta = torch.tensor(a, requires_grad=True)
    loss = rat.InfoNCELoss(0.2)(ta, torch.tensor(p))
    with pytest.raises(
        RuntimeError, match=r"double backward \(create_graph=True\) is not supported"
    ):
        torch.autograd.grad(loss, ta, create_graph=True)
    x = torch.tensor(a, requires_grad=True)
    value = rat.SpectralRegularization(1.0)(x)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(value, x, create_graph=True)


def test_other_devices_and_non_tensors_are_refused(rng):
    a = torch.randn(4, 3, device="meta")
    with pytest.raises(ValueError, match=r"anchors is on device meta.*cpu"):
        rat.InfoNCELoss(0.2)(a, a)
    with pytest.raises(TypeError, match=r"anchors must be a torch\.Tensor"):
        rat.InfoNCELoss(0.2)(np.zeros((4, 3), np.float32), torch.zeros(4, 3))
    with pytest.raises(TypeError, match="positives must be a floating-point tensor"):
        rat.InfoNCELoss(0.2)(torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="X must be a dense"):
        rat.SpectralRegularization(1.0)(torch.eye(3).to_sparse())


def test_shape_errors_come_from_the_numpy_checks():
    with pytest.raises(ra.ShapeError, match="positives must have the shape of anchors"):
        rat.InfoNCELoss(0.2)(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="negatives is required"):
        rat.LocalContrastiveLoss()(torch.zeros(4, 3), torch.zeros(4, 3), None)
    with pytest.raises(ValueError, match="reduction must be"):
        rat.InfoNCELoss(0.2, "avg")


def test_modified_input_before_backward_is_detected(rng):
    a, p, n = _inputs(rng, "shared")
    ta = torch.tensor(a, requires_grad=True)
    tn = torch.tensor(n)
    loss = rat.InfoNCELoss(0.2)(ta, torch.tensor(p), tn)
    tn.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# -- miners ---------------------------------------------------------------------------------------


def test_miners_take_tensors_and_return_int64_tensors(rng):
    a = rng.normal(size=(5, 4)).astype(np.float32)
    c = rng.normal(size=(9, 4)).astype(np.float32)
    labels_a, labels_c = np.arange(5) % 3, np.arange(9) % 3
    miner = rat.HardNegativeMiner.hardest()
    got = miner.mine_batch(
        torch.tensor(a),
        None,
        torch.tensor(c),
        3,
        anchor_labels=torch.tensor(labels_a),
        candidate_labels=torch.tensor(labels_c),
    )
    expected = ra.HardNegativeMiner.hardest().mine_batch(
        a, None, c, 3, anchor_labels=labels_a, candidate_labels=labels_c
    )
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), expected)
    one = miner.mine(torch.tensor(a[0]), torch.tensor(a[0]), torch.tensor(c), 2)
    assert one.dtype == torch.int64 and one.tolist() == expected_first(a, c)
    seeded = rat.HardNegativeMiner.random(seed=3).mine_batch(
        torch.tensor(a), None, torch.tensor(c), 4
    )
    np.testing.assert_array_equal(
        seeded.numpy(), ra.HardNegativeMiner.random(seed=3).mine_batch(a, None, c, 4)
    )
    assert rat.InBatchMiner(exclude_positive=False).get_negatives(0, 1, 3).tolist() == [1, 2]
    with pytest.raises(ValueError, match="anchor_labels is on device meta"):
        miner.mine_batch(
            torch.tensor(a),
            None,
            torch.tensor(c),
            3,
            anchor_labels=torch.zeros(5, device="meta"),
            candidate_labels=labels_c,
        )


def expected_first(a, c):
    return ra.HardNegativeMiner.hardest().mine(a[0], a[0], c, 2).tolist()


def test_importing_the_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import ruvector_attention, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
