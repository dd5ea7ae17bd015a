"""Every wrong call of the losses gets a clear exception naming the argument; fuzzed shapes and
dtypes never crash the process."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ruvector_attention.training as training
from ruvector_attention import (
    InfoNCELoss,
    LocalContrastiveLoss,
    ShapeError,
    SpectralRegularization,
)


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


BATCHED = [
    ("infonce", lambda: InfoNCELoss(0.1), True),
    ("local", lambda: LocalContrastiveLoss(1.0), False),
]


@pytest.fixture(params=BATCHED, ids=[b[0] for b in BATCHED])
def batched(request):
    _, make, allows_none = request.param
    return make(), allows_none


@pytest.mark.parametrize("with_grads", [False, True])
@pytest.mark.parametrize(
    "args, error, match",
    [
        ((f32(4), f32(4), f32(4, 2, 4)), ShapeError, r"anchors must be 2-D \(B, D\), got shape"),
        ((f32(4, 3), f32(4, 2), f32(4, 2, 3)), ShapeError, r"positives must have the shape of"),
        ((f32(0, 3), f32(0, 3), f32(0, 2, 3)), ShapeError, r"anchors is empty"),
        ((f32(4, 0), f32(4, 0), f32(4, 2, 0)), ShapeError, r"anchors is empty"),
        ((f32(4, 3), f32(4, 3), f32(5, 2, 3)), ShapeError, r"negatives must be .* B=4, D=3"),
        ((f32(4, 3), f32(4, 3), f32(4, 2, 2)), ShapeError, r"negatives must be .* B=4, D=3"),
        ((f32(4, 3), f32(4, 3), f32(2, 4)), ShapeError, r"negatives must be .* D=3"),
        ((f32(4, 3), f32(4, 3), f32(4, 0, 3)), ShapeError, r"negatives is empty"),
        ((f32(4, 3), f32(4, 3), f32(0, 3)), ShapeError, r"negatives is empty"),
        ((f32(4, 3), f32(4, 3), f32(3)), ShapeError, r"negatives must be \(B, N, D\)"),
        ((f32(4, 3), f32(4, 3), f32(1, 4, 2, 3)), ShapeError, r"negatives must be \(B, N, D\)"),
        ((np.ones((4, 3), int), f32(4, 3), f32(2, 3)), TypeError, r"anchors must contain real"),
        ((f32(4, 3), np.ones((4, 3), bool), f32(2, 3)), TypeError, r"positives must contain"),
        ((f32(4, 3), f32(4, 3), np.ones((2, 3), np.complex64)), TypeError, r"negatives must"),
        ((f32(4, 3), f32(4, 3), np.array([["a"] * 3] * 2)), TypeError, r"negatives must"),
        (([[1.0], [1.0, 2.0]], f32(2, 1), f32(2, 1)), TypeError, r"anchors must be an array"),
    ],
)
def test_batched_argument_errors(batched, args, error, match, with_grads):
    loss, _ = batched
    call = loss.batch_with_gradients if with_grads else loss.batch
    with pytest.raises(error, match=match):
        call(*args)


def test_in_batch_is_infonce_only():
    with pytest.raises(ShapeError, match="negatives is required here"):
        LocalContrastiveLoss().batch(f32(2, 3), f32(2, 3), None)
    assert isinstance(InfoNCELoss().batch(f32(2, 3), f32(2, 3), None), float)


@pytest.mark.parametrize(
    "loss", [InfoNCELoss(0.1), LocalContrastiveLoss(), training.SpectralRegularization()], ids=type
)
@pytest.mark.parametrize(
    "args, error, match",
    [
        ((f32(3, 1), f32(3), f32(2, 3)), ShapeError, r"anchor must be a non-empty 1-D vector"),
        ((f32(0), f32(0), f32(2, 0)), ShapeError, r"anchor must be a non-empty 1-D vector"),
        ((f32(3), f32(4), f32(2, 3)), ShapeError, r"positive must have the shape of anchor"),
        ((f32(3), f32(3), f32(2, 4)), ShapeError, r"negatives must be \(N, 3\)"),
        ((f32(3), f32(3), f32(3)), ShapeError, r"negatives must be \(N, 3\)"),
        ((f32(3), f32(3), f32(0, 3)), ShapeError, r"negatives is empty"),
        ((np.ones(3, np.int8), f32(3), f32(2, 3)), TypeError, r"anchor must contain real"),
    ],
)
def test_one_sample_argument_errors(loss, args, error, match):
    with pytest.raises(error, match=match):
        loss.compute(*args)
    with pytest.raises(error, match=match):
        loss.compute_with_gradients(*args)


def test_reduction_errors():
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum', 'none'"):
        InfoNCELoss().batch(f32(2, 3), f32(2, 3), reduction="max")
    with pytest.raises(ValueError, match="reduction must be"):
        InfoNCELoss().batch_with_gradients(f32(2, 3), f32(2, 3), reduction=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction must be"):
        LocalContrastiveLoss(reduction="avg")
    # Upper-case names and enum members are accepted.
    assert isinstance(InfoNCELoss().batch(f32(2, 3), f32(2, 3), reduction="SUM"), float)


def test_inputs_are_never_modified(rng):
    a = rng.standard_normal((5, 4)).astype(np.float32)
    p = rng.standard_normal((5, 4)).astype(np.float32)
    n = rng.standard_normal((5, 3, 4)).astype(np.float32)
    copies = [x.copy() for x in (a, p, n)]
    InfoNCELoss().batch_with_gradients(a, p, n)
    InfoNCELoss().batch_with_gradients(a, p, n[0])
    InfoNCELoss().batch_with_gradients(a, p)
    LocalContrastiveLoss().batch_with_gradients(a, p, n)
    for x, c in zip((a, p, n), copies):
        np.testing.assert_array_equal(x, c)


def test_read_only_inputs_are_fine():
    a, p, n = f32(3, 2), f32(3, 2), f32(3, 2, 2)
    for x in (a, p, n):
        x.flags.writeable = False
    value, grads = InfoNCELoss().batch_with_gradients(a, p, n)
    assert np.isfinite(value) and grads.anchors.flags.writeable


dtypes = st.sampled_from(
    [np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64]
)


@given(
    a=hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    p=hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    n=st.one_of(
        st.none(),
        hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
    ),
)
def test_fuzzed_shapes_and_dtypes_raise_cleanly_or_work(a, p, n):
    for loss in (InfoNCELoss(0.1), LocalContrastiveLoss()):
        for call in (loss.batch, loss.batch_with_gradients):
            try:
                call(a, p, n)
            except (TypeError, ValueError):
                pass  # ShapeError is a ValueError
    reg = SpectralRegularization()
    for x in (a, p):
        try:
            reg.variance_penalty_with_gradients(x)
        except (TypeError, ValueError):
            pass
