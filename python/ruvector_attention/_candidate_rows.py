"""Each query's best corpus rows with their exact scores: what a candidate store keeps per block,
and what ``mine_hard_negatives`` selects from when a filter needs more than the streaming engine
keeps (``max_positive_similarity``, a rescoring teacher).

The rows come from the streaming engine's exact top list (``mine_exact``: ranked by the exact
float64 score, ties by lower row, certified whatever the chunking); the similarities to the
positives are exact scores too, computed the one way (``exact_scores``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._corpus_engine import _corpus_take, mine_exact
from ._corpus_state import exact_scores
from ._selection_rules import checked_rules

__all__ = ["candidate_block", "group_by_query"]


def candidate_block(
    q: npt.NDArray[np.float32],
    corpus: Any,
    query_ids: npt.NDArray[np.int64],
    by_query: list[npt.NDArray[np.int64]],
    candidates: int,
    exclude_self: bool,
    n_corpus: int,
) -> Any:
    """The best ``candidates`` rows of each query in ``query_ids`` (rows of ``q``), sorted by
    (exact score desc, row asc); as the dict :meth:`CandidateStore.blocks` yields (``query``,
    ``candidates``, ``scores``, ``positive_similarity``, ``count``, ``positives``,
    ``positive_score``, ``complete``, and ``rescored``: the candidates scored exactly per
    query)."""
    block_q = q[query_ids]
    # Excluded rows go to the engine as positives (it never returns those); with no margins or
    # caps set, positives change nothing else there.
    excluded = []
    for i in query_ids.tolist():
        own = np.array([i], np.int64) if exclude_self and i < n_corpus else np.zeros(0, np.int64)
        excluded.append(np.union1d(by_query[i], own))
    mined, scores, rescored = mine_exact(
        block_q, corpus, positives=excluded, rules=checked_rules(k=min(candidates, n_corpus)),
        exclude_self=False, progress=False, chunk_rows=None, column=None,
    )  # fmt: skip
    if mined.shape[1] < candidates:  # a corpus smaller than the store's list: pad
        pad = candidates - mined.shape[1]
        mined = np.pad(mined, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.nan)
    found = mined >= 0
    positives = [by_query[i] for i in query_ids.tolist()]
    # Each query's positive score: the lowest exact score among its positives (NaN skipped).
    pos_q = np.repeat(np.arange(len(query_ids)), [len(p) for p in positives])
    pos_c = np.concatenate([np.zeros(0, np.int64), *positives])
    pos_score = np.full(len(query_ids), np.inf)
    if pos_c.size:
        distinct, where = np.unique(pos_c, return_inverse=True)
        positive_rows = _corpus_take(corpus, distinct)
        np.fmin.at(pos_score, pos_q, exact_scores(block_q, positive_rows, pos_q, where))
        # Each candidate's highest exact score against the query's positives.
        cand_rows, cand_where = _rows_of(corpus, mined[found])
        slot = np.full(mined.shape, -1, np.int64)
        slot[found] = cand_where
        possim = np.full(mined.shape, -np.inf)
        for j, p in enumerate(positives):
            if not p.size:
                continue
            have = np.flatnonzero(found[j])
            cq = np.repeat(slot[j, have], len(p))
            cp = np.tile(np.searchsorted(distinct, p), len(have))
            sims = exact_scores(cand_rows, positive_rows, cq, cp).reshape(len(have), len(p))
            with np.errstate(invalid="ignore"):
                possim[j, have] = np.fmax.reduce(sims, axis=1)
        possim[~found | np.isneginf(possim)] = np.nan
    else:
        possim = np.full(mined.shape, np.nan)
    pos_score[np.isinf(pos_score)] = np.nan
    counts = found.sum(axis=1)
    eligible = n_corpus - np.array([len(e) for e in excluded])
    complete = (counts < candidates) | (counts >= eligible)
    return {
        "query": np.asarray(query_ids, np.int64),
        "candidates": mined,
        "scores": np.where(found, scores, np.nan),
        "positive_similarity": possim,
        "count": counts.astype(np.int64),
        "positives": positives,
        "positive_score": pos_score,
        "complete": complete,
        "rescored": rescored,
    }


def group_by_query(
    rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], queries: int
) -> list[npt.NDArray[np.int64]]:
    """Each query's distinct corpus rows among the ``(rows[i], cols[i])`` pairs, sorted."""
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(queries + 1))
    sorted_cols = cols[order]
    return [np.unique(sorted_cols[bounds[i] : bounds[i + 1]]) for i in range(queries)]


def _rows_of(corpus: Any, rows: npt.NDArray[np.int64]) -> tuple[Any, npt.NDArray[np.int64]]:
    """The distinct corpus rows among ``rows`` (each read once, in order) and where each entry
    of ``rows`` is among them."""
    distinct, where = np.unique(rows, return_inverse=True)
    return _corpus_take(corpus, distinct), where.astype(np.int64)
