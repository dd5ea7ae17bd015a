"""LocalContrastiveLoss against float64: every term, reductions, finite-difference gradients of
every input (per-anchor and shared negatives), value/gradient consistency, NaN, Hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from ruvector_attention import LocalContrastiveLoss, Reduction
from threads import with_thread_counts


def make(rng, b, n, d, shared):
    a = rng.standard_normal((b, d)).astype(np.float32)
    p = (a + 0.3 * rng.standard_normal((b, d))).astype(np.float32)
    shape = (n, d) if shared else (b, n, d)
    neg = (a.mean(0) + rng.standard_normal(shape)).astype(np.float32)
    return a, p, neg


def half_active_margin(a, p, neg):
    """A margin between the middle two gaps d(a, n) - d(a, p): about half the hinge terms are
    active, and every term is as far from its kink as those two gaps allow (asserted by the
    callers, with the active share: with a fixed margin, 0 of 12 terms were active and the
    gradient tests compared zeros with zeros)."""
    big = 1e6
    gaps = np.sort((big - ref.local_contrastive_terms(a, p, neg, big)).ravel())
    k = len(gaps) // 2
    return float((gaps[k - 1] + gaps[k]) / 2) if len(gaps) > 1 else float(gaps[0]) + 0.5


def assert_active_share_and_kinks(a, p, neg, margin, *, at_least=1 / 3, away=1e-3):
    big = 1e6
    gaps = big - ref.local_contrastive_terms(a, p, neg, big)
    assert (gaps < margin).mean() >= at_least, (gaps < margin).mean()
    assert np.abs(gaps - margin).min() > away  # finite differences stay on one side of kinks


@pytest.mark.parametrize("shared", [False, True])
def test_every_term_matches_float64(rng, shared):
    a, p, neg = make(rng, 11, 7, 9, shared)
    terms = LocalContrastiveLoss(1.5, "none").batch(a, p, neg)
    expected = ref.local_contrastive_terms(a, p, neg, 1.5)
    assert terms.shape == (11, 7) and terms.dtype == np.float32
    assert 0 < np.count_nonzero(expected) < expected.size  # both branches of the hinge occur
    ref.assert_f32_close(terms, expected, scale=10, ulps=8)


@pytest.mark.parametrize("shared", [False, True])
def test_mean_is_over_all_terms_and_sum_is_the_total(rng, shared):
    a, p, neg = make(rng, 6, 5, 4, shared)
    terms = ref.local_contrastive_terms(a, p, neg, 1.0)
    loss = LocalContrastiveLoss()
    assert loss.batch(a, p, neg) == pytest.approx(terms.mean(), rel=1e-5)
    assert loss.batch(a, p, neg, reduction="sum") == pytest.approx(terms.sum(), rel=1e-5)
    assert LocalContrastiveLoss(loss.margin, Reduction.SUM).batch(a, p, neg) == pytest.approx(
        terms.sum(), 1e-5
    )


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradients_of_every_input_match_finite_differences(rng, shared, reduction):
    b, n, d = 4, 3, 5
    a, p, neg = make(rng, b, n, d, shared)
    margin = half_active_margin(a, p, neg)
    assert_active_share_and_kinks(a, p, neg, margin)
    value, grads = LocalContrastiveLoss(margin, reduction).batch_with_gradients(a, p, neg)
    agg = np.mean if reduction == "mean" else np.sum
    terms = ref.local_contrastive_terms(a, p, neg, margin)
    checks = [
        (grads.anchors, lambda x: agg(ref.local_contrastive_terms(x, p, neg, margin)), a),
        (grads.positives, lambda x: agg(ref.local_contrastive_terms(a, x, neg, margin)), p),
        (grads.negatives, lambda x: agg(ref.local_contrastive_terms(a, p, x, margin)), neg),
    ]
    for got, f, x in checks:
        expected = ref.numeric_grad(f, x)
        assert got.shape == x.shape and got.dtype == np.float32
        ref.assert_f32_close(got, expected, scale=np.abs(expected).max() + 1.0 / b, ulps=16)
    if reduction == "none":
        ref.assert_f32_close(value, terms, scale=10)


def test_value_and_gradient_use_the_same_mean(rng):
    # The crate divides its gradient by the number of active terms; here it is all terms, so
    # value(x - h g) decreases by about h |g|^2 (a gradient consistent with its value).
    a, p, neg = make(rng, 3, 8, 6, False)
    loss = LocalContrastiveLoss(0.5)
    value, grads = loss.batch_with_gradients(a, p, neg)
    h = 1e-3
    stepped = loss.batch((a - h * grads.anchors).astype(np.float64), p, neg)
    predicted = value - h * float(np.sum(grads.anchors.astype(np.float64) ** 2))
    assert stepped == pytest.approx(predicted, abs=1e-5)


def test_one_sample_crate_form(rng):
    a = rng.standard_normal(6).astype(np.float32)
    p = (a + 0.2).astype(np.float32)
    neg = rng.standard_normal((5, 6)).astype(np.float32)
    terms = ref.local_contrastive_terms(a[None], p[None], neg, 1.0)[0]
    for mode, expected in [("mean", terms.mean()), ("sum", terms.sum())]:
        loss = LocalContrastiveLoss(1.0, mode)
        assert loss.compute(a, p, neg) == pytest.approx(expected, rel=1e-5)
        value, grad = loss.compute_with_gradients(a, p, neg)
        assert value == pytest.approx(expected, rel=1e-5)
        agg = np.mean if mode == "mean" else np.sum
        fd = ref.numeric_grad(
            lambda x, agg=agg: agg(ref.local_contrastive_terms(x[None], p[None], neg, 1.0)), a
        )
        ref.assert_f32_close(grad, fd, scale=1.0, ulps=16)
    none = LocalContrastiveLoss(1.0, "none").compute(a, p, neg)
    assert none.shape == (5,)  # every term, not only the first (the crate returns the first)
    ref.assert_f32_close(none, terms, scale=10)


def test_zero_distances_give_zero_direction_not_nan():
    a = np.zeros((1, 3), np.float32)
    p = np.zeros((1, 3), np.float32)  # |a - p| = 0
    neg = np.zeros((1, 2, 3), np.float32)  # |a - n| = 0: every term equals the margin
    value, grads = LocalContrastiveLoss(1.0).batch_with_gradients(a, p, neg)
    assert value == 1.0
    for g in grads:
        np.testing.assert_array_equal(g, 0.0)


def test_terms_at_exactly_zero_are_inactive():
    a = np.zeros((1, 1), np.float32)
    p = np.ones((1, 1), np.float32)  # d_pos = 1
    neg = np.full((1, 1, 1), 2.0, np.float32)  # d_neg = 2: term = 1 - 2 + 1 = 0
    value, grads = LocalContrastiveLoss(1.0).batch_with_gradients(a, p, neg)
    assert value == 0.0
    np.testing.assert_array_equal(grads.anchors, 0.0)


def test_margin_validation():
    assert LocalContrastiveLoss().margin == 1.0
    assert LocalContrastiveLoss(0.0).margin == 0.0
    for bad in [-0.1, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="margin"):
            LocalContrastiveLoss(bad)
    with pytest.raises(ValueError, match="reduction must be"):
        LocalContrastiveLoss(1.0, "median")


@pytest.mark.parametrize("shared", [False, True])
def test_nan_propagates_instead_of_being_clipped(rng, shared):
    a, p, neg = make(rng, 3, 4, 5, shared)
    a[1, 0] = np.nan
    value, grads = LocalContrastiveLoss(1.0, "none").batch_with_gradients(a, p, neg)
    assert np.isnan(value[1]).all()
    assert not np.isnan(value[[0, 2]]).any()
    assert np.isnan(grads.anchors[1]).all()
    assert np.isnan(LocalContrastiveLoss().batch(a, p, neg))


@pytest.mark.parametrize("shared", [False, True])
def test_thread_count_does_not_change_results(rng, shared):
    a, p, neg = make(rng, 300, 30, 40, shared)
    margin = half_active_margin(a, p, neg)
    assert_active_share_and_kinks(a, p, neg, margin, away=0.0)
    loss = LocalContrastiveLoss(margin)
    (v1, g1), (v2, g2) = with_thread_counts(lambda: loss.batch_with_gradients(a, p, neg))
    assert v1 == v2
    for x, y in zip(g1, g2):
        np.testing.assert_array_equal(x, y)


@given(
    b=st.integers(1, 8),
    n=st.integers(1, 6),
    d=st.integers(1, 33),
    shared=st.booleans(),
    margin=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shape_matches_the_reference(b, n, d, shared, margin, seed):
    a, p, neg = make(np.random.default_rng(seed), b, n, d, shared)
    terms = LocalContrastiveLoss(margin, "none").batch(a, p, neg)
    expected = ref.local_contrastive_terms(a, p, neg, margin)
    ref.assert_f32_close(terms, expected, scale=margin + 4 * np.sqrt(d), ulps=16)


@pytest.mark.parametrize("scale", [1e-22, 1e-23, 1e-25, 1e-30, 1e-38])
def test_tiny_inputs_give_the_scaled_value_and_the_same_gradients(rng, scale):
    # Inputs and margin scaled by s: the value scales by s and the gradients do not change. Squared
    # distances of such rows underflow float32 (the report: 0.663 at 1e-22, the margin alone at
    # 1e-25 and zero anchor gradients where 0.138 was expected).
    a, p = rng.standard_normal((2, 6, 8))
    n = rng.standard_normal((5, 8))
    margin = 0.8
    loss = LocalContrastiveLoss(margin=margin)
    _, grads = loss.batch_with_gradients(*(x.astype(np.float32) for x in (a, p, n)))
    terms = ref.local_contrastive_terms(a, p, n, margin)
    assert 0.3 < (terms > 0).mean() < 1.0  # active and inactive hinges both occur
    tiny = [(x * scale).astype(np.float32) for x in (a, p, n)]
    small_loss = LocalContrastiveLoss(margin=float(np.float32(margin * scale)))
    small_value, small_grads = small_loss.batch_with_gradients(*tiny)
    expected = ref.local_contrastive_terms(*tiny, float(np.float32(margin * scale))).mean()
    ref.assert_f32_close(small_value / scale, expected / scale, scale=2.0, ulps=32)
    for got, want in zip(small_grads, grads):
        assert np.abs(want).max() > 0.05
        ref.assert_f32_close(got, want, scale=np.abs(want).max(), ulps=16)
