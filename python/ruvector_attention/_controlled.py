"""``mine_hard_negatives`` with false-negative controls: ``max_positive_similarity`` and a
rescoring teacher, which need each candidate's similarity to the positives or the teacher's
score, more than the streaming engine keeps per query.

Each query's best rows are taken with float64 scores (``_candidate_rows``) and the selection of
a candidate store applied to them (``select.select_block``: the same filters, the same seeded
draw). A query whose picks the list cannot settle (too many candidates filtered out) is mined
again with four times as many rows, until it is settled or its list holds the whole corpus:
the answer is exact, never cut short by the list's length.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._arrays import float_matrix, from_interchange
from ._candidate_rows import candidate_block, group_by_query
from ._corpus_engine import HardNegatives, _is_dask_array, _is_ray_corpus, _positive_pairs
from ._selection_rules import SelectionRules
from .errors import ArgumentError, ShapeError
from .select import AuditTally, Selection, select_block

__all__ = ["mine_with_controls"]

#: Queries mined together (the lists of a block: queries x rows x D float64 in slices).
_QUERY_BLOCK = 1024
#: Rows per query in the first pass beyond the window's end.
_FIRST_MARGIN = 32


def mine_with_controls(
    queries: object, corpus: object, positives: object, exclude_self: bool, rules: SelectionRules
) -> HardNegatives:
    q = float_matrix(queries, "queries", min_rows=0)
    if _is_ray_corpus(corpus):
        raise ArgumentError(
            "max_positive_similarity and rescore run on a NumPy, memory-mapped or Dask corpus; "
            "a Ray corpus is not supported with them yet"
        )
    if not _is_dask_array(corpus):
        corpus = from_interchange(corpus, "corpus")
    shape = getattr(corpus, "shape", None)
    if shape is None or len(shape) != 2 or (shape[1] != q.shape[1] and shape[0] > 0):
        raise ShapeError(f"corpus must be (N, {q.shape[1]}), got shape {shape}")
    if rules.sampling == "random" and rules.range_max is None:
        raise ArgumentError(
            "sampling='random' with max_positive_similarity or rescore needs range_max (the "
            "draw is from the window's candidates, which must all be looked at)"
        )
    n_queries, n_corpus = q.shape[0], int(shape[0])
    pos_rows, pos_cols = _positive_pairs(positives, n_queries, n_corpus)
    by_query = group_by_query(pos_rows, pos_cols, n_queries)
    out = Selection(
        indices=np.full((n_queries, rules.k), -1, np.int64),
        scores=np.full((n_queries, rules.k), np.nan, np.float64),
        shortfall=np.zeros(n_queries, np.int64),
        rescore_scores=(
            None if rules.rescore is None else np.full((n_queries, rules.k), np.nan, np.float64)
        ),
    )
    rescored = np.zeros(n_queries, np.int64)
    if n_queries == 0 or rules.k == 0 or n_corpus == 0:
        return _result(out, rescored)
    end = rules.range_max if rules.range_max is not None else rules.range_min + rules.k
    width = min(n_corpus, end + _FIRST_MARGIN)
    todo = np.arange(n_queries)
    while todo.size:
        for lo in range(0, todo.size, _QUERY_BLOCK):
            ids = todo[lo : lo + _QUERY_BLOCK]
            block = candidate_block(q, corpus, ids, by_query, width, exclude_self, n_corpus)
            out.shortfall[ids] = 0
            rescored[ids] += block["rescored"]
            select_block(block, width, rules, out, AuditTally())
        todo = np.flatnonzero(out.shortfall)
        if width == n_corpus:  # every list holds the whole corpus: nothing is left unsettled
            break
        width = min(n_corpus, 4 * width)
    return _result(out, rescored)


def _result(out: Selection, rescored: npt.NDArray[np.int64]) -> HardNegatives:
    return HardNegatives(
        out.indices,
        out.scores.astype(np.float32),
        rescore_scores=out.rescore_scores,
        rescored=rescored,
    )
