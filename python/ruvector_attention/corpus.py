"""Corpus-scale hard-negative mining: ``mine_hard_negatives``.

For every query of a retrieval dataset, negatives from a corpus that may be larger than memory
(a NumPy array or a memory-mapped ``.npy`` file, float32 or float16), positive-aware as in
NV-Retriever and sentence-transformers' ``util.mine_hard_negatives``.

The score. ``s(q, c)`` is the cosine similarity of the float32 rows (float16 widened exactly; a
float64 corpus, like the queries, rounded to float32 first), computed in float64 by one routine
of the kernels: each dot product summed in sixteen lanes (element ``i`` in lane ``i mod 16``)
that are then added pairwise in a fixed order, norms clamped at float32 ``1e-8``,
``s = (q . c / |q|) / |c|``. It is NaN for a row holding NaN or Inf. Every ranking, filter and
reported score uses exactly this number (reported as its float32 rounding), so a result does not
depend on chunking, engine (NumPy, memory map, Dask, Ray), thread count, SIMD path, or on a
filter that excludes nothing.

Definitions, per query ``q``:

- Excluded from everything: ``q``'s positives, corpus row ``q`` when ``exclude_self``, and rows
  whose score is NaN.
- The ranking: the other candidates by score, highest first, ties by lower corpus index.
- The window: ranks ``range_min <= rank < range_max`` of that ranking (``range_max=None``: no end).
- Within the window, a candidate passes when ``min_score <= s <= max_score`` and, for a query with
  positives (``positive_score`` = the lowest score among them, NaN ones ignored),
  ``s <= positive_score - absolute_margin`` and ``s <= positive_score * (1 - relative_margin)``.
- ``sampling="top"``: the first ``k`` passing candidates in ranking order. ``"random"``: ``k``
  distinct passing candidates drawn uniformly; each candidate's draw is a pure function of
  ``(seed, query, corpus index)``, so the result does not depend on chunking or threads.

How it is computed. The corpus is streamed in row chunks (each converted to float32 on its own,
so a float16 corpus is never copied whole). The float32 kernels preselect: per query the best
rows of a chunk below its score cap (plus a margin), and a count of the rows certainly above the
cap. Those rows are rescored exactly; the kernels' proven bound on the float32 error
(``preselection_error``: about ``2 D 2^-24``) says how high a row left out can score, so the
leading entries of each list above that bound are certainly the true best, in the true order.
A query whose answer needs entries the bound cannot certify (near-duplicates thicker than the
list, a crowded score cap) is mined again with a list four times as long, until certain; so
the answer is exact, and only the work varies: ``HardNegatives.rescored`` counts each query's
candidates scored exactly. Random sampling over an open window (``range_max=None``) keeps, in
the same kernel pass, each query's best draws among the rows that may pass its floor and cap
(within the bound); the exact scores decide which do, and a list that cannot certify ``k`` of
them is drawn again longer. Memory does not grow with the corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from ._controlled import mine_with_controls
from ._corpus_engine import HardNegatives, mine_exact
from ._selection_rules import checked_rules

__all__ = ["HardNegatives", "mine_hard_negatives"]


def mine_hard_negatives(
    queries: object,
    corpus: object,
    *,
    positives: object = None,
    k: int = 10,
    range_min: int = 0,
    range_max: Optional[int] = None,
    min_score: Optional[float] = None,
    max_score: Optional[float] = None,
    absolute_margin: Optional[float] = None,
    relative_margin: Optional[float] = None,
    sampling: str = "top",
    seed: Optional[int] = None,
    exclude_self: bool = False,
    progress: bool = False,
    chunk_rows: Optional[int] = None,
    column: Optional[str] = None,
    max_positive_similarity: Optional[float] = None,
    rescore: Optional[Callable[[Any, Any], Any]] = None,
    rescore_margin: Optional[float] = None,
    rescore_batch: int = 4096,
) -> HardNegatives:
    """Negatives for every query against the whole corpus (see the module for the definitions).

    Args:
        queries: (Q, D) real floats.
        corpus: (N, D) float32 or float16 (or any real float) NumPy array, including
            ``np.memmap`` / ``np.load(..., mmap_mode="r")``, read in row chunks; a PyTorch or
            JAX CPU tensor; a ``dask.array`` (mined on the active Dask cluster); or a corpus held
            by Ray: a ``ray.data.Dataset`` (its embedding column) or a list of ``ray.ObjectRef``
            of (rows, D) blocks, mined where Ray schedules each block. Every form gives the
            same result, to the bit: the exact answer of the definitions in the module.
        positives: each query's known positives as corpus indices: an int array (Q,), a list of
            int arrays, or a scipy.sparse (Q, N) matrix. Never returned.
        k: negatives per query (>= 0).
        range_min: the first rank of the window ``[range_min, range_max)``.
        range_max: the end of the window (None: to the end of the ranking).
        min_score: the lowest similarity a negative may have.
        max_score: the highest similarity a negative may have.
        absolute_margin: positive-aware cap ``s <= positive_score - absolute_margin`` (>= 0).
        relative_margin: positive-aware cap ``s <= positive_score * (1 - relative_margin)``, in
            [0, 1).
        sampling: ``"top"`` or ``"random"``.
        seed: for ``"random"``: None for fresh entropy, or an int for a reproducible draw.
        exclude_self: queries are rows of the corpus; query i never gets corpus row i.
        progress: show a progress bar (tqdm, when installed).
        chunk_rows: corpus rows per chunk (default: sized to keep the working memory small).
        column: for a ``ray.data.Dataset``, the column holding the embeddings (default: its only
            column, or its only tensor column).
        max_positive_similarity: drop a candidate whose cosine to any of the query's positives
            is at least this (a near-duplicate of a positive: likely a false negative).
        rescore: ``rescore(query_ids, candidate_ids) -> scores``, a teacher (a cross-encoder,
            say) called with int64 arrays of up to ``rescore_batch`` pairs across queries, on
            every candidate the other filters leave (and, with ``rescore_margin``, on the
            positives); its scores of the picks are returned in ``rescore_scores``.
        rescore_margin: drop a candidate whose teacher score exceeds the teacher's lowest score
            of the query's positives minus this margin.
        rescore_batch: pairs per ``rescore`` call.

            With any of these four, each query's best rows are rescored in float64 and the
            filters applied to them (as :func:`~ruvector_attention.select_negatives` does); a
            query they leave short is mined again with more rows, so the answer stays exact.
            ``sampling="random"`` then needs ``range_max``; a Ray corpus is not supported.

    Returns:
        :class:`HardNegatives` with ``indices`` (Q, k) int64 (-1 padded), ``scores`` (Q, k)
        float32 (NaN padded: each the float32 rounding of the exact score) and ``rescored``
        (Q,) int64 (the candidates each query had scored exactly: the work, not the answer).

    Examples:
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> rng = np.random.default_rng(0)
        >>> corpus = rng.standard_normal((100, 8)).astype(np.float32)
        >>> queries = corpus[:5] + 0.01
        >>> mined = ra.mine_hard_negatives(queries, corpus, positives=np.arange(5), k=3)
        >>> bool((mined.indices != np.arange(5)[:, None]).all())  # positives never returned
        True
        >>> same = ra.mine_hard_negatives(queries, corpus, positives=np.arange(5), k=3,
        ...                               chunk_rows=7)  # any chunking: the same bits
        >>> bool((same.indices == mined.indices).all() and (same.scores == mined.scores).all())
        True
    """
    rules = checked_rules(
        k, range_min, range_max, min_score, max_score, absolute_margin, relative_margin,
        max_positive_similarity, sampling, seed, rescore, rescore_margin, rescore_batch,
    )  # fmt: skip
    if rules.controls:
        return mine_with_controls(queries, corpus, positives, bool(exclude_self), rules)
    index, scores, rescored = mine_exact(
        queries, corpus, positives=positives, rules=rules, exclude_self=exclude_self,
        progress=progress, chunk_rows=chunk_rows, column=column,
    )  # fmt: skip
    return HardNegatives(index, scores.astype(np.float32), rescored=rescored)
