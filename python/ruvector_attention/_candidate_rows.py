"""Each query's best corpus rows with float64 scores: what a candidate store keeps per block, and
what ``mine_hard_negatives`` selects from when a filter needs more than the streaming engine
keeps (``max_positive_similarity``, a rescoring teacher).

The streaming engine finds a few more rows than asked (its float32 ranking can differ from the
float64 one near the cut), the rows are rescored in float64 from the stored values (float16 and
float32 widened exactly), sorted by (score desc, row asc) and cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._corpus_engine import _corpus_take, mine
from ._corpus_state import unit_rows64
from ._selection_rules import checked_rules

__all__ = ["candidate_block", "group_by_query"]

#: Extra candidates asked of the float32 engine before the float64 rescoring picks the best
#: ``candidates``: a row whose float32 rank is a little past the cut can be inside it in float64.
RESCORE_MARGIN = 16


def candidate_block(
    q: npt.NDArray[np.float32],
    corpus: Any,
    query_ids: npt.NDArray[np.int64],
    by_query: list[npt.NDArray[np.int64]],
    candidates: int,
    exclude_self: bool,
    n_corpus: int,
) -> Any:
    """The best ``candidates`` rows of each query in ``query_ids`` (rows of ``q``): the engine's
    best (a margin more than kept), rescored in float64, sorted by (score desc, row asc); as the
    dict :meth:`CandidateStore.blocks` yields (``query``, ``candidates``, ``scores``,
    ``positive_similarity``, ``count``, ``positives``, ``positive_score``, ``complete``)."""
    block_q = q[query_ids]
    # Excluded rows go to the engine as positives (it never returns those); with no margins or
    # caps set, positives change nothing else there.
    excluded = []
    for i in query_ids.tolist():
        own = np.array([i], np.int64) if exclude_self and i < n_corpus else np.zeros(0, np.int64)
        excluded.append(np.union1d(by_query[i], own))
    want = min(candidates + RESCORE_MARGIN, n_corpus)
    mined = mine(
        block_q, corpus, positives=excluded, rules=checked_rules(k=want), exclude_self=False,
        progress=False, chunk_rows=None, column=None, with_scores=False,
    ).indices  # fmt: skip
    unit_q = unit_rows64(block_q)
    distinct, where = np.unique(mined[mined >= 0], return_inverse=True)
    rows = _unit_corpus_rows(corpus, distinct)
    slot = np.full(mined.shape, -1, np.int64)
    slot[mined >= 0] = where
    positives = [by_query[i] for i in query_ids.tolist()]
    positive_rows = np.unique(np.concatenate([np.zeros(0, np.int64), *positives]))
    positive_units = _unit_corpus_rows(corpus, positive_rows)
    width = max([len(p) for p in positives] + [1])
    pos_slot = np.full((len(query_ids), width), -1, np.int64)
    for j, p in enumerate(positives):
        pos_slot[j, : len(p)] = np.searchsorted(positive_rows, p)
    found = mined >= 0
    scores = np.full(mined.shape, -np.inf)
    possim = np.full(mined.shape, np.nan)
    pos_score = np.full(len(query_ids), np.nan)
    # Float64 products a few queries at a time (a block of 4096 x 116 rows of 768 would be 3 GB).
    for lo in range(0, len(query_ids), 128):
        hi = min(lo + 128, len(query_ids))
        units = rows[np.maximum(slot[lo:hi], 0)]
        scores[lo:hi] = np.where(
            found[lo:hi], np.einsum("qkd,qd->qk", units, unit_q[lo:hi]), -np.inf
        )
        if positive_rows.size:
            p_units = positive_units[np.maximum(pos_slot[lo:hi], 0)]
            has = pos_slot[lo:hi] >= 0
            to_query = np.where(has, np.einsum("qpd,qd->qp", p_units, unit_q[lo:hi]), np.nan)
            with np.errstate(invalid="ignore"):  # a query without positives: all NaN
                pos_score[lo:hi] = np.fmin.reduce(to_query, axis=1)
            to_cand = np.einsum("qkd,qpd->qkp", units, p_units)
            to_cand = np.where(has[:, None, :], to_cand, np.nan)
            possim[lo:hi] = np.fmax.reduce(to_cand, axis=2)
    # Best first, ties by lower row; rows the engine did not fill (-inf) last.
    order = np.lexsort((np.where(found, mined, np.iinfo(np.int64).max), -scores), axis=-1)
    order = order[:, :candidates]
    mined = np.take_along_axis(mined, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    possim = np.take_along_axis(possim, order, axis=1)
    counts = (mined >= 0).sum(axis=1)
    eligible = n_corpus - np.array([len(e) for e in excluded])
    complete = (counts < candidates) | (counts >= eligible)
    return {
        "query": np.asarray(query_ids, np.int64),
        "candidates": mined,
        "scores": np.where(mined >= 0, scores, np.nan),
        "positive_similarity": possim,
        "count": counts.astype(np.int64),
        "positives": positives,
        "positive_score": pos_score,
        "complete": complete,
    }


def group_by_query(
    rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], queries: int
) -> list[npt.NDArray[np.int64]]:
    """Each query's distinct corpus rows among the ``(rows[i], cols[i])`` pairs, sorted."""
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(queries + 1))
    sorted_cols = cols[order]
    return [np.unique(sorted_cols[bounds[i] : bounds[i + 1]]) for i in range(queries)]


def _unit_corpus_rows(corpus: Any, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Unit float64 rows of the corpus (each row read once, in order; float16 and float32
    values widened exactly)."""
    if rows.size == 0:
        return np.zeros((0, int(corpus.shape[1])), np.float64)
    return unit_rows64(_corpus_take(corpus, rows, np.float64))
