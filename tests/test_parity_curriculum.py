"""Parity of CurriculumScheduler and TemperatureAnnealing with the original crate on generated
schedules (the crate's step() called the same number of times), run through rust/parity."""

from __future__ import annotations

import numpy as np
import pytest

from parity import observe_curriculum, run_crate
from ruvector_attention.training import (
    CurriculumScheduler,
    CurriculumStage,
    DecayType,
    TemperatureAnnealing,
)

pytestmark = pytest.mark.parity


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
        ours = [observe_curriculum(scheduler)]
        for n in advances:
            scheduler.step(n)  # one call may cross several stages
            ours.append(observe_curriculum(scheduler))
        cases.append(
            {"kind": "curriculum", "stages": [s.to_dict() for s in stages], "advances": advances}
        )
        ours_all.append(ours)
    for total in (0, 3, 400, 1001):
        advances = [1, total // 4, total // 3, total]
        scheduler = CurriculumScheduler.default_curriculum(total)
        ours = [observe_curriculum(scheduler)]
        for n in advances:
            scheduler.step(n)
            ours.append(observe_curriculum(scheduler))
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
