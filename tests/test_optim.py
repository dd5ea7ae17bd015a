"""Optimizers against float64 references of PyTorch's formulas, state handling and resume."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import ruvector_attention as ra
import ruvector_attention.training as training
from platforms import simd_paths
from ruvector_attention import SGD, Adam, AdamW

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True),
]

ADAM_CONFIGS = [
    dict(lr=1e-3),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=0.5, betas=(0.0, 0.5)),
]


def _random_state(rng, shape):
    p = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(12)]
    return p, grads


@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_each_step_matches_pytorch_formula(rng, config):
    p, grads = _random_state(rng, (7, 33))
    opt = SGD(**config)
    buf = None
    for g in grads:
        expected, buf = ref.sgd_step(p, g, buf, **config)
        opt.step(p, g)
        ref.assert_f32_close(p, expected, scale=np.abs(g).max() * config["lr"] * 10)
        if buf is not None:
            # The reference continues from the library's float32 buffer, one step at a time.
            state = opt.state_dict()["state"]["momentum_buffer"][0]
            ref.assert_f32_close(state, buf, scale=np.abs(g).max() * 10)
            buf = state


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("config", ADAM_CONFIGS)
def test_adam_each_step_matches_pytorch_formula(rng, config, decoupled):
    p, grads = _random_state(rng, (1000,))
    cls = AdamW if decoupled else Adam
    opt = cls(**config)
    # AdamW's default weight decay is 0.01, Adam's 0: the reference takes the optimizer's own.
    config = {**config, "weight_decay": opt.weight_decay}
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        expected, m64, v64 = ref.adam_step(p, g, m, v, t, decoupled=decoupled, **config)
        opt.step(p, g)
        lr = config["lr"]
        ref.assert_f32_close(p, expected, scale=lr * 50)
        state = opt.state_dict()["state"]
        ref.assert_f32_close(state["exp_avg"][0], m64, scale=np.abs(g).max())
        ref.assert_f32_close(state["exp_avg_sq"][0], v64, scale=float(np.max(g * g)))
        m, v = state["exp_avg"][0], state["exp_avg_sq"][0]


def test_adamw_decay_is_decoupled_and_adam_decay_is_l2():
    # With a zero gradient, AdamW only decays; Adam's L2 term becomes a gradient that Adam
    # normalises, so it moves every weight by lr on the first step.
    w_adamw = np.full(5, 2.0, dtype=np.float32)
    w_adam = w_adamw.copy()
    AdamW(lr=0.1, weight_decay=0.5).step(w_adamw, np.zeros(5, np.float32))
    Adam(lr=0.1, weight_decay=0.5).step(w_adam, np.zeros(5, np.float32))
    np.testing.assert_allclose(w_adamw, 2.0 * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(w_adam, 2.0 - 0.1, rtol=1e-6)


def test_many_arrays_in_one_call_equal_separate_optimizers(rng):
    shapes = [(3,), (4, 5), (2, 3, 4), (1,), (0,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    singles = [p.copy() for p in params]
    together = AdamW(lr=0.01)
    apart = [AdamW(lr=0.01) for _ in shapes]
    for _ in range(5):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        together.step(params, grads)
        for opt, p, g in zip(apart, singles, grads):
            opt.step(p, g)
    for a, b in zip(params, singles):
        np.testing.assert_array_equal(a, b)


def test_step_updates_the_callers_own_memory_through_views():
    base = np.zeros((4, 8), dtype=np.float32)
    row = base[1]  # a C-contiguous view into the caller's array
    SGD(lr=1.0).step(row, np.ones(8, np.float32))
    assert np.all(base[1] == -1.0)
    assert np.all(base[[0, 2, 3]] == 0.0)


def test_float64_and_strided_grads_are_converted_once():
    p1 = np.ones(6, np.float32)
    p2 = np.ones(6, np.float32)
    g64 = np.linspace(-1, 1, 12)[::2]  # float64 and strided
    SGD(lr=0.5).step(p1, g64)
    SGD(lr=0.5).step(p2, np.ascontiguousarray(g64, dtype=np.float32))
    np.testing.assert_array_equal(p1, p2)


sizes = st.one_of(
    st.integers(1, 64),
    st.integers(65, 70_000),
    st.integers(300_000, 2_500_000),
)


#: Steps of the property tests: at step 1 Adam moves by about lr * sign(g) whatever its moments
#: hold, so only later steps test the moments and the bias correction.
STEPS = 4


@given(size=sizes, seed=st.integers(0, 2**32 - 1), decoupled=st.booleans())
def test_adam_any_size_matches_reference_over_several_steps(size, seed, decoupled):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(size).astype(np.float32)
    cls = AdamW if decoupled else Adam
    opt = cls(lr=0.01, weight_decay=0.02)
    # The reference carries its own float64 parameters and moments from step to step.
    ref_p, m, v = p.astype(np.float64), np.zeros(size), np.zeros(size)
    l2 = 0.0 if decoupled else 0.02
    # The round-off allowed so far, per element: an error made at one step stays in the
    # parameter at the next (size 301270, seed 0: a cancellation at step 1 still showed at 2).
    carried = np.zeros(size)
    for t in range(1, STEPS + 1):
        g = (rng.standard_normal(size) * 10.0 ** rng.uniform(-4, 2)).astype(np.float32)
        # g + wd * p can cancel; the update g_eff / (|g_eff| + eps) then inherits float32's
        # relative error of g_eff, magnified by this condition number.
        g64 = g.astype(np.float64)
        condition = (np.abs(g64) + l2 * np.abs(ref_p)) / (np.abs(g64 + l2 * ref_p) + 1e-8)
        carried += 0.5 + 0.01 * condition
        ref_p, m, v = ref.adam_step(
            ref_p, g, m, v, t, lr=0.01, weight_decay=0.02, decoupled=decoupled
        )
        opt.step(p, g)
        ref.assert_f32_close(p, ref_p, scale=carried, ulps=8)


@given(size=sizes, seed=st.integers(0, 2**32 - 1), nesterov=st.booleans())
def test_sgd_any_size_matches_reference_over_several_steps(size, seed, nesterov):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(size).astype(np.float32)
    opt = SGD(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
    ref_p, buf = p.astype(np.float64), None
    for t in range(1, STEPS + 1):
        g = rng.standard_normal(size).astype(np.float32)
        ref_p, buf = ref.sgd_step(
            ref_p, g, buf, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov
        )
        opt.step(p, g)
        ref.assert_f32_close(p, ref_p, scale=1.0 + t, ulps=8 * t)


@given(
    shapes=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 40)), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    max_norm=st.floats(0.0, 50.0),
)
def test_clip_grad_norm_matches_pytorch_formula(shapes, seed, max_norm):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    before = [g.copy() for g in grads]
    norm = ra.clip_grad_norm(grads, max_norm)
    expected_norm = ref.global_norm(before)
    assert norm == pytest.approx(expected_norm, rel=1e-12, abs=1e-12)
    coef = min(1.0, max_norm / (expected_norm + 1e-6))
    for g, b in zip(grads, before):
        ref.assert_f32_close(g, b.astype(np.float64) * coef, ulps=2)


def test_clip_grad_norm_large_is_exact_and_thread_independent(rng):
    g = rng.standard_normal(3_000_000).astype(np.float32)
    expected = ref.global_norm([g])
    a, b = g.copy(), g.copy()
    threads = ra.get_num_threads()
    try:
        ra.set_num_threads(1)
        n1 = ra.clip_grad_norm(a, 10.0)
        ra.set_num_threads(2)
        n2 = ra.clip_grad_norm(b, 10.0)
    finally:
        ra.set_num_threads(threads)
    assert n1 == n2
    assert n1 == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(a, b)
    assert ref.global_norm([a]) == pytest.approx(10.0, rel=1e-5)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_resume_from_state_dict_is_bit_exact(rng, cls):
    kwargs = dict(lr=0.01, momentum=0.9, nesterov=True) if cls is SGD else dict(lr=0.01)
    shapes = [(17,), (3, 5)]
    params0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(10)]

    straight = [p.copy() for p in params0]
    opt = cls(**kwargs)
    for g in grads:
        opt.step(straight, g)

    resumed = [p.copy() for p in params0]
    first = cls(**kwargs)
    for g in grads[:4]:
        first.step(resumed, g)
    saved = first.state_dict()
    second = cls(lr=0.5)
    second.load_state_dict(saved)
    for g in grads[4:7]:
        second.step(resumed, g)
    third = pickle.loads(pickle.dumps(second))
    for g in grads[7:]:
        third.step(resumed, g)

    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert third.steps == opt.steps == 10


def test_state_dict_is_a_copy():
    opt = Adam(lr=0.1)
    w = np.ones(3, np.float32)
    opt.step(w, np.ones(3, np.float32))
    saved = opt.state_dict()
    saved["state"]["exp_avg"][0][:] = 123.0
    assert np.all(opt.state_dict()["state"]["exp_avg"][0] != 123.0)


def test_reset_forgets_state_and_allows_new_shapes():
    opt = Adam(lr=0.1)
    opt.step(np.ones(3, np.float32), np.ones(3, np.float32))
    opt.reset()
    assert opt.steps == 0
    w = np.zeros(5, np.float32)
    opt.step(w, np.ones(5, np.float32))
    np.testing.assert_allclose(w, -0.1, rtol=1e-6)  # a first step again: bias correction t=1


def test_momentum_switched_on_later_starts_a_fresh_buffer(rng):
    p = rng.standard_normal(10).astype(np.float32)
    g1, g2, g3 = (rng.standard_normal(10).astype(np.float32) for _ in range(3))
    opt = training.SGD(lr=0.1)
    opt.step(p, g1)
    expected, buf = ref.sgd_step(p, g2, None, lr=0.1, momentum=0.5)
    opt.with_momentum(0.5).step(p, g2)
    ref.assert_f32_close(p, expected, scale=1.0)
    expected, _ = ref.sgd_step(p, g3, buf, lr=0.1, momentum=0.5)
    opt.step(p, g3)
    ref.assert_f32_close(p, expected, scale=1.0)


def test_the_crates_builders_and_learning_rate_accessors():
    opt = training.SGD(8, 0.1).with_momentum(0.9).with_weight_decay(0.01).with_nesterov(True)
    assert (opt.momentum, opt.weight_decay, opt.nesterov) == (0.9, 0.01, True)
    adam = training.Adam(8, 0.1).with_betas(0.8, 0.9).with_epsilon(1e-6).with_weight_decay(0.1)
    assert (adam.betas, adam.eps, adam.weight_decay) == ((0.8, 0.9), 1e-6, 0.1)
    adamw = training.AdamW(512, 0.001, 0.01)
    assert isinstance(adamw.with_weight_decay(0.2).with_betas(0.5, 0.6), training.AdamW)
    assert isinstance(adamw, AdamW)  # the package's class, by the crate's names
    assert adamw.weight_decay == 0.2
    adamw.set_learning_rate(0.5)
    assert adamw.learning_rate() == adamw.lr == 0.5
    adamw.lr = 0.25
    assert adamw.learning_rate() == 0.25
    assert "AdamW(" in repr(adamw)
    # The package's own classes speak PyTorch's vocabulary only.
    for name in ("with_momentum", "with_betas", "learning_rate", "set_learning_rate"):
        assert not hasattr(SGD(), name) and not hasattr(Adam(), name), name
    # A state saved by either namespace loads in the other (the crate's dim is not state).
    main = Adam(lr=0.1, betas=(0.8, 0.9))
    main.step(np.ones(3, np.float32), np.ones(3, np.float32))
    crate = training.Adam()
    crate.load_state_dict(main.state_dict())
    assert crate.state_dict()["hyper"] == main.state_dict()["hyper"]
    legacy = main.state_dict()
    legacy["hyper"] = {"dim": 3, **legacy["hyper"]}  # saved by 0.1, with the crate's dim
    Adam().load_state_dict(legacy)


def test_nonfinite_gradient_poisons_only_its_own_elements(rng):
    # Documented policy (PyTorch's): NaN/Inf reaches that element's moments and parameter only.
    p = rng.standard_normal(8).astype(np.float32)
    clean = p.copy()
    g = rng.standard_normal(8).astype(np.float32)
    bad = g.copy()
    bad[2] = np.nan
    bad[5] = np.inf
    opt_bad, opt_clean = Adam(lr=0.1), Adam(lr=0.1)
    opt_bad.step(p, bad)
    opt_clean.step(clean, g)
    assert np.isnan(p[2]) and not np.isfinite(p[5])
    keep = [0, 1, 3, 4, 6, 7]
    np.testing.assert_array_equal(p[keep], clean[keep])
    state = opt_bad.state_dict()["state"]
    assert np.isnan(state["exp_avg"][0][2]) and np.isinf(state["exp_avg_sq"][0][5])


def test_clip_returns_nonfinite_norm_and_leaves_grads_so_a_step_can_be_skipped():
    g = np.array([1.0, np.inf, 2.0], dtype=np.float32)
    before = g.copy()
    assert ra.clip_grad_norm(g, 1.0) == np.inf
    np.testing.assert_array_equal(g, before)
    g = np.array([1.0, np.nan], dtype=np.float32)
    assert np.isnan(ra.clip_grad_norm(g, 1.0))
    with pytest.raises(ValueError, match="total norm of the gradients is inf"):
        ra.clip_grad_norm(np.array([np.inf], np.float32), 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw", "clip"])
def test_every_simd_path_gives_identical_bits(rng, kind):
    size = 100_003
    p0 = rng.standard_normal(size).astype(np.float32)
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(3)]
    results = []
    try:
        for path in simd_paths():
            ra._native._testing.force_simd_path(path)
            p = p0.copy()
            if kind == "clip":
                g = grads[0].copy()
                results.append((ra.clip_grad_norm(g, 1.0), g))
                continue
            opt = {
                "sgd": SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                "adam": Adam(lr=0.01, weight_decay=0.01),
                "adamw": AdamW(lr=0.01),
            }[kind]
            for g in grads:
                opt.step(p, g)
            results.append(p)
    finally:
        ra._native._testing.force_simd_path(ra._native._testing.best_simd_path().split("+")[0])
    for other in results[1:]:
        if kind == "clip":
            assert other[0] == results[0][0]
            np.testing.assert_array_equal(other[1], results[0][1])
        else:
            np.testing.assert_array_equal(other, results[0])
    assert ra.simd_path() == ra._native._testing.best_simd_path()


def test_results_do_not_depend_on_thread_count(rng):
    p0 = rng.standard_normal(1_500_000).astype(np.float32)
    g = rng.standard_normal(1_500_000).astype(np.float32)
    out = []
    threads = ra.get_num_threads()
    try:
        for n in (1, 2, 3):
            ra.set_num_threads(n)
            p = p0.copy()
            opt = AdamW(lr=0.01)
            opt.step(p, g)
            opt.step(p, g)
            out.append(p)
    finally:
        ra.set_num_threads(threads)
    for other in out[1:]:
        np.testing.assert_array_equal(other, out[0])


def test_the_single_array_fast_path_equals_the_list_path_and_explains_errors(rng):
    # One array per step takes a shortcut past the list handling: same bits, same errors.
    p0 = rng.standard_normal(1000).astype(np.float32)
    grads = [rng.standard_normal(1000).astype(np.float32) for _ in range(20)]
    fast, listed = p0.copy(), p0.copy()
    a, b = AdamW(lr=0.01, weight_decay=0.1), AdamW(lr=0.01, weight_decay=0.1)
    for i, g in enumerate(grads):
        a.step(fast, g if i % 3 else g.astype(np.float64))  # float64: converted, general path
        b.step([listed], [g])
    np.testing.assert_array_equal(fast, listed)
    assert a.steps == b.steps == 20
    frozen = fast.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        a.step(frozen, grads[0])
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[0\]"):
        a.step(fast, fast)
    assert a.steps == 20
    np.testing.assert_array_equal(fast, listed)
    with pytest.raises(ra.ShapeError):
        a.step(fast, grads[0][:10])


def test_clip_grad_norm_of_empty_gradients_is_plus_zero():
    # The report: an empty gradient's norm came back as -0.0.
    import math

    norm = ra.clip_grad_norm([np.zeros(0, np.float32), np.zeros((3, 0), np.float32)], 1.0)
    assert norm == 0.0 and math.copysign(1.0, norm) == 1.0
