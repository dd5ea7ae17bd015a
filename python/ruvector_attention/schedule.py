"""Learning-rate schedule: linear warmup, then cosine decay to a floor (the crate's scheduler)."""

from __future__ import annotations

import math
from typing import Any

from . import _validate as check

__all__ = ["LearningRateScheduler"]


_STATE_KEYS = ("initial_lr", "warmup_steps", "decay_steps", "min_lr", "current_step")


class LearningRateScheduler:
    """Linear warmup then cosine decay, as in the crate's ``LearningRateScheduler``.

    For step ``s`` (0-based): during warmup (``s < warmup_steps``) the rate is
    ``initial_lr * (s + 1) / warmup_steps``; after it, with ``q = min(1, (s - warmup_steps) /
    decay_steps)``, it is ``min_lr + (initial_lr - min_lr) * (1 + cos(pi * q)) / 2``, which
    reaches ``min_lr`` after ``decay_steps`` and stays there.

    The scheduler is also a plain callable ``step -> lr`` (``scheduler(s)``), so it composes
    with code that expects a schedule function.

    Args:
        initial_lr: the peak learning rate, >= 0.
        warmup_steps: steps of linear warmup, >= 0.
        decay_steps: steps of cosine decay after warmup, >= 1.
        min_lr: the floor, >= 0.

    Examples:
        >>> from ruvector_attention import LearningRateScheduler
        >>> sched = LearningRateScheduler(0.1, warmup_steps=2, decay_steps=2, min_lr=0.0)
        >>> [round(sched.step(), 4) for _ in range(5)]
        [0.05, 0.1, 0.1, 0.05, 0.0]
    """

    _initial_lr: float
    _warmup_steps: int
    _decay_steps: int
    _min_lr: float

    def __init__(
        self,
        initial_lr: float,
        *,
        warmup_steps: int = 0,
        decay_steps: int = 100_000,
        min_lr: float = 1e-7,
    ) -> None:
        self._configure(
            initial_lr=initial_lr, warmup_steps=warmup_steps, decay_steps=decay_steps, min_lr=min_lr
        )
        self._current_step = 0

    def _configure(self, **values: Any) -> None:
        """Sets the given settings, each checked (the one owner of their domains)."""
        checks = {
            "initial_lr": check.float32_non_negative,
            "warmup_steps": check.non_negative_int,
            "decay_steps": check.positive_int,
            "min_lr": check.float32_non_negative,
        }
        checked = {key: checks[key](key, value) for key, value in values.items()}
        for key, value in checked.items():
            setattr(self, f"_{key}", value)

    @property
    def initial_lr(self) -> float:
        return self._initial_lr

    @property
    def warmup_steps(self) -> int:
        return self._warmup_steps

    @property
    def decay_steps(self) -> int:
        return self._decay_steps

    @property
    def min_lr(self) -> float:
        return self._min_lr

    @property
    def current_step(self) -> int:
        """The step whose rate :meth:`get_lr` returns."""
        return self._current_step

    def lr_at(self, step: int) -> float:
        """The learning rate at 0-based ``step``, without changing the scheduler."""
        s = check.non_negative_int("step", step)
        if s < self._warmup_steps:
            return self._initial_lr * (s + 1) / self._warmup_steps
        progress = min(1.0, (s - self._warmup_steps) / self._decay_steps)
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self._min_lr + (self._initial_lr - self._min_lr) * decay

    def __call__(self, step: int) -> float:
        return self.lr_at(step)

    def get_lr(self) -> float:
        """The current learning rate, without advancing."""
        return self.lr_at(self._current_step)

    def step(self) -> float:
        """Return the current learning rate, then advance one step."""
        lr = self.get_lr()
        self._current_step += 1
        return lr

    def reset(self) -> None:
        """Go back to step 0."""
        self._current_step = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "initial_lr": self._initial_lr,
            "warmup_steps": self._warmup_steps,
            "decay_steps": self._decay_steps,
            "min_lr": self._min_lr,
            "current_step": self._current_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (every key required, no others)."""
        state_dict = dict(check.state_keys(state_dict, _STATE_KEYS, "LearningRateScheduler"))
        fresh = LearningRateScheduler(
            state_dict["initial_lr"],
            warmup_steps=state_dict["warmup_steps"],
            decay_steps=state_dict["decay_steps"],
            min_lr=state_dict["min_lr"],
        )
        fresh._current_step = check.non_negative_int("current_step", state_dict["current_step"])
        self.__dict__.update(fresh.__dict__)

    def __getstate__(self) -> dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return (
            f"LearningRateScheduler(initial_lr={self._initial_lr!r}, "
            f"warmup_steps={self._warmup_steps}, decay_steps={self._decay_steps}, "
            f"min_lr={self._min_lr!r})"
        )
