"""Warmup-cosine learning-rate schedule against the formula."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from ruvector_attention import LearningRateScheduler


@given(
    initial=st.floats(0.0, 10.0),
    warmup=st.integers(0, 50),
    decay=st.integers(1, 200),
    floor=st.floats(0.0, 1e-3),
)
def test_schedule_follows_formula_over_a_whole_run(initial, warmup, decay, floor):
    sched = LearningRateScheduler(initial, warmup_steps=warmup, decay_steps=decay, min_lr=floor)
    kw = dict(initial_lr=initial, warmup_steps=warmup, decay_steps=decay, min_lr=floor)
    for s in range(warmup + decay + 10):
        assert sched.get_lr() == pytest.approx(ref.lr_schedule(s, **kw), rel=1e-12, abs=1e-15)
        assert sched.lr_at(s) == sched(s) == sched.get_lr()
        assert sched.step() == pytest.approx(ref.lr_schedule(s, **kw), rel=1e-12, abs=1e-15)
    assert sched.get_lr() == pytest.approx(floor)


def test_builders_reset_and_state_dict():
    sched = LearningRateScheduler(0.1, warmup_steps=3, decay_steps=10, min_lr=0.01)
    assert (sched.warmup_steps, sched.decay_steps, sched.min_lr) == (3, 10, 0.01)
    first = [sched.step() for _ in range(5)]
    saved = sched.state_dict()
    rest = [sched.step() for _ in range(5)]
    other = LearningRateScheduler(1.0)
    other.load_state_dict(saved)
    assert [other.step() for _ in range(5)] == rest
    clone = pickle.loads(pickle.dumps(other))
    assert clone.current_step == 10 and clone.get_lr() == other.get_lr()
    sched.reset()
    assert [sched.step() for _ in range(5)] == first
    assert "warmup_steps=3" in repr(sched)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(initial_lr=-1.0), ValueError, "initial_lr must be >= 0"),
        (dict(initial_lr=0.1, warmup_steps=-1), ValueError, "warmup_steps must be >= 0"),
        (dict(initial_lr=0.1, decay_steps=0), ValueError, "decay_steps must be >= 1"),
        (dict(initial_lr=0.1, min_lr=-1e-3), ValueError, "min_lr must be >= 0"),
        (dict(initial_lr=0.1, warmup_steps=1.5), TypeError, "warmup_steps must be an int"),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        LearningRateScheduler(**kwargs)


def test_invalid_step_query():
    with pytest.raises(ValueError, match="step must be >= 0"):
        LearningRateScheduler(0.1).lr_at(-1)
