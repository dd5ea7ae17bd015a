"""Checks of scalar arguments and saved state, shared by every public class.

Each check returns the value as a plain Python number (NumPy scalars are accepted like Python
ones) or raises ``ArgumentError`` (a ``ValueError``) or ``TypeError`` naming the argument, so that
a bad value is refused at construction, not halfway through training. The kernels compute in
float32, so a hyper-parameter that float32 cannot hold (beyond about 3.4e38, or a divisor below
its normal range) is refused here too: it would otherwise become inf, NaN or a silently wrong
result later.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from . import _native
from .errors import ArgumentError

__all__ = [
    "FLOAT32_MAX",
    "FLOAT32_TINY",
    "INT64_MAX",
    "adam_settings",
    "beta",
    "boolean",
    "float32_divisor",
    "float32_non_negative",
    "integer",
    "learning_rate",
    "non_negative",
    "non_negative_int",
    "positive",
    "positive_int",
    "real",
    "sgd_settings",
    "state_keys",
    "temperature",
]

#: The largest finite float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: The smallest normal float32: a divisor below it makes ``1 / x`` overflow float32.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
#: Counts, steps and sizes are kept below this (the kernels' 64-bit signed range).
INT64_MAX = 2**63 - 1


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def real(name: str, value: object) -> float:
    """A finite real number (Python or NumPy scalar; not a bool)."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an int beyond float64
        raise ArgumentError(
            f"{name} must be finite, got an integer beyond float64's range"
        ) from None
    if not math.isfinite(result):
        raise ArgumentError(f"{name} must be finite, got {result}")
    return result


def non_negative(name: str, value: object) -> float:
    result = real(name, value)
    if result < 0.0:
        raise ArgumentError(f"{name} must be >= 0, got {result}")
    return result


def positive(name: str, value: object) -> float:
    result = real(name, value)
    if result <= 0.0:
        raise ArgumentError(f"{name} must be > 0, got {result}")
    return result


def _within_float32(name: str, result: float) -> float:
    if abs(result) > FLOAT32_MAX:
        raise ArgumentError(
            f"{name} = {result!r} is beyond float32's range (at most {FLOAT32_MAX:.4g}), "
            "which the kernels compute in"
        )
    return result


def float32_non_negative(name: str, value: object) -> float:
    """A finite value >= 0 that float32 holds."""
    return _within_float32(name, non_negative(name, value))


def float32_divisor(name: str, value: object) -> float:
    """A value > 0 that float32 holds and can divide by (temperatures)."""
    result = _within_float32(name, positive(name, value))
    if result < FLOAT32_TINY:
        raise ArgumentError(
            f"{name} = {result!r} is below float32's normal range (at least {FLOAT32_TINY:.4g}): "
            f"1 / {name} would overflow the kernels' float32 arithmetic"
        )
    return result


def beta(name: str, value: object) -> float:
    result = real(name, value)
    if not 0.0 <= result < 1.0:
        raise ArgumentError(f"{name} must be in [0, 1), got {result}")
    return result


def integer(name: str, value: object, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer (Python or NumPy; not a bool) in ``[minimum, maximum]``."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    result = int(value)
    if result < minimum:
        raise ArgumentError(f"{name} must be >= {minimum}, got {result}")
    if result > maximum:
        raise ArgumentError(f"{name} must be <= {maximum}, got {result}")
    return result


def non_negative_int(name: str, value: object) -> int:
    return integer(name, value, minimum=0)


def positive_int(name: str, value: object) -> int:
    return integer(name, value, minimum=1)


def boolean(name: str, value: object) -> bool:
    """``True`` or ``False`` (Python or NumPy); strings such as ``"no"`` are refused."""
    if not _is_bool(value):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def state_keys(state: object, expected: Collection[str], owner: str) -> dict[str, Any]:
    """``state`` as a mapping with exactly the keys ``expected`` (a saved state of ``owner``).

    Raises:
        TypeError: ``state`` is not a dict.
        ValueError: a key is missing or unknown.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner} state_dict must be a dict, got {type(state).__name__}")
    missing = sorted(set(expected) - set(state))
    extra = sorted(str(k) for k in set(state) - set(expected))
    if missing or extra:
        parts = [f"missing {k!r}" for k in missing] + [f"unknown key {k!r}" for k in extra]
        raise ArgumentError(f"invalid {owner} state_dict: {'; '.join(parts)}")
    return dict(state)


def temperature(name: str, value: object) -> float:
    """A softmax temperature of the losses: > 0 and a float32 divisor, then clamped below at the
    kernels' ``MIN_TEMPERATURE`` by the kernels' own rule (the value the loss computes with)."""
    return float(_native.effective_temperature(float32_divisor(name, value)))


def _named(where: str, name: str) -> str:
    return f"{where} {name}" if where else name


def learning_rate(value: object, where: str = "") -> float:
    """An optimizer's ``lr``: finite, >= 0 and within float32 (checked alone when a scheduler sets
    it before every step, so that path stays cheap)."""
    return float32_non_negative(_named(where, "lr"), value)


def sgd_settings(
    lr: object, momentum: object, weight_decay: object, nesterov: object, where: str = ""
) -> tuple[float, float, float, bool]:
    """SGD's hyper-parameters, checked (``where`` prefixes the names: a torch param group).

    The one owner of their domains, for ``SGD`` and ``ruvector_attention.torch.SGD``: ``lr``,
    ``momentum`` and ``weight_decay`` finite, >= 0 and within float32; Nesterov momentum needs
    ``momentum > 0``.
    """
    lr_ = learning_rate(lr, where)
    momentum_ = float32_non_negative(_named(where, "momentum"), momentum)
    decay = float32_non_negative(_named(where, "weight_decay"), weight_decay)
    nesterov_ = boolean(_named(where, "nesterov"), nesterov)
    if nesterov_ and momentum_ <= 0.0:
        raise ArgumentError(f"{where + ': ' if where else ''}nesterov=True requires momentum > 0")
    return lr_, momentum_, decay, nesterov_


def adam_settings(
    lr: object, betas: object, eps: object, weight_decay: object, where: str = ""
) -> tuple[float, tuple[float, float], float, float]:
    """Adam's (and AdamW's) hyper-parameters, checked; the one owner of their domains: ``lr`` and
    ``weight_decay`` finite, >= 0 and within float32, each beta in [0, 1), ``eps`` a float32
    divisor (at least float32's smallest normal number, so ``1 / eps`` stays finite)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{_named(where, 'betas')} must be a pair (beta1, beta2), got {betas!r}")
    pair = (beta(_named(where, "beta1"), betas[0]), beta(_named(where, "beta2"), betas[1]))
    return (
        learning_rate(lr, where),
        pair,
        float32_divisor(_named(where, "eps"), eps),
        float32_non_negative(_named(where, "weight_decay"), weight_decay),
    )
