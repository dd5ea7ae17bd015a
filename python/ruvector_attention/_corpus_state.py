"""The per-query state of corpus mining (``mine_hard_negatives``): what a chunk of the corpus
leaves for each query, and how two such states merge.

A ``Plan`` holds everything a chunk's work needs (the normalised queries, the score caps, the
excluded pairs, the list sizes); ``Plan.absorb`` turns corpus rows into a ``State``; ``State.merge``
is associative and order-independent (lists in a total order, counts added). Both the in-memory
loop of ``corpus.py`` and the Dask engine of ``_dask.py`` are built on these two operations, so
they give the same result whatever the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native
from .mining import HardNegativeMiner

__all__ = ["BLOCK_FLOATS", "BestList", "Plan", "State", "uniform_keys", "unit_rows", "unit_rows64"]

IndexArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]

#: Similarities computed per chunk: about this many floats (queries x chunk rows), so the working
#: memory stays in the tens of MB whatever the corpus size.
BLOCK_FLOATS = 1 << 22
#: The norm clamp of the cosine similarity: the kernels' own constant, so both agree.
NORM_EPS = float(_native.NORM_EPS)
#: One HARDEST miner for every chunk (it draws nothing; building one per chunk drew OS entropy).
_HARDEST = HardNegativeMiner.hardest(seed=0)


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
    """What one chunk (or a merge of chunks) leaves per query; merges are order-independent."""

    above_cap: IndexArray
    by_score: BestList
    by_key: BestList

    def merge(self, other: State) -> None:
        self.above_cap += other.above_cap
        self.by_score.merge(other.by_score.values, other.by_score.index)
        self.by_key.merge(other.by_key.values, other.by_key.index)


@dataclass(frozen=True)
class Plan:
    """Everything a chunk's work needs (sent once to every Dask worker)."""

    unit_q: F32
    cap: npt.NDArray[np.float64]
    floor: float
    ex_rows: IndexArray
    ex_cols: IndexArray
    head_size: int
    key_size: int
    seed_key: int

    @property
    def uncapped(self) -> bool:
        # Without a score cap the best candidates per chunk come straight from the HARDEST
        # miner's fused GEMM and top-k (the common case, much faster than scoring blocks here).
        return bool(np.isinf(self.cap).all()) and self.key_size == 0

    def default_chunk_rows(self) -> int:
        return 1 << 16 if self.uncapped else max(256, BLOCK_FLOATS // max(len(self.unit_q), 1))

    def empty(self) -> State:
        n = len(self.unit_q)
        return State(np.zeros(n, np.int64), BestList(n, self.head_size), BestList(n, self.key_size))

    def absorb(self, rows: F32, start: int) -> State:
        """The state of corpus rows ``start:start + len(rows)`` alone. A capped plan scores at
        most ``default_chunk_rows()`` rows at a time, whatever the block it is given (a Dask
        block of any size), so its working memory stays bounded."""
        if self.uncapped:
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
        if self.uncapped:
            # The miner normalises (with the same clamp) as it scores: no normalised copy.
            offer_top(state.by_score, self.unit_q, rows, start, ex_rows, ex_cols)
            return state
        block = unit_rows(rows)
        # float64 products: per element the same bits whatever the chunk's size.
        scores = self.unit_q.astype(np.float64) @ block.astype(np.float64).T
        scores[ex_rows, ex_cols - start] = np.nan
        valid = ~np.isnan(scores)
        over = valid & (scores > self.cap[:, None])
        state.above_cap += over.sum(axis=1)
        state.by_score.offer(np.where(valid & ~over, scores, -np.inf), start)
        if self.key_size:
            passing = valid & ~over & (scores >= self.floor)
            rows_p, cols_p = np.nonzero(passing)
            keys = np.full(scores.shape, -np.inf)
            keys[rows_p, cols_p] = uniform_keys(self.seed_key, rows_p, cols_p + start)
            state.by_key.offer(keys, start)
        return state


def offer_top(
    best: BestList,
    unit_q: F32,
    block: F32,
    start: int,
    ex_rows: IndexArray,
    ex_cols: IndexArray,
) -> None:
    """Offers each query's best candidates of one chunk (excluded pairs removed) to ``best``."""
    excluded_per_query = np.bincount(ex_rows, minlength=len(unit_q)) if ex_rows.size else None
    extra = int(excluded_per_query.max()) if excluded_per_query is not None else 0
    take = min(best.size + extra, len(block))
    if take == 0:
        return
    picks = _HARDEST.mine_batch(unit_q, None, block, take)
    found = picks >= 0
    safe = np.where(found, picks, 0)
    # Only the picks are normalised, gathered for a few queries at a time: all at once the
    # (Q, take, D) float64 copy grew with the rank window (8.3 GB at Q=2000, take=1010, D=256).
    values = np.empty(picks.shape, np.float64)
    step = max(1, BLOCK_FLOATS // (take * block.shape[1] or 1))
    for q0 in range(0, len(unit_q), step):
        picked = block[safe[q0 : q0 + step]].astype(np.float64)  # (step, take, D)
        picked /= np.maximum(np.linalg.norm(picked, axis=2, keepdims=True), NORM_EPS)
        values[q0 : q0 + step] = np.einsum(
            "qd,qkd->qk", unit_q[q0 : q0 + step].astype(np.float64), picked
        )
    keep = found
    if ex_rows.size:
        width = np.int64(len(block) + 1)
        pair = np.arange(len(unit_q), dtype=np.int64)[:, None] * width + safe
        keep &= ~np.isin(pair, ex_rows * width + (ex_cols - start))
    values = np.where(keep, values, -np.inf)
    index = np.where(keep, safe + start, -1)
    best.merge(values, index)
