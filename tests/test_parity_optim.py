"""Parity with the original crate: its optimizers and scheduler run on the same generated inputs.

Where the crate and the seed agree the trajectories match to float32 round-off over 120 steps.
The deliberate differences of docs/parity.md each have a test showing both behaviours.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from parity import run_crate
from ruvector_attention.training import SGD, Adam, AdamW, LearningRateScheduler, ShapeError

pytestmark = pytest.mark.parity

STEPS = 120
DIM = 257


def _trajectory(opt, params, grads):
    p = params.copy()
    out = []
    for g in grads:
        opt.step(p, g)
        out.append(p.copy())
    return np.array(out)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(DIM).astype(np.float32)
    grads = [
        (rng.standard_normal(DIM) * rng.uniform(0.01, 3.0)).astype(np.float32) for _ in range(STEPS)
    ]
    return params, grads


def _assert_trajectories_close(ours, crate, *, rtol, atol):
    crate = np.asarray(crate, dtype=np.float32)
    assert crate.shape == ours.shape
    np.testing.assert_allclose(ours, crate, rtol=rtol, atol=atol)


SGD_CASES = [
    dict(lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False),
    dict(lr=0.01, momentum=0.9, weight_decay=0.0, nesterov=False),
    dict(lr=0.01, momentum=0.9, weight_decay=0.0, nesterov=True),
    dict(lr=0.02, momentum=0.0, weight_decay=0.05, nesterov=False),
    dict(lr=0.01, momentum=0.8, weight_decay=0.01, nesterov=True),
]


def test_sgd_matches_crate():
    cases, ours = [], []
    for i, hyper in enumerate(SGD_CASES):
        params, grads = _inputs(100 + i)
        cases.append(
            {
                "kind": "sgd",
                "dim": DIM,
                **hyper,
                "params": params,
                "steps": [{"grads": g} for g in grads],
            }
        )
        ours.append(_trajectory(SGD(DIM, **hyper), params, grads))
    for mine, crate in zip(ours, run_crate(cases)):
        # The same f32 operations in the same order: agreement to a few ulps after 120 steps.
        _assert_trajectories_close(mine, crate["params"], rtol=2e-6, atol=2e-6)


ADAM_CASES = [
    dict(lr=0.001, beta1=0.9, beta2=0.999),
    dict(lr=0.01, beta1=0.8, beta2=0.99),
    dict(lr=0.05, beta1=0.5, beta2=0.9),
]


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_and_adamw_match_crate(decoupled):
    cases, ours = [], []
    for i, hyper in enumerate(ADAM_CASES):
        params, grads = _inputs(200 + i)
        wd = 0.05 if decoupled else 0.0  # the crate's Adam decay differs on purpose (below)
        cases.append(
            {
                "kind": "adamw" if decoupled else "adam",
                "dim": DIM,
                **hyper,
                "weight_decay": wd,
                "params": params,
                "steps": [{"grads": g} for g in grads],
            }
        )
        betas = (hyper["beta1"], hyper["beta2"])
        opt = AdamW(DIM, hyper["lr"], wd, betas) if decoupled else Adam(DIM, hyper["lr"], betas)
        ours.append(_trajectory(opt, params, grads))
    for i, (mine, crate) in enumerate(zip(ours, run_crate(cases))):
        # Same formula, different rounding: the crate divides by (1 - b1^t) inside the loop in
        # f32; PyTorch's order folds it into the step size. Differences stay at round-off.
        _assert_trajectories_close(mine, crate["params"], rtol=1e-5, atol=1e-5)
        # The comparison means something only if the parameters really moved.
        assert np.max(np.abs(mine[-1] - _inputs(200 + i)[0])) > 10 * ADAM_CASES[i]["lr"]


def test_lr_scheduler_matches_crate():
    configs = [
        dict(initial_lr=0.001, warmup_steps=0, decay_steps=100, min_lr=1e-7),
        dict(initial_lr=0.1, warmup_steps=10, decay_steps=100, min_lr=0.001),
        dict(initial_lr=0.5, warmup_steps=37, decay_steps=50, min_lr=0.0),
        dict(initial_lr=3e-4, warmup_steps=1, decay_steps=1, min_lr=1e-5),
    ]
    steps = 160
    results = run_crate([{"kind": "lr_scheduler", **c, "steps": steps} for c in configs])
    for config, crate in zip(configs, results):
        sched = LearningRateScheduler(**config)
        ours = np.array([sched.step() for _ in range(steps)])
        # The crate computes in f32, cos() included; we compute in f64 (the rate is a Python
        # float). Near the end of the decay the crate's cos() round-off, about eps32 * initial_lr
        # in absolute terms, dominates.
        eps32 = float(np.finfo(np.float32).eps)
        np.testing.assert_allclose(
            ours,
            np.asarray(crate["lrs"], dtype=np.float64),
            rtol=2e-6,
            atol=4 * eps32 * config["initial_lr"],
        )


def test_divergence_adam_weight_decay_is_l2_here_and_decoupled_in_crate():
    params, grads = _inputs(300)
    lr, wd = 0.01, 0.1
    crate = run_crate(
        [
            {
                "kind": "adam",
                "dim": DIM,
                "lr": lr,
                "beta1": 0.9,
                "beta2": 0.999,
                "weight_decay": wd,
                "params": params,
                "steps": [{"grads": g} for g in grads[:20]],
            },
        ]
    )[0]["params"]
    ours = _trajectory(Adam(DIM, lr, weight_decay=wd), params, grads[:20])
    ours_adamw = _trajectory(AdamW(DIM, lr, weight_decay=wd), params, grads[:20])
    crate = np.asarray(crate, dtype=np.float32)
    # The crate's Adam with decay is (up to where it applies the decay) our AdamW ...
    np.testing.assert_allclose(crate, ours_adamw, rtol=1e-3, atol=1e-4)
    # ... while our Adam adds wd * p to the gradient, as PyTorch's Adam does: clearly different.
    assert np.max(np.abs(crate - ours)) > 1e-3


def test_divergence_size_change_resets_in_crate_and_raises_here():
    rng = np.random.default_rng(400)
    small = rng.standard_normal(5).astype(np.float32)
    large = rng.standard_normal(9).astype(np.float32)
    g_small = [rng.standard_normal(5).astype(np.float32) for _ in range(3)]
    g_large = rng.standard_normal(9).astype(np.float32)
    crate = run_crate(
        [
            {
                "kind": "adam",
                "dim": 5,
                "lr": 0.1,
                "beta1": 0.9,
                "beta2": 0.999,
                "weight_decay": 0.0,
                "params": small,
                "steps": [{"grads": g} for g in g_small] + [{"grads": g_large, "params": large}],
            },
        ]
    )[0]["params"]
    # The crate silently zeroed its moments but kept counting steps: its step on the new size is
    # an Adam step from zero moments with the bias correction of step 4.
    restarted, _, _ = ref.adam_step(large, g_large, np.zeros(9), np.zeros(9), 4, lr=0.1)
    ref.assert_f32_close(np.asarray(crate[-1], np.float32), restarted, scale=0.1)
    first_step = large.copy()
    Adam(lr=0.1).step(first_step, g_large)
    assert np.max(np.abs(np.asarray(crate[-1], np.float32) - first_step)) > 1e-2
    # Here the same sequence raises and keeps the state it had.
    opt = Adam(lr=0.1)
    p = small.copy()
    for g in g_small:
        opt.step(p, g)
    before = opt.state_dict()
    with pytest.raises(ShapeError, match="optimizer state was created for shape"):
        opt.step(large.copy(), g_large)
    after = opt.state_dict()
    assert after["steps"] == before["steps"] == 3
    np.testing.assert_array_equal(after["state"]["exp_avg"][0], before["state"]["exp_avg"][0])
