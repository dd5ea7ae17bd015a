"""Every loss, gradient and mining strategy at input scales from 1e-15 to 1e30, against float64.

Squared norms and distances of rows beyond about 1.8e19 overflow float32; the kernels rescale such
rows by powers of two (exact), so values stay finite and picks stay those of the float64 ranking.
Below the 1e-8 norm clamp, cosine similarity follows PyTorch's convention (the reference applies
the same clamp).
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
import ruvector_attention as ra

SCALES = [1e-15, 1e-6, 1.0, 1e12, 1e20, 1e30]
LAYOUTS = ["per_anchor", "shared", "in_batch"]


#: The float32 error bound of a gradient element, in epsilons of the largest one: each element is
#: a sum over D products (dot products, distances) and N + 1 logits, every operation rounding
#: once; 4x over that for the float64 finite differences' own error at the smallest scales
#: (measured worst: 10 epsilons, InfoNCE at 1e-15; the old bound was 2000).
GRAD_ULPS = 4 * (6 + 4 + 2)


def inputs(seed, scale, layout, b=5, n=4, d=6):
    rng = np.random.default_rng(seed)
    a, p = rng.standard_normal((2, b, d)) * scale
    neg = {
        "per_anchor": rng.standard_normal((b, n, d)) * scale,
        "shared": rng.standard_normal((n, d)) * scale,
        "in_batch": None,
    }[layout]
    f32 = lambda x: None if x is None else x.astype(np.float32)  # noqa: E731
    return f32(a), f32(p), f32(neg)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_info_nce_value_and_gradients_at_every_scale(scale, layout):
    a, p, neg = inputs(1, scale, layout)
    t = 0.2
    value, grads = ra.InfoNCELoss(t).batch_with_gradients(a, p, neg, reduction="sum")
    expected = ref.info_nce(a, p, neg, t).sum()
    assert np.isfinite(value)
    ref.assert_f32_close(value, expected, scale=len(a) / t, ulps=64)
    # d value / d anchors by central differences in float64, with a step relative to the scale;
    # below the 1e-8 clamp the similarity is linear in each vector, and a step of 1e-11 (still
    # far inside the clamp) keeps float64's cancellation small.
    h = 1e-6 * scale if scale >= 1e-8 else 1e-11
    f = lambda x: ref.info_nce(x, p, neg, t).sum()  # noqa: E731
    numeric = ref.numeric_grad(f, a.astype(np.float64), h=h)
    assert np.isfinite(grads.anchors).all()
    ref.assert_f32_close(grads.anchors, numeric, scale=np.abs(numeric).max(), ulps=GRAD_ULPS)
    g = ref.numeric_grad(lambda x: ref.info_nce(a, x, neg, t).sum(), p.astype(np.float64), h)
    ref.assert_f32_close(grads.positives, g, scale=np.abs(g).max(), ulps=GRAD_ULPS)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("layout", ["per_anchor", "shared"])
def test_local_contrastive_value_and_gradients_at_every_scale(scale, layout):
    a, p, neg = inputs(2, scale, layout)
    margin = 0.5 * scale
    loss = ra.LocalContrastiveLoss(margin=min(margin, 3e38))
    value, grads = loss.batch_with_gradients(a, p, neg, reduction="sum")
    expected = ref.local_contrastive_terms(a, p, neg, margin).sum()
    assert np.isfinite(value)
    ref.assert_f32_close(value, expected, scale=8 * scale * a.size, ulps=64)
    # The margin loss is homogeneous: scaled inputs give the same gradients at every scale (tiny
    # inputs are scaled up by a power of two before their squares can underflow).
    f = lambda x: ref.local_contrastive_terms(x, p, neg, margin).sum()  # noqa: E731
    numeric = ref.numeric_grad(f, a.astype(np.float64), h=1e-7 * scale)
    assert np.abs(numeric).max() > 0.1
    ref.assert_f32_close(grads.anchors, numeric, scale=np.abs(numeric).max(), ulps=GRAD_ULPS)


@pytest.mark.parametrize("scale", SCALES)
def test_hardest_and_semi_hard_picks_equal_float64_at_every_scale(scale):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((20, 8)) * scale).astype(np.float32)
    p = (a + 0.3 * scale * rng.standard_normal((20, 8))).astype(np.float32)
    c = (rng.standard_normal((60, 8)) * scale).astype(np.float32)
    hardest = ra.HardNegativeMiner.hardest().mine_batch(a, None, c, 5)
    np.testing.assert_array_equal(hardest, ref.ranked(ref.cosine_matrix(a, c), 5))
    margin = 1.5 * scale
    semi = ra.HardNegativeMiner.semi_hard(margin).mine_batch(a, p, c, 5)
    expected, _, d_an, d_ap = ref.semi_hard(a, p, c, 5, margin)
    edge = np.minimum(np.abs(d_an - d_ap[:, None]), np.abs(d_an - d_ap[:, None] - margin))
    for i in range(len(a)):
        if edge[i].min() > 1e-4 * scale:  # away from float rounding at the window's edges
            np.testing.assert_array_equal(semi[i], expected[i])


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(
    "make",
    [
        lambda: ra.HardNegativeMiner.distance_weighted(0.5, seed=4),
        lambda: ra.HardNegativeMiner.distance_weighted(weighting="wu", seed=4),
        lambda: ra.HardNegativeMiner.random(seed=4),
    ],
)
def test_samplers_give_valid_distinct_picks_at_every_scale(scale, make):
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((10, 8)) * scale).astype(np.float32)
    c = (rng.standard_normal((40, 8)) * scale).astype(np.float32)
    picks = make().mine_batch(a, None, c, 6)
    assert picks.shape == (10, 6) and ((picks >= -1) & (picks < 40)).all()
    for row in picks:
        real = row[row >= 0]
        assert len(set(real.tolist())) == len(real)
    if scale < 1e-8:
        return  # below the norm clamp every similarity is ~0 (PyTorch's convention)
    # The sampling distribution does not depend on the scale: the same seed draws the same
    # picks as at scale 1, up to rounding of near-equal keys.
    base = make().mine_batch(
        (a.astype(np.float64) / scale).astype(np.float32),
        None,
        (c.astype(np.float64) / scale).astype(np.float32),
        6,
    )
    assert (picks == base).mean() > 0.9


@pytest.mark.parametrize("layout", ["shared", "in_batch"])
def test_pooled_info_nce_rows_of_mixed_scales_in_one_batch(layout):
    # The pooled kernel conditions each row as it normalises it: rows needing a power of two
    # (1e20, 1e30) sit beside ordinary and tiny rows in every input, and every gradient (the
    # shared pool's included) must still match float64.
    rng = np.random.default_rng(7)
    b, n, d, t = 9, 7, 5, 0.3
    row_scales = lambda rows: np.array([1e-6, 1.0, 1e20, 1e30, 3.0])[np.arange(rows) % 5]  # noqa: E731
    a = (rng.standard_normal((b, d)) * row_scales(b)[:, None]).astype(np.float32)
    p = (rng.standard_normal((b, d)) * row_scales(b)[::-1, None]).astype(np.float32)
    neg = (rng.standard_normal((n, d)) * row_scales(n)[:, None]).astype(np.float32)
    neg = neg if layout == "shared" else None
    value, grads = ra.InfoNCELoss(t).batch_with_gradients(a, p, neg, reduction="sum")
    ref.assert_f32_close(value, ref.info_nce(a, p, neg, t).sum(), scale=b / t, ulps=64)
    inputs = {"anchors": a, "positives": p} | ({"negatives": neg} if neg is not None else {})
    for name, x in inputs.items():

        def f(v, name=name):
            args = {**inputs, name: v}
            return ref.info_nce(args["anchors"], args["positives"], args.get("negatives"), t).sum()

        x64 = x.astype(np.float64)
        # One step per row, relative to that row's size.
        h = 1e-6 * np.abs(x64).max(axis=1, keepdims=True)
        numeric = np.zeros_like(x64)
        for idx in np.ndindex(x64.shape):
            step = h[idx[0], 0]
            up, down = x64.copy(), x64.copy()
            up[idx] += step
            down[idx] -= step
            numeric[idx] = (f(up) - f(down)) / (2 * step)
        got = getattr(grads, name)
        # Compare each row against its own size: a row's gradient scales as 1 / its norm.
        for row_got, row_numeric in zip(got, numeric):
            ref.assert_f32_close(
                row_got, row_numeric, scale=np.abs(row_numeric).max() + 1e-300, ulps=4000
            )
