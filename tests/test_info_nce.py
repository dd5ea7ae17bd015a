"""InfoNCE against float64 references: values, finite-difference gradients of every input, the three
negative forms, reductions, extreme temperatures, degenerate vectors, NaN, threads, Hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference as ref
import ruvector_attention as ra
from ruvector_attention import Gradients, InfoNCELoss, Reduction, ShapeError
from threads import with_thread_counts

FORMS = ["per_anchor", "shared", "in_batch"]


def make(rng, b, n, d, form, scale=1.0):
    a = (rng.standard_normal((b, d)) * scale).astype(np.float32)
    p = (a + 0.5 * rng.standard_normal((b, d))).astype(np.float32)
    if form == "per_anchor":
        neg = rng.standard_normal((b, n, d)).astype(np.float32)
    elif form == "shared":
        neg = rng.standard_normal((n, d)).astype(np.float32)
    else:
        neg = None
    return a, p, neg


def grad_scale(x, t, factor=1.0):
    """The size of the terms an InfoNCE gradient is summed from: softmax coefficients (up to
    factor / t) times unit vectors divided by the row's norm. Round-off is relative to these,
    since the sum cancels (the coefficients of a row add up to zero)."""
    norms = np.linalg.norm(np.asarray(x, np.float64).reshape(-1, x.shape[-1]), axis=1)
    return factor / t / max(norms.min(), 1e-8)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("t", [0.01, 0.07, 1.0])
def test_per_row_values_match_float64(rng, form, t):
    a, p, neg = make(rng, 37, 19, 24, form)
    got = InfoNCELoss(t).batch(a, p, neg, reduction="none")
    expected = ref.info_nce(a, p, neg, t)
    assert got.dtype == np.float32 and got.shape == (37,)
    # Logits reach 1/t; their f32 round-off is what the loss can carry.
    ref.assert_f32_close(got, expected, scale=2.0 / t, ulps=16)


@pytest.mark.parametrize("form", FORMS)
def test_reductions(rng, form):
    a, p, neg = make(rng, 9, 5, 7, form)
    loss = InfoNCELoss(0.2)
    rows = ref.info_nce(a, p, neg, 0.2)
    mean = loss.batch(a, p, neg)
    total = loss.batch(a, p, neg, reduction=Reduction.SUM)
    assert isinstance(mean, float) and isinstance(total, float)
    assert mean == pytest.approx(rows.mean(), rel=1e-5)
    assert total == pytest.approx(rows.sum(), rel=1e-5)
    with pytest.raises(ValueError, match="reduction must be"):
        loss.batch(a, p, neg, reduction="avg")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
# 0.1 and 0.02 sit either side of the pooled kernels' switch from the fixed shift 1/t to each
# row's largest logit (t = 0.05).
@pytest.mark.parametrize("t", [0.1, 0.02])
def test_gradients_of_every_input_match_finite_differences(rng, form, reduction, t):
    b, n, d = 5, 4, 6
    a, p, neg = make(rng, b, n, d, form)
    reduce = np.mean if reduction == "mean" else np.sum
    value, grads = InfoNCELoss(t).batch_with_gradients(a, p, neg, reduction=reduction)
    assert isinstance(grads, Gradients)

    def f_a(x):
        return reduce(ref.info_nce(x, p, neg, t))

    def f_p(x):
        return reduce(ref.info_nce(a, x, neg, t))

    def f_n(x):
        return reduce(ref.info_nce(a, p, x, t))

    factor = 1 / b if reduction == "mean" else 1.0
    for got, f, x in [(grads.anchors, f_a, a), (grads.positives, f_p, p)]:
        expected = ref.numeric_grad(f, x)
        assert got.dtype == np.float32 and got.shape == x.shape
        ref.assert_f32_close(got, expected, scale=grad_scale(x, t, factor), ulps=16)
    if neg is None:
        assert grads.negatives is None
    else:
        expected = ref.numeric_grad(f_n, neg)
        ref.assert_f32_close(grads.negatives, expected, scale=grad_scale(neg, t, factor), ulps=16)
    if reduction == "none":
        ref.assert_f32_close(value, ref.info_nce(a, p, neg, t), scale=20, ulps=16)


def test_in_batch_equals_per_anchor_with_the_gathered_negatives(rng):
    b, d, t = 13, 16, 0.05
    a, p, _ = make(rng, b, 0, d, "in_batch")
    gathered = np.stack([np.delete(p, i, axis=0) for i in range(b)])  # (B, B-1, D)
    loss = InfoNCELoss(t)
    v_in, g_in = loss.batch_with_gradients(a, p, None, reduction="none")
    v_pa, g_pa = loss.batch_with_gradients(a, p, gathered, reduction="none")
    ref.assert_f32_close(v_in, v_pa, scale=2 / t, ulps=16)
    ref.assert_f32_close(g_in.anchors, g_pa.anchors, scale=np.abs(g_pa.anchors).max(), ulps=64)
    # positives[j] receives its own term plus its role as a negative of every other anchor.
    scattered = g_pa.positives.astype(np.float64)
    for i in range(b):
        others = np.delete(np.arange(b), i)
        scattered[others] += g_pa.negatives[i]
    ref.assert_f32_close(g_in.positives, scattered, scale=np.abs(scattered).max(), ulps=64)


@pytest.mark.parametrize("form", ["per_anchor", "shared"])
def test_permuting_negatives_changes_nothing_but_their_order(rng, form):
    a, p, neg = make(rng, 6, 11, 8, form)
    perm = rng.permutation(11)
    shuffled = neg[:, perm] if form == "per_anchor" else neg[perm]
    loss = InfoNCELoss(0.1)
    v1, g1 = loss.batch_with_gradients(a, p, neg, reduction="none")
    v2, g2 = loss.batch_with_gradients(a, p, shuffled, reduction="none")
    ref.assert_f32_close(v2, v1, scale=10, ulps=8)
    ref.assert_f32_close(g2.anchors, g1.anchors, scale=np.abs(g1.anchors).max(), ulps=16)
    inverse = np.argsort(perm)
    back = g2.negatives[:, inverse] if form == "per_anchor" else g2.negatives[inverse]
    ref.assert_f32_close(back, g1.negatives, scale=np.abs(g1.negatives).max(), ulps=16)


def test_temperature_is_clamped_like_the_crate():
    assert InfoNCELoss(0.001).temperature == 0.01
    assert InfoNCELoss().temperature == 0.07
    assert InfoNCELoss(0.5).temperature == 0.5
    for bad in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="temperature"):
            InfoNCELoss(bad)
    with pytest.raises(TypeError, match="temperature"):
        InfoNCELoss("0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize("form", FORMS)
def test_temperature_001_with_aligned_unit_vectors_is_finite_and_exact(rng, form):
    # Logits up to 100: a naive exp overflows float32 at 88.
    d = 32
    a = rng.standard_normal((8, d)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    p = a.copy()
    neg = None
    if form == "per_anchor":
        neg = np.repeat(-a[:, None, :], 3, axis=1)
    elif form == "shared":
        neg = -a[:3]
    value, grads = InfoNCELoss(0.01).batch_with_gradients(a, p, neg, reduction="none")
    assert np.all(np.isfinite(value))
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)
    ref.assert_f32_close(value, ref.info_nce(a, p, neg, 0.01), scale=200, ulps=16)


@pytest.mark.parametrize("form", FORMS)
def test_zero_and_identical_vectors(form):
    d = 5
    a = np.zeros((3, d), np.float32)
    a[1] = 1.0
    p = np.ones((3, d), np.float32)
    p[2] = 0.0
    neg = {"per_anchor": np.ones((3, 2, d), np.float32), "shared": np.zeros((2, d), np.float32)}
    n = neg.get(form)
    value, grads = InfoNCELoss(0.1).batch_with_gradients(a, p, n, reduction="none")
    ref.assert_f32_close(value, ref.info_nce(a, p, n, 0.1), scale=20, ulps=16)
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)


@pytest.mark.parametrize("form", FORMS)
def test_nan_and_inf_propagate_without_crashing(rng, form):
    a, p, neg = make(rng, 4, 3, 6, form)
    a[1, 2] = np.nan
    p[2, 0] = np.inf
    value, grads = InfoNCELoss(0.1).batch_with_gradients(a, p, neg, reduction="none")
    assert np.isnan(value[1]) and np.isnan(value[2])
    assert np.isnan(InfoNCELoss(0.1).batch(a, p, neg))
    if form == "per_anchor":
        # Rows are independent: the others stay exact.
        with np.errstate(invalid="ignore"):
            expected = ref.info_nce(a, p, neg, 0.1)[[0, 3]]
        ref.assert_f32_close(value[[0, 3]], expected, scale=20)
    assert np.isnan(grads.anchors[1]).all()


@pytest.mark.parametrize("form", FORMS)
def test_results_do_not_depend_on_the_thread_count(rng, form):
    # Big enough to run in parallel and, for the pooled forms, in several chunks.
    a, p, neg = make(rng, 700, 40, 64, form)
    loss = InfoNCELoss(0.05)
    (v1, g1), (v2, g2) = with_thread_counts(lambda: loss.batch_with_gradients(a, p, neg))
    assert v1 == v2
    for x, y in zip(g1, g2):
        if x is not None:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("form", ["shared", "in_batch"])
@pytest.mark.parametrize("t", [0.5, 0.02])
def test_large_pools_stream_column_blocks_and_stay_exact(rng, form, t):
    # More than 16384 pool rows: the similarity panel is streamed in column blocks and the
    # gradient pass recomputes it; several pool-gradient chunks are reduced in order. At 0.02
    # each row's largest logit is found by a pass of its own first.
    b = 600 if form == "shared" else 17000
    n, d = 17000, 3
    a = rng.standard_normal((b, d)).astype(np.float32)
    p = rng.standard_normal((b, d)).astype(np.float32)
    neg = rng.standard_normal((n, d)).astype(np.float32) if form == "shared" else None
    value, grads = InfoNCELoss(t).batch_with_gradients(a, p, neg, reduction="none")

    def row_loss(x, i):
        # Row i alone; in-batch it is the shared form with the other positives as its pool.
        if neg is None:
            return ref.info_nce(x[None], p[i : i + 1], np.delete(p, i, axis=0), t)[0]
        return ref.info_nce(x[None], p[i : i + 1], neg, t)[0]

    for i in [0, 1, b // 2, b - 1]:
        ref.assert_f32_close(value[i], row_loss(a[i], i), scale=2 / t, ulps=16)
        # Only row i's loss depends on anchor i.
        expected = ref.numeric_grad(lambda x, i=i: row_loss(x, i), a[i])
        ref.assert_f32_close(grads.anchors[i], expected, scale=grad_scale(a[i : i + 1], t), ulps=16)
    # Pool-side gradients sum over every anchor: compare with the float64 formula.
    pool = neg if neg is not None else p
    expected_pool = ref.info_nce_pool_gradient(a, p, neg, t)
    got = grads.negatives if neg is not None else grads.positives
    assert got.shape == pool.shape
    ref.assert_f32_close(got, expected_pool, scale=grad_scale(pool, t), ulps=64)


@pytest.mark.parametrize("form", ["shared", "in_batch"])
def test_batches_past_the_whole_panel_reduce_row_block_chunks_exactly(rng, form):
    # 2100 x 2100 similarities are more than one kept panel (2^22 floats), so each row block
    # keeps its own and the pool gradient is summed over chunks of row blocks; smaller problems
    # (the other tests) keep the whole panel and take the pool gradient in one product.
    b = n = 2100
    d, t = 3, 0.1
    a = rng.standard_normal((b, d)).astype(np.float32)
    p = rng.standard_normal((b, d)).astype(np.float32)
    neg = rng.standard_normal((n, d)).astype(np.float32) if form == "shared" else None
    loss = InfoNCELoss(t)
    (v1, g1), (v2, g2) = with_thread_counts(
        lambda: loss.batch_with_gradients(a, p, neg, reduction="none")
    )
    np.testing.assert_array_equal(v1, v2)
    for x, y in zip(g1, g2):
        if x is not None:
            np.testing.assert_array_equal(x, y)
    pool = neg if neg is not None else p
    got = g1.negatives if neg is not None else g1.positives
    ref.assert_f32_close(
        got, ref.info_nce_pool_gradient(a, p, neg, t), scale=grad_scale(pool, t), ulps=64
    )


def test_one_sample_crate_form(rng):
    d, n, t = 10, 4, 0.07
    a = rng.standard_normal(d).astype(np.float32)
    p = rng.standard_normal(d).astype(np.float32)
    neg = rng.standard_normal((n, d)).astype(np.float32)
    loss = InfoNCELoss(t)
    value = loss.compute(a, p, neg)
    value2, grad = loss.compute_with_gradients(a, p, neg)
    expected = float(ref.info_nce(a[None], p[None], neg[None], t)[0])
    assert isinstance(value, float) and value == pytest.approx(expected, rel=1e-5)
    assert value2 == value
    fd = ref.numeric_grad(lambda x: ref.info_nce(x[None], p[None], neg[None], t)[0], a)
    assert grad.shape == (d,) and grad.dtype == np.float32
    ref.assert_f32_close(grad, fd, scale=np.abs(fd).max(), ulps=64)


def test_float64_and_strided_inputs_are_accepted(rng):
    a, p, neg = make(rng, 6, 3, 8, "per_anchor")
    loss = InfoNCELoss(0.1)
    base = loss.batch(a, p, neg)
    assert loss.batch(a.astype(np.float64), p.tolist(), neg) == pytest.approx(base, rel=1e-6)
    wide = np.zeros((6, 16), np.float32)
    wide[:, ::2] = a
    assert loss.batch(wide[:, ::2], p, neg) == base


@given(
    b=st.integers(1, 9),
    n=st.integers(1, 7),
    d=st.integers(1, 40),
    form=st.sampled_from(FORMS),
    t=st.floats(0.005, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shape_matches_the_reference(b, n, d, form, t, seed):
    assume(form != "in_batch" or b >= 2)  # B = 1 has no in-batch negatives: ShapeError
    rng = np.random.default_rng(seed)
    a, p, neg = make(rng, b, n, d, form, scale=rng.uniform(0.01, 100))
    value, grads = InfoNCELoss(t).batch_with_gradients(a, p, neg, reduction="none")
    teff = max(t, 0.01)
    ref.assert_f32_close(value, ref.info_nce(a, p, neg, t), scale=2 / teff, ulps=32)
    assert grads.anchors.shape == a.shape and grads.positives.shape == p.shape
    if neg is not None:
        assert grads.negatives.shape == neg.shape


def test_in_batch_info_nce_with_one_row_is_a_shape_error():
    x = np.ones((1, 4), np.float32)
    with pytest.raises(ShapeError, match="at least 2"):
        ra.InfoNCELoss(0.1).batch_with_gradients(x, x)
    with pytest.raises(ShapeError, match="at least 2"):
        ra.InfoNCELoss(0.1).batch(x, x)
