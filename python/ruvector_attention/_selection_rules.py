"""The arguments that choose negatives from a query's ranked candidates (rank window, score
filters, positive-aware margins, near-duplicates, a teacher, the sampling), checked once: the
one owner of their domains for ``mine_hard_negatives``, its engines and ``select_negatives``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _validate as check
from .errors import ArgumentError

__all__ = ["SelectionRules", "checked_rules"]


@dataclass
class SelectionRules:
    """The checked arguments of one selection."""

    k: int
    range_min: int
    range_max: Optional[int]
    min_score: Optional[float]
    max_score: Optional[float]
    absolute_margin: Optional[float]
    relative_margin: Optional[float]
    max_positive_similarity: Optional[float]
    sampling: str
    seed: Optional[int]
    seed_key: int
    rescore: Optional[Callable[[Any, Any], Any]]
    rescore_margin: Optional[float]
    rescore_batch: int

    @property
    def controls(self) -> bool:
        """Whether a filter needs more than the streaming engine keeps per query."""
        return self.max_positive_similarity is not None or self.rescore is not None

    def parameters(self) -> dict[str, Any]:
        names = (
            "k", "range_min", "range_max", "min_score", "max_score", "absolute_margin",
            "relative_margin", "max_positive_similarity", "sampling", "seed", "rescore_margin",
        )  # fmt: skip
        return {name: getattr(self, name) for name in names} | {
            "rescored": self.rescore is not None
        }


def checked_rules(
    k: int = 10,
    range_min: int = 0,
    range_max: Optional[int] = None,
    min_score: Optional[float] = None,
    max_score: Optional[float] = None,
    absolute_margin: Optional[float] = None,
    relative_margin: Optional[float] = None,
    max_positive_similarity: Optional[float] = None,
    sampling: str = "top",
    seed: Optional[int] = None,
    rescore: Optional[Callable[[Any, Any], Any]] = None,
    rescore_margin: Optional[float] = None,
    rescore_batch: int = 4096,
) -> SelectionRules:
    """The selection's arguments checked, each against its domain (mine_hard_negatives')."""
    k = check.non_negative_int("k", k)
    range_min = check.non_negative_int("range_min", range_min)
    if range_max is not None:
        range_max = check.integer("range_max", range_max, minimum=range_min)
    if sampling not in ("top", "random"):
        raise ArgumentError(f"sampling must be 'top' or 'random', got {sampling!r}")
    if seed is not None:
        seed = check.non_negative_int("seed", seed)
    if rescore is not None and not callable(rescore):
        raise TypeError(f"rescore must be callable(query_ids, candidate_ids), got {rescore!r}")
    if rescore_margin is not None and rescore is None:
        raise ArgumentError("rescore_margin applies to the scores of rescore=: give both")

    def optional(name: str, value: Optional[float], rule: Callable[[str, Any], float]) -> Any:
        return None if value is None else rule(name, value)

    return SelectionRules(
        k=k,
        range_min=range_min,
        range_max=range_max,
        min_score=optional("min_score", min_score, check.real),
        max_score=optional("max_score", max_score, check.real),
        absolute_margin=optional("absolute_margin", absolute_margin, check.non_negative),
        relative_margin=optional("relative_margin", relative_margin, check.beta),
        max_positive_similarity=optional(
            "max_positive_similarity", max_positive_similarity, check.real
        ),
        sampling=sampling,
        seed=seed,
        seed_key=int(np.random.SeedSequence(seed).generate_state(2, np.uint32).view(np.uint64)[0]),
        rescore=rescore,
        rescore_margin=optional("rescore_margin", rescore_margin, check.non_negative),
        rescore_batch=check.positive_int("rescore_batch", rescore_batch),
    )
