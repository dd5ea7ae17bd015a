"""CurriculumScheduler, CurriculumStage and TemperatureAnnealing: rules, state, errors, and
parity with the crate on generated schedules (the crate's step() called the same number of
times)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parity import run_crate
from ruvector_attention import (
    CurriculumScheduler,
    CurriculumStage,
    DecayType,
    TemperatureAnnealing,
)


def _stages(rng, count):
    return [
        CurriculumStage(
            f"s{i}",
            difficulty=float(rng.uniform(-0.5, 1.5)),
            duration=int(rng.integers(0, 40)),
            temperature=float(rng.uniform(-0.1, 3.0)),
            negative_count=int(rng.integers(-2, 60)),
        )
        for i in range(count)
    ]


def _observe(s):
    stage = s.current_stage()
    return {
        "stage": stage.name if stage else None,
        "difficulty": s.difficulty(),
        "temperature": s.temperature(),
        "negative_count": s.negative_count(),
        "progress": s.progress(),
        "is_complete": s.is_complete(),
    }


def _assert_same(ours, crate):
    assert ours["stage"] == crate["stage"]
    assert ours["negative_count"] == crate["negative_count"]
    assert ours["is_complete"] == crate["is_complete"]
    for key in ("difficulty", "temperature", "progress"):
        assert ours[key] == pytest.approx(crate[key], rel=1e-6, abs=1e-7), key


def test_schedules_match_the_crate():
    rng = np.random.default_rng(1)
    cases, ours_all = [], []
    for _ in range(40):
        stages = _stages(rng, int(rng.integers(0, 6)))
        advances = [int(v) for v in rng.integers(0, 50, size=int(rng.integers(1, 12)))]
        scheduler = CurriculumScheduler(stages)
        ours = [_observe(scheduler)]
        for n in advances:
            scheduler.step(n)  # one call may cross several stages
            ours.append(_observe(scheduler))
        cases.append(
            {"kind": "curriculum", "stages": [s.to_dict() for s in stages], "advances": advances}
        )
        ours_all.append(ours)
    for total in (0, 3, 400, 1001):
        advances = [1, total // 4, total // 3, total]
        scheduler = CurriculumScheduler.default_curriculum(total)
        ours = [_observe(scheduler)]
        for n in advances:
            scheduler.step(n)
            ours.append(_observe(scheduler))
        cases.append({"kind": "curriculum", "total_steps": total, "advances": advances})
        ours_all.append(ours)
    for ours, crate in zip(ours_all, run_crate(cases)):
        assert len(ours) == len(crate["observations"])
        for o, c in zip(ours, crate["observations"]):
            _assert_same(o, c)


@pytest.mark.parametrize("decay", list(DecayType))
def test_annealing_matches_the_crate_for_every_decay(decay):
    cases, ours = [], []
    for initial, final, steps, step_size in [
        (1.0, 0.1, 100, None),
        (2.0, 0.05, 37, 5),
        (0.5, 1.5, 20, 3),  # warming up also works
        (1.0, 0.1, 0, None),
        (1.0, 0.2, 5, 10),  # step size beyond the steps
        (3.0, 0.3, 64, 0),
    ]:
        calls = steps + 5
        a = TemperatureAnnealing(initial, final, steps, decay, step_size)
        ours.append([a.step() for _ in range(calls)])
        case = {
            "kind": "annealing",
            "initial": initial,
            "final": final,
            "steps": steps,
            "decay": decay.value,
            "calls": calls,
        }
        if step_size is not None:
            case["step_size"] = step_size
        cases.append(case)
    for temps, crate, case in zip(ours, run_crate(cases), cases):
        if decay is DecayType.STEP and case["initial"] < case["final"]:
            # docs/parity.md: the crate holds a rising step schedule at `final` from step 0.
            assert crate["temperatures"][0] == case["final"]
            assert temps[0] == case["initial"] and temps[-1] == case["final"]
            continue
        np.testing.assert_allclose(temps, crate["temperatures"], rtol=2e-6, atol=1e-7)


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
    assert (s.difficulty, s.temperature, s.negative_count, s.k_neighbors) == (0.0, 0.01, 1, 1)
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
    assert s.current_params() is s.current_stage()
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
    assert _observe(other) == _observe(s)
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
    assert a.get_temp() == 1.0
    a.reset()
    assert a.step() == 1.0
