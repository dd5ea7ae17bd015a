"""Curriculum learning: stages of increasing difficulty, and temperature annealing.

Pure Python, with the crate's rules and formulas (``ruvector_attention::training::curriculum``);
the tests run the crate on generated schedules and compare.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

from . import _validate as check
from .errors import ArgumentError

__all__ = ["CurriculumScheduler", "CurriculumStage", "DecayType", "TemperatureAnnealing"]


@dataclass(frozen=True)
class CurriculumStage:
    """One stage: its difficulty (clamped to [0, 1]), duration in samples or steps, the InfoNCE
    temperature of the stage (> 0; below 0.01 it becomes 0.01, as :class:`InfoNCELoss` computes
    with it) and number of negatives (at least 1, as the crate clamps it).

    The crate also turns a temperature <= 0 into 0.01; here that is refused, as ``InfoNCELoss``
    refuses it (``ruvector_attention.training.CurriculumStage`` keeps the crate's clamp).

    Examples:
        >>> s = CurriculumStage("hard", difficulty=1.5, temperature=0.001, negative_count=0)
        >>> s.difficulty, s.duration, s.temperature, s.negative_count
        (1.0, 1000, 0.01, 1)
    """

    name: str
    difficulty: float = 0.5
    duration: int = 1000
    temperature: float = 1.0
    negative_count: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        difficulty = min(max(check.real("difficulty", self.difficulty), 0.0), 1.0)
        object.__setattr__(self, "difficulty", difficulty)
        object.__setattr__(self, "duration", check.non_negative_int("duration", self.duration))
        object.__setattr__(self, "temperature", check.temperature("temperature", self.temperature))
        # The crate clamps counts below 1 up to 1.
        count = check.integer("negative_count", self.negative_count, minimum=-check.INT64_MAX)
        object.__setattr__(self, "negative_count", max(count, 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "difficulty": self.difficulty,
            "duration": self.duration,
            "temperature": self.temperature,
            "negative_count": self.negative_count,
        }


class CurriculumScheduler:
    """Stages in order; ``step(n)`` advances by n samples (or steps).

    A stage ends when the samples spent in it reach its duration; one call may cross several
    stages. The last stage never ends (``is_complete()`` tells when its duration is spent).
    Without stages: ``difficulty() == 1.0``, ``temperature() == 1.0``, ``negative_count() == 10``
    (the crate's defaults).

    Examples:
        >>> s = CurriculumScheduler.default_curriculum(400)
        >>> [st.name for st in s.stages]
        ['warm_up', 'easy', 'medium', 'hard']
        >>> s.step(150).name, s.negative_count()
        ('easy', 10)
    """

    def __init__(self, stages: Iterable[CurriculumStage] = ()) -> None:
        self._stages: list[CurriculumStage] = []
        for stage in stages:
            self.add_stage(stage)
        self._current = 0
        self._in_stage = 0
        self._total = 0

    def add_stage(self, stage: CurriculumStage) -> CurriculumScheduler:
        if not isinstance(stage, CurriculumStage):
            raise TypeError(f"stage must be a CurriculumStage, got {type(stage).__name__}")
        self._stages.append(stage)
        return self

    @classmethod
    def default_curriculum(cls, total_steps: int) -> CurriculumScheduler:
        """The crate's four stages (warm_up, easy, medium, hard), each a quarter of the steps."""
        quarter = check.non_negative_int("total_steps", total_steps) // 4
        return cls(
            [
                CurriculumStage("warm_up", 0.1, quarter, 2.0, 5),
                CurriculumStage("easy", 0.3, quarter, 1.0, 10),
                CurriculumStage("medium", 0.6, quarter, 0.5, 20),
                CurriculumStage("hard", 1.0, quarter, 0.1, 50),
            ]
        )

    @classmethod
    def linear(
        cls,
        num_stages: int,
        samples_per_stage: int,
        k_start: int,
        k_end: int,
        temp_start: float,
        temp_end: float,
    ) -> CurriculumScheduler:
        """The seed's preset: ``num_stages`` stages of ``samples_per_stage`` samples each, with
        negatives (rounded), temperature and difficulty (0 to 1) interpolated linearly.

        Examples:
            >>> s = CurriculumScheduler.linear(3, 100, 4, 12, 1.0, 0.2)
            >>> [(st.negative_count, round(st.temperature, 2), st.difficulty) for st in s.stages]
            [(4, 1.0, 0.0), (8, 0.6, 0.5), (12, 0.2, 1.0)]
        """
        n = check.positive_int("num_stages", num_stages)
        duration = check.non_negative_int("samples_per_stage", samples_per_stage)
        k0 = check.positive_int("k_start", k_start)
        k1 = check.positive_int("k_end", k_end)
        t0 = check.positive("temp_start", temp_start)
        t1 = check.positive("temp_end", temp_end)
        stages = []
        for i in range(n):
            f = i / (n - 1) if n > 1 else 1.0
            stages.append(
                CurriculumStage(
                    f"stage_{i}",
                    difficulty=f,
                    duration=duration,
                    temperature=t0 + (t1 - t0) * f,
                    negative_count=round(k0 + (k1 - k0) * f),
                )
            )
        return cls(stages)

    @property
    def stages(self) -> list[CurriculumStage]:
        return list(self._stages)

    def step(self, n: int = 1) -> Optional[CurriculumStage]:
        """Advance by ``n`` samples; return the stage now current (None without stages)."""
        remaining = check.non_negative_int("n", n)
        if not self._stages:
            return None
        while remaining > 0:
            last = self._current == len(self._stages) - 1
            if last:
                self._in_stage += remaining
                self._total += remaining
                break
            # The crate checks after counting a sample, so a stage always takes at least one.
            need = max(self._stages[self._current].duration - self._in_stage, 1)
            if remaining >= need:
                self._total += need
                remaining -= need
                self._current += 1
                self._in_stage = 0
            else:
                self._in_stage += remaining
                self._total += remaining
                remaining = 0
        return self.current_stage()

    def current_stage(self) -> Optional[CurriculumStage]:
        return self._stages[self._current] if self._stages else None

    def difficulty(self) -> float:
        stage = self.current_stage()
        return stage.difficulty if stage else 1.0

    def temperature(self) -> float:
        stage = self.current_stage()
        return stage.temperature if stage else 1.0

    def negative_count(self) -> int:
        stage = self.current_stage()
        return stage.negative_count if stage else 10

    def is_complete(self) -> bool:
        if not self._stages:
            return True
        return (
            self._current >= len(self._stages) - 1 and self._in_stage >= self._stages[-1].duration
        )

    def progress(self) -> float:
        """Samples seen over the total duration (can exceed 1; 1.0 when there is none)."""
        total = sum(s.duration for s in self._stages)
        return 1.0 if total == 0 else self._total / total

    def reset(self) -> None:
        self._current = 0
        self._in_stage = 0
        self._total = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "stages": [s.to_dict() for s in self._stages],
            "current": self._current,
            "in_stage": self._in_stage,
            "total": self._total,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check.state_keys(
            state, ("stages", "current", "in_stage", "total"), "CurriculumScheduler"
        )
        stages = []
        for i, s in enumerate(state["stages"]):
            fields = ("name", "difficulty", "duration", "temperature", "negative_count")
            stages.append(CurriculumStage(**check.state_keys(s, fields, f"stages[{i}]")))
        current, in_stage, total = (
            check.non_negative_int(k, state[k]) for k in ("current", "in_stage", "total")
        )
        if (stages and not 0 <= current < len(stages)) or min(in_stage, total) < 0:
            raise ArgumentError("invalid CurriculumScheduler state_dict: position out of range")
        self._stages, self._current, self._in_stage, self._total = stages, current, in_stage, total


class DecayType(enum.Enum):
    """How ``TemperatureAnnealing`` moves from ``initial`` to ``final`` (see its formulas).

    Examples:
        >>> DecayType("cosine") is DecayType.COSINE
        True
    """

    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    COSINE = "cosine"
    STEP = "step"


class TemperatureAnnealing:
    """A temperature that moves from ``initial`` to ``final`` over ``steps`` steps.

    Formulas of the crate, with ``p = step / steps``: linear ``initial - (initial - final) p``;
    exponential ``initial * exp(ln(final / initial) / steps * step)``; cosine
    ``final + (initial - final) (1 + cos(pi p)) / 2``; step: down by equal amounts every
    ``step_size`` steps (default ``steps // 10``), never below ``final``. ``final`` from
    ``steps`` on.

    Examples:
        >>> a = TemperatureAnnealing(1.0, 0.1, 10)
        >>> [round(a.step(), 2) for _ in range(3)]
        [1.0, 0.91, 0.82]
    """

    def __init__(
        self,
        initial: float,
        final: float,
        steps: int,
        decay: DecayType = DecayType.LINEAR,
        step_size: Optional[int] = None,
    ) -> None:
        self._initial = check.positive("initial", initial)
        self._final = check.positive("final", final)
        self._steps = check.non_negative_int("steps", steps)
        if not isinstance(decay, DecayType):
            raise TypeError(f"decay must be a DecayType, got {type(decay).__name__}")
        self._decay = decay
        self._step_size = (
            self._steps // 10
            if step_size is None
            else check.non_negative_int("step_size", step_size)
        )
        self._current = 0

    def step(self) -> float:
        """The current temperature; then advance one step."""
        value = self.temperature
        self._current += 1
        return value

    @property
    def temperature(self) -> float:
        """The current temperature (the crate's ``get_temp()``)."""
        if self._current >= self._steps:
            return self._final
        s, total = self._current, self._steps
        start, end = self._initial, self._final
        span = start - end
        if self._decay is DecayType.LINEAR:
            return start - span * (s / total)
        if self._decay is DecayType.EXPONENTIAL:
            # In logs: end / start itself can overflow (1e10 / 1e-300), the path between cannot.
            log_start = math.log(start)
            return math.exp(log_start + (math.log(end) - log_start) * (s / total))
        if self._decay is DecayType.COSINE:
            return end + 0.5 * span * (1.0 + math.cos(math.pi * s / total))
        size = max(self._step_size, 1)
        chunks = total // size
        if chunks == 0:  # the crate divides by zero here and its max() then yields `final`
            return end
        value = start - span * (s // size) / chunks
        # Never past `final`, in the direction of travel (the crate's max() holds a rising
        # schedule at `final` from step 0: docs/parity.md).
        return max(value, end) if start >= end else min(value, end)

    def reset(self) -> None:
        self._current = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "initial": self._initial,
            "final": self._final,
            "steps": self._steps,
            "decay": self._decay.value,
            "step_size": self._step_size,
            "current": self._current,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("initial", "final", "steps", "decay", "step_size", "current")
        state = check.state_keys(state, keys, "TemperatureAnnealing")
        restored = TemperatureAnnealing(
            state["initial"],
            state["final"],
            state["steps"],
            DecayType(state["decay"]),
            state["step_size"],
        )
        current = check.non_negative_int("current", state["current"])
        restored._current = current
        self.__dict__.update(restored.__dict__)
