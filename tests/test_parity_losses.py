"""Parity with the original crate: its losses run on the same generated samples.

Cases include zero vectors, identical vectors, D = 1, N = 1 and temperatures at and below the
0.01 clamp. Where the crate and this library define the same thing the results agree to float32
round-off; each deliberate difference of docs/parity.md has a test showing both behaviours.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference as ref
from parity import run_crate
from ruvector_attention.training import InfoNCELoss, LocalContrastiveLoss, SpectralRegularization

pytestmark = pytest.mark.parity

F32_EPS = float(np.finfo(np.float32).eps)


def samples(seed):
    """(anchor, positive, negatives) triples, random and degenerate."""
    rng = np.random.default_rng(seed)
    out = []
    for d, n in [(1, 1), (1, 4), (3, 1), (8, 5), (64, 16), (257, 3)]:
        a = rng.standard_normal(d).astype(np.float32)
        p = (a + 0.5 * rng.standard_normal(d)).astype(np.float32)
        neg = rng.standard_normal((n, d)).astype(np.float32)
        out.append((a, p, neg))
    d = 6
    v = rng.standard_normal(d).astype(np.float32)
    zero = np.zeros(d, np.float32)
    out += [
        (zero, v, rng.standard_normal((3, d)).astype(np.float32)),  # zero anchor
        (v, zero, rng.standard_normal((3, d)).astype(np.float32)),  # zero positive
        (v, v * 2, np.stack([zero, v, -v])),  # a zero negative; identical directions
        (v, v.copy(), np.stack([v, v])),  # all identical
    ]
    return out


TEMPERATURES = [0.001, 0.01, 0.07, 0.5]


def _case(kind, sample, **extra):
    a, p, neg = sample
    return {"kind": kind, "anchor": a, "positive": p, "negatives": neg, **extra}


def _grad_tolerance(anchor, t):
    # Gradient terms are coefficients up to 1/t times vectors of size 1/|a|.
    return 64 * F32_EPS / max(t, 0.01) / max(float(np.linalg.norm(anchor)), 1e-8) + 1e-30


def test_info_nce_matches_the_crate():
    cases = [_case("info_nce", s, temperature=t) for s in samples(1) for t in TEMPERATURES]
    results = run_crate(cases)
    assert len(results) == len(cases) > 0  # every case came back
    for case, crate in zip(cases, results):
        loss = InfoNCELoss(case["temperature"])
        a, p, neg = case["anchor"], case["positive"], case["negatives"]
        t = loss.temperature
        value = loss.compute(a, p, neg)
        assert value == pytest.approx(crate["value"], rel=1e-5, abs=16 * F32_EPS / t)
        ours, grad = loss.compute_with_gradients(a, p, neg)
        assert ours == value
        crate_grad = np.asarray(crate["grad"], np.float64)
        assert grad.shape == crate_grad.shape
        tol = _grad_tolerance(a, t)
        np.testing.assert_allclose(grad, crate_grad, rtol=1e-4, atol=tol)
        if crate["value_with_grad"] is not None and math.isfinite(crate["value_with_grad"]):
            # The crate's -ln(softmax) loses relative precision near 0; its absolute error is
            # float32 round-off of 1/t-sized logits.
            assert ours == pytest.approx(crate["value_with_grad"], abs=64 * F32_EPS / t)


def test_info_nce_value_with_gradients_stays_finite_where_the_crate_overflows():
    # t = 0.01, positive opposite the anchor, a negative aligned with it: the softmax of the
    # positive is exp(-200), zero in float32. The crate's compute_with_gradients returns
    # -ln(0) = inf (JSON null); its own compute and this library give the exact 200.
    a = np.array([1.0, 0.0], np.float32)
    p = -a
    neg = a[None, :].copy()
    (crate,) = run_crate([_case("info_nce", (a, p, neg), temperature=0.01)])
    assert crate["value_with_grad"] is None or math.isinf(crate["value_with_grad"])
    assert crate["value"] == pytest.approx(200.0, rel=1e-5)
    value, grad = InfoNCELoss(0.01).compute_with_gradients(a, p, neg)
    assert value == pytest.approx(200.0 + math.log1p(math.exp(-200.0)), rel=1e-6)
    np.testing.assert_allclose(grad, crate["grad"], atol=1e-3)


def _margin_samples(seed):
    rng = np.random.default_rng(seed)
    out = samples(seed)
    # All terms active (negatives far from the anchor is not enough: the margin is large).
    a = rng.standard_normal(5).astype(np.float32)
    out.append((a, a + 0.1, (a + rng.standard_normal((4, 5)) * 0.2).astype(np.float32)))
    return out


def test_local_contrastive_matches_the_crate_where_both_define_the_same_thing():
    cases = [
        _case("local_contrastive", s, margin=m, reduction=r)
        for s in _margin_samples(2)
        for m in [0.0, 1.0, 5.0]
        for r in ["mean", "sum"]
    ]
    results = run_crate(cases)
    assert len(results) == len(cases) > 0  # every case came back
    compared_mean_grads = 0
    for case, crate in zip(cases, results):
        loss = LocalContrastiveLoss(case["margin"], case["reduction"])
        a, p, neg = case["anchor"], case["positive"], case["negatives"]
        scale = float(np.abs(a).max() + np.abs(p).max() + np.abs(neg).max()) * math.sqrt(a.size)
        tol = 64 * F32_EPS * (scale + case["margin"])
        assert loss.compute(a, p, neg) == pytest.approx(crate["value"], abs=tol)
        value, grad = loss.compute_with_gradients(a, p, neg)
        terms = ref.local_contrastive_terms(a[None], p[None], neg, case["margin"])[0]
        all_active = bool(np.all(terms > 1e-4))
        if case["reduction"] == "sum" or all_active:
            assert value == pytest.approx(crate["value_with_grad"], abs=tol)
            np.testing.assert_allclose(grad, crate["grad"], atol=64 * F32_EPS * len(neg))
            compared_mean_grads += case["reduction"] == "mean"
    assert compared_mean_grads >= 3


def test_local_contrastive_mean_gradient_divides_by_all_terms_not_active_ones():
    a = np.zeros(2, np.float32)
    p = np.array([1.0, 0.0], np.float32)
    neg = np.array([[0.0, 1.5], [5.0, 0.0]], np.float32)  # terms: 0.5 (active) and 0 (inactive)
    (crate,) = run_crate([_case("local_contrastive", (a, p, neg), margin=1.0, reduction="mean")])
    assert crate["value"] == pytest.approx(0.25)  # its compute: mean over all terms
    assert crate["value_with_grad"] == pytest.approx(0.5)  # its gradient form: active terms only
    value, grad = LocalContrastiveLoss(1.0).compute_with_gradients(a, p, neg)
    assert value == pytest.approx(0.25)
    np.testing.assert_allclose(grad, np.asarray(crate["grad"]) / 2, rtol=1e-6)


def test_local_contrastive_none_returns_every_term_where_the_crate_returns_the_first():
    a = np.zeros(2, np.float32)
    p = np.array([1.0, 0.0], np.float32)
    neg = np.array([[0.0, 1.5], [0.0, 0.25]], np.float32)
    (crate,) = run_crate([_case("local_contrastive", (a, p, neg), margin=1.0, reduction="none")])
    ours = LocalContrastiveLoss(1.0, "none").compute(a, p, neg)
    assert ours.shape == (2,)
    assert ours[0] == pytest.approx(crate["value"])
    np.testing.assert_allclose(ours, [0.5, 1.75])


def test_spectral_compute_batch_matches_the_crate():
    rng = np.random.default_rng(3)
    shapes = [(1, 1), (2, 1), (1, 5), (7, 3), (50, 16), (4, 257)]
    cases = []
    for n, d in shapes:
        x = (rng.standard_normal((n, d)) * rng.uniform(0.1, 3.0, size=d)).astype(np.float32)
        cases.append({"kind": "spectral", "weight": 0.3, "embeddings": list(x)})
    x = np.ones((5, 4), np.float32)  # identical vectors: zero penalty
    cases.append({"kind": "spectral", "weight": 1.0, "embeddings": list(x)})
    sample = samples(4)[3]
    stack = np.vstack([sample[0], sample[1], sample[2]])
    cases.append(
        {
            "kind": "spectral",
            "weight": 2.0,
            "embeddings": list(stack),
            "sample": {"anchor": sample[0], "positive": sample[1], "negatives": sample[2]},
        }
    )
    results = run_crate(cases)
    assert len(results) == len(cases) > 0  # every case came back
    for case, crate in zip(cases, results):
        x = np.array(case["embeddings"], np.float32)
        reg = SpectralRegularization(case["weight"])
        ours = reg.compute_batch(x)
        # The crate sums variances in float32; allow its round-off relative to the variances.
        var_scale = float(np.var(x.astype(np.float64), axis=0).max()) ** 2 * case["weight"]
        assert ours == pytest.approx(crate["compute_batch"], rel=1e-4, abs=1e-6 * var_scale + 1e-12)
    # The one-sample form applies the penalty to the stack; the crate's gradient is zeros.
    crate = results[-1]["sample"]
    reg = SpectralRegularization(2.0)
    value, grad = reg.compute_with_gradients(*sample)
    assert value == pytest.approx(crate["value"], rel=1e-4)
    assert np.all(np.asarray(crate["grad"]) == 0.0)
    assert np.abs(grad).max() > 0.0
