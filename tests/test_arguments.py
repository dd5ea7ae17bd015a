"""Arguments of every kind, across the API: numbers float32 cannot hold, NumPy scalars, integers
beyond any range, 0-d arrays, state dicts of the wrong types; each gets a clear exception."""

from __future__ import annotations

import numpy as np
import pytest

import ruvector_attention as ra


@pytest.mark.parametrize(
    "make",
    [
        lambda: ra.InfoNCELoss(1e39),
        lambda: ra.LocalContrastiveLoss(margin=1e39),
        lambda: ra.HardNegativeMiner.distance_weighted(1e-40),
        lambda: ra.HardNegativeMiner.distance_weighted(1e-50),
        lambda: ra.HardNegativeMiner.semi_hard(1e300),
        lambda: ra.SpectralRegularization(1e39),
        lambda: ra.AdamW(lr=1e39),
        lambda: ra.InfoNCELoss(10**400),
    ],
)
def test_hyper_parameters_beyond_float32_are_refused_at_construction(make):
    with pytest.raises(ValueError, match=r"float32|finite"):
        make()


def test_numpy_scalars_are_accepted_like_python_ones():
    assert ra.CurriculumStage("s", negative_count=np.int64(5)).negative_count == 5
    assert ra.InBatchMiner(np.bool_(True)).exclude_positive is True
    assert ra.SGD(lr=np.float32(0.5), nesterov=np.bool_(False)).lr == 0.5


def test_out_of_range_integers_fail_at_once():
    with pytest.raises(ValueError, match="n must be <= 4096"):
        ra.set_num_threads(2**64)
    opt = ra.SGD(lr=0.1)
    state = opt.state_dict()
    state["steps"] = 2**64
    with pytest.raises(ValueError, match="steps must be <="):
        opt.load_state_dict(state)


def test_zero_dimensional_arrays_keep_their_shape():
    p = np.array(1.0, np.float32)
    ra.SGD(lr=0.5).step(p, np.array(2.0))  # a float64 0-d gradient
    assert p.shape == () and p == 0.0


def test_load_state_dict_refuses_wrong_types_and_keys():
    sgd = ra.SGD(lr=0.1, momentum=0.9)
    state = sgd.state_dict()
    state["hyper"]["nesterov"] = "no"
    with pytest.raises(TypeError, match="nesterov must be a bool"):
        sgd.load_state_dict(state)
    assert sgd.nesterov is False
    with pytest.raises(ValueError, match="missing 'steps'"):
        sgd.load_state_dict({k: v for k, v in sgd.state_dict().items() if k != "steps"})
    with pytest.raises(TypeError, match="must be a dict"):
        sgd.load_state_dict([])  # type: ignore[arg-type]
    miner = ra.HardNegativeMiner.random(seed=0)
    state = miner.state_dict()
    with pytest.raises(TypeError, match="calls must be an int"):
        miner.load_state_dict({**state, "calls": 1.9})
    with pytest.raises(ValueError, match="unknown key 'extra'"):
        miner.load_state_dict({**state, "extra": 1})
    sched = ra.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="missing 'min_lr'"):
        sched.load_state_dict({k: v for k, v in sched.state_dict().items() if k != "min_lr"})


def test_read_only_inputs_are_accepted_wherever_the_call_only_reads():
    # Ray Data and JAX hand out read-only arrays; a call that only reads them must take them.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 16)).astype(np.float32)
    n = rng.standard_normal((32, 4, 16)).astype(np.float32)
    frozen_a, frozen_n = a.copy(), n.copy()
    frozen_a.flags.writeable = frozen_n.flags.writeable = False
    loss, margin = ra.InfoNCELoss(0.1), ra.LocalContrastiveLoss(1.0)
    assert (
        loss.batch_with_gradients(frozen_a, frozen_a, frozen_n)[0]
        == (loss.batch_with_gradients(a, a, n)[0])
    )
    assert margin.batch(frozen_a, frozen_a, frozen_n) == margin.batch(a, a, n)
    miner = ra.HardNegativeMiner.semi_hard(0.5)
    np.testing.assert_array_equal(
        miner.mine_batch(frozen_a, frozen_a, frozen_a, 2), miner.mine_batch(a, a, a, 2)
    )
    np.testing.assert_array_equal(
        ra.mine_hard_negatives(frozen_a[:3], frozen_a, k=2).indices,
        ra.mine_hard_negatives(a[:3], a, k=2).indices,
    )
    reg = ra.SpectralRegularization(0.1)
    assert reg.variance_penalty(frozen_a) == reg.variance_penalty(a)
    grad = np.ones(16, np.float32)
    grad.flags.writeable = False
    w = np.zeros(16, np.float32)
    ra.Adam(lr=0.1).step(w, grad)
    assert w[0] == pytest.approx(-0.1)
