"""The per-query state of corpus mining (``mine_hard_negatives``): what a chunk of the corpus
leaves for each query, and how two such states merge.

A ``Plan`` holds everything a chunk's work needs (the queries, the score caps, the excluded pairs,
the list sizes); ``Plan.absorb`` turns corpus rows into a ``State``; ``State.merge`` is associative
and order-independent (lists in a total order, counts added, bounds maximised). The in-memory
loop, the Dask engine and the Ray engine are all built on these two operations.

Every score kept, compared or reported is the exact one (``exact_scores``: float64, one fixed
order, owned by the kernels). The float32 kernels only preselect (``_native.hardest_within``): a
chunk's rows are ranked in float32, the best few rescored exactly, and ``State.score_cut``
records how high the exact score of a row left out can be (its float32 score plus the kernels'
proven ``preselection_error``). Rows near the cap are listed, not counted, and decided on their
exact scores. So a list's entries above its cut are certainly the true best, in the true order,
whatever the chunking; what is below the cut the engine does not trust (``_corpus_engine``
mines those queries again with longer lists). The seeded draw of random sampling over an open
window is kept the same way (``by_key``, ``key_cut``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native

__all__ = [
    "BestList",
    "Cut",
    "Plan",
    "State",
    "exact_scores",
    "uniform_keys",
    "unit_rows",
    "unit_rows64",
]

IndexArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: The norm clamp of the cosine similarity: the kernels' own constant, so both agree.
NORM_EPS = float(_native.NORM_EPS)


def unit_rows64(x: Any) -> npt.NDArray[np.float64]:
    """Rows scaled to unit length in float64 (norms clamped at the kernels' ``NORM_EPS``)."""
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), NORM_EPS)
    with np.errstate(invalid="ignore", over="ignore"):
        unit: npt.NDArray[np.float64] = x64 / norms
    return unit


def unit_rows(x: F32) -> F32:
    """``unit_rows64`` rounded to float32 (what the float32 kernels read)."""
    with np.errstate(invalid="ignore", over="ignore"):
        unit: F32 = unit_rows64(x).astype(np.float32)
    return unit


def exact_scores(queries: F32, rows: F32, query_index: IndexArray, row_index: IndexArray) -> F64:
    """The exact score (the float64 cosine of the float32 rows, in the kernels' one fixed order)
    of each pair ``(queries[query_index[p]], rows[row_index[p]])``; NaN where a row holds NaN or
    Inf. The one place a score is computed: the same pair gives the same bits wherever it is
    scored."""
    # Aligned too: a block shipped between Dask processes can arrive at an odd byte offset.
    return _native.exact_cosines(
        np.require(queries, np.float32, ["C", "A"]),
        np.require(rows, np.float32, ["C", "A"]),
        np.ascontiguousarray(query_index, dtype=np.int64),
        np.ascontiguousarray(row_index, dtype=np.int64),
    )


def uniform_keys(
    seed_key: int, queries: IndexArray, columns: IndexArray
) -> npt.NDArray[np.float64]:
    """A uniform number in [0, 1) per (query, corpus index), a pure function of the pair and the
    seed, so draws never depend on chunking (owned by the kernels: ``mining/rng.rs``)."""
    return _native.corpus_keys(
        seed_key,
        np.ascontiguousarray(queries, dtype=np.int64),
        np.ascontiguousarray(columns, dtype=np.int64),
    )


class BestList:
    """Per query, the best ``size`` (value, corpus index) pairs seen so far, in a total order:
    higher value first, then lower index. Merging chunks in any order gives the same lists."""

    def __init__(self, queries: int, size: int) -> None:
        self.size = size
        self.values = np.full((queries, size), -np.inf, np.float64)
        self.index = np.full((queries, size), -1, np.int64)

    def merge(self, values: npt.NDArray[np.float64], index: IndexArray) -> None:
        """Merges candidate lists (rows of values and global indices; -1 or -inf: none)."""
        if self.size == 0:
            return
        all_values = np.concatenate([self.values, values], axis=1)
        all_index = np.concatenate([self.index, index], axis=1)
        # Sort each row by (value desc, index asc); padding (-inf, -1) goes last.
        missing = all_index < 0
        order_index = np.where(missing, np.iinfo(np.int64).max, all_index)
        order = np.lexsort((order_index, -all_values), axis=1)[:, : self.size]
        self.values = np.take_along_axis(all_values, order, axis=1)
        self.index = np.take_along_axis(all_index, order, axis=1)


class Cut:
    """Per query, a pair (value, row) that every row missing from a list ranks below, in the
    list's order (value desc, row asc); value -inf: no row is missing."""

    def __init__(self, queries: int) -> None:
        self.value = np.full(queries, -np.inf)
        self.index = np.full(queries, -1, np.int64)

    def raise_to(self, value: F64, index: IndexArray) -> None:
        """Keeps, per query, the higher-ranked of the two cuts (higher value, then lower row):
        an entry above it is above both."""
        higher = (value > self.value) | ((value == self.value) & (index < self.index))
        self.value = np.where(higher, value, self.value)
        self.index = np.where(higher, index, self.index)

    def certain(self, best: BestList) -> IndexArray:
        """Per query, how many leading entries of ``best`` are certainly the true best in the
        true order: all valid ones when nothing is missing, else those ranking above the cut."""
        valid = best.index >= 0
        value, index = self.value[:, None], self.index[:, None]
        above = valid & ((best.values > value) | ((best.values == value) & (best.index < index)))
        counts: IndexArray = np.where(
            np.isneginf(self.value), valid.sum(axis=1), above.sum(axis=1)
        ).astype(np.int64)
        return counts


@dataclass
class State:
    """What one chunk (or a merge of chunks) leaves per query; merges are order-independent.

    ``above_cap``: rows whose exact score is above the query's cap. ``by_score``: the best rows
    below the cap by exact score, with ``score_cut`` for the rows never offered to it.
    ``by_key``: random sampling over an open window, the passing rows with the highest draws,
    with ``key_cut`` likewise. ``rescored``: pairs scored exactly."""

    above_cap: IndexArray
    by_score: BestList
    by_key: BestList
    score_cut: Cut
    key_cut: Cut
    rescored: IndexArray
    #: Queries whose count above the cap may be short (see ``offer_top``): nothing is certain.
    unsure: npt.NDArray[np.bool_]

    def merge(self, other: State) -> None:
        self.above_cap += other.above_cap
        self.unsure |= other.unsure
        self.by_score.merge(other.by_score.values, other.by_score.index)
        self.by_key.merge(other.by_key.values, other.by_key.index)
        self.score_cut.raise_to(other.score_cut.value, other.score_cut.index)
        self.key_cut.raise_to(other.key_cut.value, other.key_cut.index)
        self.rescored += other.rescored

    def certain(self) -> tuple[IndexArray, IndexArray]:
        """Per query, how many leading entries of ``by_score`` and of ``by_key`` are certain
        (-1 for an unsure query: nothing is)."""
        scores, keys = self.score_cut.certain(self.by_score), self.key_cut.certain(self.by_key)
        scores[self.unsure] = -1
        keys[self.unsure] = -1
        return scores, keys


@dataclass(frozen=True)
class Plan:
    """Everything a chunk's work needs (sent once to every Dask worker or Ray task)."""

    #: The queries as float32 (what exact scores are computed from), their float32 unit rows
    #: (what the preselection ranks with) and their indices in the caller's query array (what
    #: the seeded draw is keyed by).
    queries: F32
    unit_q: F32
    query_ids: IndexArray
    cap: F64
    floor: float
    ex_rows: IndexArray
    ex_cols: IndexArray
    list_size: int
    key_size: int
    seed_key: int
    #: Per query, the kernels' bound on a float32 preselection score's distance from the exact
    #: score; 0 for an all-zero query, whose every score is exactly 0 both ways (so the
    #: preselection's tie order, lower row first, is the exact one too).
    errors: F64

    def default_chunk_rows(self) -> int:
        return 1 << 16

    def empty(self) -> State:
        n = len(self.unit_q)
        return State(
            np.zeros(n, np.int64),
            BestList(n, self.list_size),
            BestList(n, self.key_size),
            Cut(n),
            Cut(n),
            np.zeros(n, np.int64),
            np.zeros(n, bool),
        )

    def absorb(self, rows: F32, start: int) -> State:
        """The state of corpus rows ``start:start + len(rows)`` alone."""
        # Aligned: a block shipped between Dask processes can arrive at an odd byte offset.
        rows = np.require(rows, np.float32, ["C", "A"])
        state = self.empty()
        lo_i, hi_i = np.searchsorted(self.ex_cols, [start, start + len(rows)])
        offer_top(state, self, rows, start, self.ex_rows[lo_i:hi_i], self.ex_cols[lo_i:hi_i])
        return state


def _rounded(x: F64, *, up: bool) -> F32:
    """``x`` as float32, rounded outward (up or down), so a float32 comparison with it is as
    safe as the float64 one."""
    r = x.astype(np.float32)
    if up:
        return np.where(r < x, np.nextafter(r, np.float32(np.inf)), r)
    return np.where(r > x, np.nextafter(r, np.float32(-np.inf)), r)


def offer_top(
    state: State,
    plan: Plan,
    block: F32,
    start: int,
    ex_rows: IndexArray,
    ex_cols: IndexArray,
) -> None:
    """Offers each query's best candidates of one chunk below its cap to ``state.by_score``,
    with exact scores; counts the rows above the cap; bounds the rows left out; with random
    sampling over an open window, offers the passing rows with the best draws to
    ``state.by_key`` too.

    The kernel counts the rows whose float32 key is above ``cap + error`` (certainly above the
    cap) and lists the best keys at most that. Listed rows whose exact score is above the cap
    are counted too; a row left out of a full list has a key at most the last listed one's, so
    its exact score is at most that one's plus ``2 error``. When that could still reach the cap,
    a row near the cap may be missing from both the count and the list: the query is marked
    ``unsure`` and mined again with a longer list. The draw lists the rows whose key is within
    ``floor - error`` and ``cap + error`` by their draw; those whose exact score passes enter
    ``by_key``, and a row left out of a full draw list has a lower draw than its last entry."""
    n = len(plan.unit_q)
    take = min(plan.list_size, len(block))
    if take == 0:
        return
    capped = bool(np.isfinite(plan.cap).any())
    ceilings = _rounded(plan.cap + plan.errors, up=True) if capped else None
    excluded = None
    if ex_rows.size:
        # Per query, its distinct excluded rows of this chunk, ascending (CSR).
        order = np.lexsort((ex_cols, ex_rows))
        rows_s, cols_s = ex_rows[order], ex_cols[order] - start
        first = np.ones(len(rows_s), bool)
        first[1:] = (rows_s[1:] != rows_s[:-1]) | (cols_s[1:] != cols_s[:-1])
        rows_s, cols_s = rows_s[first], cols_s[first]
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows_s, minlength=n))])
        excluded = (offsets.astype(np.int64), cols_s.astype(np.int64))
    draw_take = min(plan.key_size, len(block))
    draw = None
    if draw_take:
        floors = _rounded(np.full(n, plan.floor) - plan.errors, up=False)
        draw = (plan.seed_key, plan.query_ids, floors, start, draw_take)
    picks, over, drawn = _native.hardest_within(plan.unit_q, block, take, ceilings, excluded, draw)
    state.above_cap += over.astype(np.int64)
    found, values = _scored(state, plan, block, picks)
    with np.errstate(invalid="ignore"):
        above = found & (values > plan.cap[:, None])
    state.above_cap += above.sum(axis=1)
    if take < len(block):
        # With error 0 (an all-zero query) keys are exact, and ties at the last key were
        # listed lower row first: the missing rows come after the last one listed.
        last, full = values[:, take - 1], found[:, take - 1]
        reach = np.where(np.isnan(last), np.inf, last + 2 * plan.errors)
        state.score_cut.raise_to(
            np.where(full, reach, -np.inf),
            np.where(full & (plan.errors == 0), picks[:, take - 1] + start + 1, -1),
        )
        if capped:
            state.unsure |= full & ~(reach < plan.cap)
    keep = found & ~above & ~np.isnan(values)
    state.by_score.merge(np.where(keep, values, -np.inf), np.where(keep, picks + start, -1))
    if drawn is not None:
        _offer_draws(state, plan, block, start, drawn)


def _scored(
    state: State, plan: Plan, block: F32, listed: IndexArray
) -> tuple[npt.NDArray[np.bool_], F64]:
    """Where the kernel listed a row (``listed`` >= 0: a row of ``block`` per query and slot), and
    its exact score there (NaN elsewhere); the rows count as rescored."""
    found = listed >= 0
    qi, slot = np.nonzero(found)
    values = np.full(listed.shape, np.nan)
    values[qi, slot] = exact_scores(plan.queries, block, qi, listed[qi, slot])
    state.rescored += found.sum(axis=1)
    return found, values


def _offer_draws(state: State, plan: Plan, block: F32, start: int, drawn: IndexArray) -> None:
    """The drawn rows whose exact score passes the floor and the cap enter ``state.by_key``;
    a full draw list cuts the rows it left out (all drew lower than its last entry)."""
    found, exact = _scored(state, plan, block, drawn)
    qi, slot = np.nonzero(found)
    with np.errstate(invalid="ignore"):
        passing = found & (exact >= plan.floor) & (exact <= plan.cap[:, None])
    keys = np.full(drawn.shape, -np.inf)
    keys[qi, slot] = uniform_keys(plan.seed_key, plan.query_ids[qi], drawn[qi, slot] + start)
    rows = drawn + start
    state.by_key.merge(np.where(passing, keys, -np.inf), np.where(passing, rows, -1))
    width = drawn.shape[1]
    if width < len(block):
        full = found[:, width - 1]
        state.key_cut.raise_to(
            np.where(full, keys[:, width - 1], -np.inf),
            np.where(full, rows[:, width - 1] + 1, -1),
        )
