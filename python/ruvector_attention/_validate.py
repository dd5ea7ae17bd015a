"""Checks of scalar hyper-parameters, shared by every public class.

Each returns the value as a Python number or raises ``ValueError`` / ``TypeError`` naming the
argument, so that a bad value is refused at construction, not halfway through training.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["beta", "non_negative", "non_negative_int", "positive", "positive_int"]


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def non_negative(name: str, value: object) -> float:
    result = _real(name, value)
    if result < 0.0:
        raise ValueError(f"{name} must be >= 0, got {result}")
    return result


def positive(name: str, value: object) -> float:
    result = _real(name, value)
    if result <= 0.0:
        raise ValueError(f"{name} must be > 0, got {result}")
    return result


def beta(name: str, value: object) -> float:
    result = _real(name, value)
    if not 0.0 <= result < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {result}")
    return result


def non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    result = int(value)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {result}")
    return result


def positive_int(name: str, value: object) -> int:
    result = non_negative_int(name, value)
    if result == 0:
        raise ValueError(f"{name} must be >= 1, got 0")
    return result
