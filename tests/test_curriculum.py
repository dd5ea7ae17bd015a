"""CurriculumScheduler, CurriculumStage and TemperatureAnnealing: rules, state and errors (the
comparisons with the crate itself are in test_parity_curriculum.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ruvector_attention as ra
import ruvector_attention.training as training
from parity import observe_curriculum
from ruvector_attention import (
    CurriculumScheduler,
    CurriculumStage,
    DecayType,
    TemperatureAnnealing,
)


def test_divergence_rising_step_decay_ramps_here_and_jumps_to_final_in_crate():
    a = TemperatureAnnealing(0.5, 1.5, 20, DecayType.STEP, 5)
    temps = [a.step() for _ in range(25)]
    # Up by equal amounts every 5 steps, like the falling schedule, then `final`.
    assert temps[:5] == [0.5] * 5
    assert temps[5] == pytest.approx(0.75) and temps[15] == pytest.approx(1.25)
    assert temps[19] == pytest.approx(1.25) and temps[20:] == [1.5] * 5
    assert all(x <= y for x, y in zip(temps, temps[1:]))


@pytest.mark.parametrize("decay", list(DecayType))
def test_annealing_between_extreme_temperatures_stays_finite_and_monotone(decay):
    # 1e10 / 1e-300 overflows float64: the exponential decay works in logs.
    a = TemperatureAnnealing(1e-300, 1e10, 4, decay)
    temps = [a.step() for _ in range(6)]
    assert all(np.isfinite(temps)) and temps[0] == pytest.approx(1e-300, rel=1e-9)
    assert temps[-1] == 1e10
    assert all(x <= y for x, y in zip(temps, temps[1:]))


def test_stage_clamps_and_seed_names():
    s = CurriculumStage("x", difficulty=-1, temperature=0.001, negative_count=0)
    assert (s.difficulty, s.temperature, s.negative_count) == (0.0, 0.01, 1)
    # A temperature InfoNCELoss refuses is refused here too (the review: the stage turned -1 into
    # 0.01 where InfoNCELoss(-1) raised); the crate's stage clamps it, in its own namespace.
    for bad in (-1.0, 0.0):
        with pytest.raises(ra.ArgumentError, match="temperature must be > 0"):
            CurriculumStage("x", temperature=bad)
        with pytest.raises(ra.ArgumentError, match="temperature must be > 0"):
            ra.InfoNCELoss(bad)
        crate = training.CurriculumStage("x", temperature=bad, negative_count=0)
        assert (crate.temperature, crate.k_neighbors) == (0.01, 1)
    assert not hasattr(s, "k_neighbors")
    with pytest.raises(ValueError, match="duration must be >= 0"):
        CurriculumStage("x", duration=-1)
    with pytest.raises(ValueError, match="difficulty must be finite"):
        CurriculumStage("x", difficulty=float("nan"))
    with pytest.raises(TypeError, match="negative_count must be an int"):
        CurriculumStage("x", negative_count=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str"):
        CurriculumStage(3)  # type: ignore[arg-type]


def test_steps_cross_several_stages_exactly_at_the_boundaries():
    s = CurriculumScheduler().add_stage(CurriculumStage("a", duration=10))
    s.add_stage(CurriculumStage("b", duration=5)).add_stage(CurriculumStage("c", duration=7))
    assert s.step(9).name == "a"
    assert s.step(1).name == "b"
    assert s.step(100).name == "c" and s.is_complete()
    assert s.progress() == pytest.approx(110 / 22)
    assert not hasattr(s, "current_params")
    crate = training.CurriculumScheduler.default_curriculum(8)
    assert crate.current_params() is crate.current_stage()
    s.reset()
    assert s.current_stage().name == "a" and s.progress() == 0.0
    assert s.step(15).name == "c"  # 10 + 5 in one call


def test_empty_scheduler_uses_the_crate_defaults():
    s = CurriculumScheduler()
    assert s.step() is None and s.current_stage() is None
    assert (s.difficulty(), s.temperature(), s.negative_count()) == (1.0, 1.0, 10)
    assert s.is_complete() and s.progress() == 1.0


def test_linear_preset():
    s = CurriculumScheduler.linear(4, 250, 5, 50, 2.0, 0.1)
    assert [st.negative_count for st in s.stages] == [5, 20, 35, 50]
    assert [st.duration for st in s.stages] == [250] * 4
    assert s.stages[0].temperature == 2.0 and math.isclose(s.stages[-1].temperature, 0.1)
    assert CurriculumScheduler.linear(1, 10, 3, 9, 1.0, 0.5).stages[0].negative_count == 9
    with pytest.raises(ValueError, match="num_stages must be >= 1"):
        CurriculumScheduler.linear(0, 10, 1, 2, 1.0, 0.5)


def test_state_dicts_round_trip():
    s = CurriculumScheduler.default_curriculum(100)
    s.step(37)
    other = CurriculumScheduler()
    other.load_state_dict(s.state_dict())
    assert observe_curriculum(other) == observe_curriculum(s)
    assert other.step(20).name == s.step(20).name
    a = TemperatureAnnealing(1.0, 0.1, 50, DecayType.COSINE)
    for _ in range(13):
        a.step()
    b = TemperatureAnnealing(5.0, 1.0, 3)
    b.load_state_dict(a.state_dict())
    assert [b.step() for _ in range(5)] == [a.step() for _ in range(5)]
    with pytest.raises(ValueError, match="invalid CurriculumScheduler state_dict"):
        other.load_state_dict({"stages": []})
    with pytest.raises(ValueError, match="missing 'steps'"):
        b.load_state_dict({"initial": 1.0, "final": 0.5})


def test_annealing_errors():
    with pytest.raises(ValueError, match="initial must be > 0"):
        TemperatureAnnealing(0.0, 0.1, 10)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        TemperatureAnnealing(1.0, 0.1, -1)
    with pytest.raises(TypeError, match="decay must be a DecayType"):
        TemperatureAnnealing(1.0, 0.1, 10, "linear")  # type: ignore[arg-type]
    a = TemperatureAnnealing(1.0, 0.1, 10)
    assert a.temperature == 1.0 and training.TemperatureAnnealing(1.0, 0.1, 10).get_temp() == 1.0
    a.reset()
    assert a.step() == 1.0
