"""Property-based fuzzing of every public function and constructor with hostile arguments.

Whatever the arguments (any dtype, 0-size or large dims, strided, read-only or unaligned arrays,
NaN and Inf, scalars, strings, nested lists, None, huge integers), the only outcomes are a
result of the right shape and type or a documented exception (``TypeError``, ``ValueError`` and
its subclasses ``ShapeError`` / ``StateFileError``, ``MemoryError``): never a panic, a crash, a
hang, or a parameter changed by a call that failed. CI runs it derandomised.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import ruvector_attention as ra

DOCUMENTED = (TypeError, ValueError, MemoryError)

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int32,
    np.int64,
    np.uint8,
    np.bool_,
    np.complex64,
    object,
]


@st.composite
def arrays(draw, max_rank=3, max_side=5):
    """An array of any dtype and layout, possibly empty, strided, read-only or unaligned."""
    rank = draw(st.integers(0, max_rank))
    shape = tuple(draw(st.integers(0, max_side)) for _ in range(rank))
    if rank >= 2 and draw(st.booleans()):
        # A huge dimension beside an empty one: no memory, but the size products overflow 32 bits.
        huge = draw(st.sampled_from([2**31, 2**40]))
        shape = (huge, 0) if draw(st.booleans()) else (0, huge)
        return np.zeros(shape, draw(st.sampled_from([np.float32, np.float64, np.int64])))
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(st.sampled_from(["normal", "nan", "inf", "huge", "zero"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    base = np.asarray(rng.standard_normal(shape) * 3)
    if values == "nan" and base.size:
        base.flat[0] = np.nan
    elif values == "inf" and base.size:
        base.flat[-1] = np.inf
    elif values == "huge":
        base = np.asarray(base * 1e30)
    elif values == "zero":
        base = np.zeros(shape)
    with np.errstate(all="ignore"):
        arr = base.astype(dtype) if dtype is not object else base.astype(object)
    layout = draw(st.sampled_from(["c", "fortran", "strided", "readonly", "unaligned"]))
    if layout == "fortran" and arr.ndim >= 2:
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        arr.flags.writeable = False
    elif layout == "unaligned" and dtype is np.float32 and arr.size:
        raw = bytearray(arr.nbytes + 1)
        view = np.frombuffer(raw, np.float32, arr.size, offset=1).reshape(arr.shape)
        view[...] = arr
        arr = view
    return arr


anything = st.one_of(
    arrays(),
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.booleans(),
    st.lists(st.lists(st.floats(-5, 5), max_size=3), max_size=3),
    st.lists(st.floats(-5, 5), max_size=4),
)
scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(1e-45, 1e45),
    st.none(),
    st.text(max_size=2),
    st.booleans(),
    st.sampled_from([np.float32(0.5), np.int64(3), np.bool_(True), np.float64(1e-300)]),
)


def call(fn, *args, **kwargs):
    """Run ``fn``; a documented exception is an outcome, anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except DOCUMENTED:
        return None


FUZZ = settings(max_examples=150, deadline=None)


@FUZZ
@given(a=anything, p=anything, n=st.one_of(anything, st.none()), t=scalars)
def test_info_nce_any_arguments(a, p, n, t):
    loss = call(ra.InfoNCELoss, t)
    if loss is None:
        return
    result = call(loss.batch_with_gradients, a, p, n, reduction="none")
    if result is not None:
        value, grads = result
        a32 = np.asarray(a, np.float32)
        assert value.shape == (a32.shape[0],) and grads.anchors.shape == a32.shape
        p32, n32 = np.asarray(p, np.float32), None if n is None else np.asarray(n, np.float32)
        if all(np.isfinite(x).all() for x in (a32, p32) + (() if n32 is None else (n32,))):
            expected = ref.info_nce(a32, p32, n32, loss.temperature)
            ref.assert_f32_close(value, expected, scale=2 / loss.temperature, ulps=64)
    call(loss.compute, a, p, n)


@FUZZ
@given(a=anything, p=anything, n=anything, margin=scalars)
def test_local_contrastive_any_arguments(a, p, n, margin):
    loss = call(ra.LocalContrastiveLoss, margin)
    if loss is None:
        return
    result = call(loss.batch, a, p, n, reduction="none")
    if result is not None:
        assert result.ndim == 2 and result.dtype == np.float32
    call(loss.compute_with_gradients, a, p, n)


@FUZZ
@given(x=anything, graph=anything, weights=st.one_of(st.none(), anything), w=scalars)
def test_spectral_any_arguments(x, graph, weights, w):
    reg = call(ra.SpectralRegularization, w)
    if reg is None:
        return
    value = call(reg.laplacian, x, graph, weights=weights)
    assert value is None or isinstance(value, float)
    call(reg.variance_penalty_with_gradients, x)
    call(ra.Graph, graph, 3, weights=weights)
    call(ra.Graph.from_edges, graph, 4)
    call(ra.Graph.from_adjacency, graph)


@FUZZ
@given(
    strategy=st.sampled_from(["hardest", "semi_hard", "distance_weighted", "random", "nope", 3]),
    a=anything,
    p=st.one_of(st.none(), anything),
    c=anything,
    k=scalars,
    labels=st.one_of(st.none(), anything),
    knob=scalars,
)
def test_mining_any_arguments(strategy, a, p, c, k, labels, knob):
    miner = call(ra.HardNegativeMiner, strategy, margin=0.2, temperature=0.5, seed=1)
    if miner is None:
        return
    picks = call(miner.mine_batch, a, p, c, k, anchor_labels=labels, candidate_labels=labels)
    if picks is not None:
        n = np.asarray(c).shape[0]
        assert picks.dtype == np.int64 and picks.ndim == 2
        assert ((picks >= -1) & (picks < n)).all()
    call(ra.HardNegativeMiner.semi_hard, knob)
    call(ra.HardNegativeMiner.distance_weighted, knob)
    call(ra.InBatchMiner, knob)
    in_batch = ra.InBatchMiner()
    call(in_batch.get_negatives, knob, 0, 4)


@FUZZ
@given(
    kind=st.sampled_from(["SGD", "Adam", "AdamW"]),
    params=st.one_of(arrays(), st.lists(arrays(), max_size=2), anything),
    grads=st.one_of(arrays(), st.lists(arrays(), max_size=2), anything),
    lr=scalars,
    extra=scalars,
)
def test_optimizers_never_change_parameters_on_error(kind, params, grads, lr, extra):
    make = {"SGD": ra.SGD, "Adam": ra.Adam, "AdamW": ra.AdamW}[kind]
    opt = call(make, lr=lr)
    if opt is None:
        return
    items = params if isinstance(params, list) else [params]
    before = [np.array(p, copy=True) if isinstance(p, np.ndarray) else None for p in items]
    try:
        opt.step(params, grads)
    except DOCUMENTED:
        for p, b in zip(items, before):
            if b is not None:
                np.testing.assert_array_equal(p, b)  # untouched, NaN included
    call(ra.clip_grad_norm, grads, extra)
    call(opt.load_state_dict, {"optimizer": kind, "hyper": extra, "steps": extra})


@FUZZ
@given(args=st.lists(scalars, min_size=1, max_size=5))
def test_constructors_any_scalars(args):
    for make in (
        ra.LearningRateScheduler,
        ra.TemperatureAnnealing,
        ra.CurriculumScheduler.linear,
        ra.CurriculumScheduler.default_curriculum,
    ):
        call(make, *args)
    threads = ra.get_num_threads()
    try:
        call(ra.set_num_threads, *args)
    finally:
        ra.set_num_threads(threads)  # the next example (and test) runs on the count it had
    call(ra.CurriculumStage, "s", *args[:4])
    call(ra.TemperatureAnnealing, *args[:3], ra.DecayType.EXPONENTIAL)
    if len(args) >= 2:
        call(ra.SGD, lr=args[0], momentum=args[1], nesterov=args[-1])
        call(ra.Adam, lr=args[0], betas=(args[1], 0.9), eps=args[-1])


@pytest.mark.parametrize("bad", [np.int64(2**62), 2**200, -1, 1.5, "3", None, np.bool_(True)])
def test_mine_batch_k_of_any_kind(bad):
    x = np.ones((2, 3), np.float32)
    with pytest.raises(DOCUMENTED):
        ra.HardNegativeMiner.hardest().mine_batch(x, None, x, bad)
