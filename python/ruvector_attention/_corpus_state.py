"""The per-query state of corpus mining (``mine_hard_negatives``): what a chunk of the corpus
leaves for each query, and how two such states merge.

A ``Plan`` holds everything a chunk's work needs (the queries, the score caps, the excluded pairs,
the list sizes); ``Plan.absorb`` turns corpus rows into a ``State``; ``State.merge`` is associative
and order-independent (lists in a total order, counts added, bounds maximised). The in-memory
loop, the Dask engine and the Ray engine are all built on these two operations.

Every score kept, compared or reported is the exact one (``exact_scores``: float64, one fixed
order, owned by the kernels). The float32 kernels only preselect: a chunk's rows are ranked in
float32, the best few rescored exactly, and ``State.bound`` records how high the exact score of
a row left out can be (its float32 score plus the kernels' proven ``preselection_error``). Near
a score cap or floor, a row whose float32 score is within that error is rescored before it is
counted. So a list's entries above its bound are certainly the true best, in the true order,
whatever the chunking; what is below the bound the engine does not trust (``_corpus_engine``
mines those queries again with longer lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native

__all__ = [
    "BLOCK_FLOATS",
    "BestList",
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

#: Similarities computed per chunk: about this many floats (queries x chunk rows), so the working
#: memory stays in the tens of MB whatever the corpus size.
BLOCK_FLOATS = 1 << 22
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

    def offer(self, values: npt.NDArray[np.float64], first_column: int) -> None:
        """Offers a (Q, C) block whose column j is corpus row ``first_column + j``; -inf entries
        are not candidates."""
        if self.size == 0 or values.shape[1] == 0:
            return
        columns = values.shape[1]
        take = min(self.size, columns)
        # The take-th largest value per row; entries above it all enter, entries equal to it
        # enter lowest column first (columns are in corpus order).
        threshold = -np.partition(-values, take - 1, axis=1)[:, take - 1]
        above = values > threshold[:, None]
        equal = (values == threshold[:, None]) & np.isfinite(values)
        room = take - above.sum(axis=1)
        chosen = above | (equal & (np.cumsum(equal, axis=1) <= room[:, None]))
        rows, cols = np.nonzero(chosen)
        block_values = np.full((values.shape[0], take), -np.inf, np.float64)
        block_index = np.full((values.shape[0], take), -1, np.int64)
        slot = np.cumsum(chosen, axis=1)[rows, cols] - 1
        block_values[rows, slot] = values[rows, cols]
        block_index[rows, slot] = cols + first_column
        self.merge(block_values, block_index)

    def count(self) -> IndexArray:
        """Entries held per query."""
        counts: IndexArray = (self.index >= 0).sum(axis=1)
        return counts

    def last_value(self) -> F64:
        """Per query, the value of the last entry held (-inf when empty)."""
        if self.size == 0:
            return np.full(len(self.index), -np.inf)
        last = self.values[np.arange(len(self.index)), np.maximum(self.count() - 1, 0)]
        return np.where(self.count() > 0, last, -np.inf)

    def merge(self, values: npt.NDArray[np.float64], index: IndexArray) -> None:
        """Merges candidate lists (rows of values and global indices; -1: none)."""
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


@dataclass
class State:
    """What one chunk (or a merge of chunks) leaves per query; merges are order-independent.

    ``above_cap``: rows whose exact score is above the query's cap. ``by_score``: the best rows
    below the cap by exact score. ``bound``, ``bound_index``: every row below the cap that is
    missing from ``by_score`` (never offered to it) ranks below the pair (score ``bound``, row
    ``bound_index``) in the ranking's order (score desc, row asc); -inf: none is missing.
    ``by_key``: random sampling over an open window, the passing rows with the highest draws.
    ``rescored``: pairs scored exactly."""

    above_cap: IndexArray
    by_score: BestList
    by_key: BestList
    bound: F64
    bound_index: IndexArray
    rescored: IndexArray
    #: Queries whose count above the cap may be short (see ``offer_top``): nothing is certain.
    unsure: npt.NDArray[np.bool_]

    def merge(self, other: State) -> None:
        self.above_cap += other.above_cap
        self.unsure |= other.unsure
        self.by_score.merge(other.by_score.values, other.by_score.index)
        self.by_key.merge(other.by_key.values, other.by_key.index)
        self.raise_bound(other.bound, other.bound_index)
        self.rescored += other.rescored

    def raise_bound(self, bound: F64, index: IndexArray) -> None:
        """Keeps, per query, the higher-ranked of the two bounds (higher score, then lower row):
        an entry above it is above both."""
        higher = (bound > self.bound) | ((bound == self.bound) & (index < self.bound_index))
        self.bound = np.where(higher, bound, self.bound)
        self.bound_index = np.where(higher, index, self.bound_index)

    def certain(self) -> IndexArray:
        """Per query, how many leading ``by_score`` entries are certainly the true best (in the
        true order): all valid ones when nothing is missing, else those ranking above the
        bound."""
        valid = self.by_score.index >= 0
        values, index = self.by_score.values, self.by_score.index
        bound, bound_index = self.bound[:, None], self.bound_index[:, None]
        above = valid & ((values > bound) | ((values == bound) & (index < bound_index)))
        counts: IndexArray = np.where(
            np.isneginf(self.bound), valid.sum(axis=1), above.sum(axis=1)
        ).astype(np.int64)
        counts[self.unsure] = -1
        return counts


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

    @property
    def keyed(self) -> bool:
        # Random sampling over an open window keeps the passing rows with the best draws: every
        # row's pass is decided here, block by block. Otherwise the kernel's preselection
        # (fused GEMM, cap and top-k: `offer_top`) does the work.
        return self.key_size > 0

    def default_chunk_rows(self) -> int:
        return max(256, BLOCK_FLOATS // max(len(self.unit_q), 1)) if self.keyed else 1 << 16

    def empty(self) -> State:
        n = len(self.unit_q)
        return State(
            np.zeros(n, np.int64),
            BestList(n, self.list_size),
            BestList(n, self.key_size),
            np.full(n, -np.inf),
            np.full(n, -1, np.int64),
            np.zeros(n, np.int64),
            np.zeros(n, bool),
        )

    def absorb(self, rows: F32, start: int) -> State:
        """The state of corpus rows ``start:start + len(rows)`` alone. A keyed plan scores at
        most ``default_chunk_rows()`` rows at a time, whatever the block it is given (a Dask
        block of any size), so its working memory stays bounded."""
        # Aligned: a block shipped between Dask processes can arrive at an odd byte offset.
        rows = np.require(rows, np.float32, ["C", "A"])
        if not self.keyed:
            return self._absorb_rows(rows, start)
        step = self.default_chunk_rows()
        state = self._absorb_rows(rows[:step], start)
        for offset in range(step, len(rows), step):
            state.merge(self._absorb_rows(rows[offset : offset + step], start + offset))
        return state

    def _absorb_rows(self, rows: F32, start: int) -> State:
        state = self.empty()
        lo_i, hi_i = np.searchsorted(self.ex_cols, [start, start + len(rows)])
        ex_rows, ex_cols = self.ex_rows[lo_i:hi_i], self.ex_cols[lo_i:hi_i]
        if self.keyed:
            self._absorb_keyed(state, rows, start, ex_rows, ex_cols)
        else:
            # The kernel normalises (with the same clamp) as it scores: no normalised copy.
            offer_top(state, self, rows, start, ex_rows, ex_cols)
        return state

    def _absorb_keyed(
        self, state: State, rows: F32, start: int, ex_rows: IndexArray, ex_cols: IndexArray
    ) -> None:
        """Every row of the block against the cap and the floor (random sampling over an open
        window): float32 scores first; exact scores for the rows within ``errors`` of the cap or
        the floor (so each is counted on the right side) and for the best ``list_size`` below
        the cap."""
        n = len(self.unit_q)
        approx = self.unit_q @ unit_rows(rows).T  # float32, (Q, C)
        approx[ex_rows, ex_cols - start] = np.nan
        over = _beyond(approx, self.cap, self.errors, state, self.queries, rows)
        state.above_cap += over.sum(axis=1)
        ranked = np.where(over, -np.inf, approx)  # NaN (excluded or non-finite) stays NaN
        chosen, rest = _best_columns(ranked, self.list_size, self.errors == 0)
        picked = np.take_along_axis(ranked, chosen, axis=1)
        ok = np.isfinite(picked)
        qi, slot = np.nonzero(ok)
        values = np.full(chosen.shape, -np.inf)
        values[qi, slot] = exact_scores(self.queries, rows, qi, chosen[qi, slot])
        state.rescored += ok.sum(axis=1)
        values[np.isnan(values)] = -np.inf
        state.by_score.merge(values, np.where(np.isfinite(values), chosen + start, -1))
        # Rows not chosen have float32 scores at most `rest`. With error 0 (an all-zero query)
        # the choice among ties was lower row first: those missing at `rest` follow the last.
        rest64 = rest.astype(np.float64)
        tie = (self.errors == 0) & (rest == picked[:, -1])
        state.raise_bound(
            np.where(np.isfinite(rest64), rest64 + self.errors, -np.inf),
            np.where(tie, chosen[:, -1] + start + 1, -1),
        )
        if self.key_size:
            below = ~over & ~np.isnan(approx)
            floor = np.full(n, self.floor)
            # Passing: at least the floor, so not beyond it from above (the same test, mirrored).
            failing = _beyond(-approx, -floor, self.errors, state, -self.queries, rows) & below
            rows_p, cols_p = np.nonzero(below & ~failing)
            keys = np.full(approx.shape, -np.inf)
            keys[rows_p, cols_p] = uniform_keys(
                self.seed_key, self.query_ids[rows_p], cols_p + start
            )
            state.by_key.offer(keys, start)


def _beyond(
    approx: F32, limit: F64, errors: F64, state: State, queries: F32, rows: F32
) -> npt.NDArray[np.bool_]:
    """Where the exact score is above ``limit`` (per query): certain where the float32 score is
    beyond ``limit + errors``; within ``errors`` of it the exact score decides (counted in
    ``state.rescored``). ``queries`` negated gives the mirrored test (scores below a floor)."""
    hi = _rounded(limit + errors, up=True)[:, None]
    lo = _rounded(limit - errors, up=False)[:, None]
    over: npt.NDArray[np.bool_] = approx > hi
    band_q, band_c = np.nonzero((approx >= lo) & ~over)
    if band_q.size:
        exact = exact_scores(queries, rows, band_q, band_c)
        state.rescored += np.bincount(band_q, minlength=len(approx))
        up = exact > limit[band_q]
        over[band_q[up], band_c[up]] = True
    return over


def _rounded(x: F64, *, up: bool) -> F32:
    """``x`` as float32, rounded outward (up or down), so a float32 comparison with it is as
    safe as the float64 one."""
    r = x.astype(np.float32)
    if up:
        return np.where(r < x, np.nextafter(r, np.float32(np.inf)), r)
    return np.where(r > x, np.nextafter(r, np.float32(-np.inf)), r)


def _best_columns(
    ranked: F32, size: int, lowest_first: npt.NDArray[np.bool_]
) -> tuple[IndexArray, F32]:
    """Per row, the columns of the ``size`` highest values (NaN lowest) and the highest value
    left out (NaN: none). Rows in ``lowest_first`` break ties by lower column (a stable sort,
    for the few queries whose preselection is exact)."""
    n, columns = ranked.shape
    size = min(size, columns)
    if size == columns:
        return np.broadcast_to(np.arange(columns), (n, columns)).copy(), np.full(
            n, np.nan, np.float32
        )
    order = np.argpartition(-ranked, size, axis=1)
    tied = np.flatnonzero(lowest_first)
    if tied.size:
        order[tied] = np.argsort(-ranked[tied], axis=1, kind="stable")
    chosen = order[:, :size]
    rest = np.take_along_axis(ranked, order[:, size : size + 1], axis=1)[:, 0]
    return chosen, rest


def offer_top(
    state: State,
    plan: Plan,
    block: F32,
    start: int,
    ex_rows: IndexArray,
    ex_cols: IndexArray,
) -> None:
    """Offers each query's best candidates of one chunk below its cap to ``state.by_score``,
    with exact scores; counts the rows above the cap; bounds the rows left out.

    The kernel counts the rows whose float32 key is above ``cap + error`` (certainly above the
    cap) and lists the best keys at most that. Listed rows whose exact score is above the cap
    are counted too; a row left out of a full list has a key at most the last listed one's, so
    its exact score is at most that one's plus ``2 error``. When that could still reach the cap,
    a row near the cap may be missing from both the count and the list: the query is marked
    ``unsure`` and mined again with a longer list."""
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
    picks, over = _native.hardest_within(plan.unit_q, block, take, ceilings, excluded)
    state.above_cap += over.astype(np.int64)
    found = picks >= 0
    qi, slot = np.nonzero(found)
    values = np.full(picks.shape, np.nan)
    values[qi, slot] = exact_scores(plan.queries, block, qi, picks[qi, slot])
    state.rescored += found.sum(axis=1)
    with np.errstate(invalid="ignore"):
        above = found & (values > plan.cap[:, None])
    state.above_cap += above.sum(axis=1)
    if take < len(block):
        # With error 0 (an all-zero query) keys are exact, and ties at the last key were
        # listed lower row first: the missing rows come after the last one listed.
        last, full = values[:, take - 1], found[:, take - 1]
        reach = np.where(np.isnan(last), np.inf, last + 2 * plan.errors)
        state.raise_bound(
            np.where(full, reach, -np.inf),
            np.where(full & (plan.errors == 0), picks[:, take - 1] + start + 1, -1),
        )
        if capped:
            state.unsure |= full & ~(reach < plan.cap)
    keep = found & ~above & ~np.isnan(values)
    state.by_score.merge(np.where(keep, values, -np.inf), np.where(keep, picks + start, -1))
