"""Corpus-scale hard-negative mining: ``mine_hard_negatives``.

For every query of a retrieval dataset, negatives from a corpus that may be larger than memory
(a NumPy array or a memory-mapped ``.npy`` file, float32 or float16), positive-aware as in
NV-Retriever and sentence-transformers' ``util.mine_hard_negatives``.

Definitions, per query ``q`` (``s(q, c)`` is the cosine similarity, norms clamped at 1e-8):

- Excluded from everything: ``q``'s positives, corpus row ``q`` when ``exclude_self``, and rows
  whose similarity is NaN (rows with NaN or Inf).
- The ranking: the other candidates by similarity, highest first, ties by lower corpus index.
- The window: ranks ``range_min <= rank < range_max`` of that ranking (``range_max=None``: no end).
- Within the window, a candidate passes when ``min_score <= s <= max_score`` and, for a query with
  positives (``positive_score`` = the lowest similarity among them, NaN ones ignored),
  ``s <= positive_score - absolute_margin`` and ``s <= positive_score * (1 - relative_margin)``.
- ``sampling="top"``: the first ``k`` passing candidates in ranking order. ``"random"``: ``k``
  distinct passing candidates drawn uniformly; each candidate's draw is a pure function of
  ``(seed, query, corpus index)``, so the result does not depend on chunking or threads.

The corpus is streamed in row chunks (each converted to float32 on its own, so a float16 corpus
is never copied whole); per query only the few candidates that can still matter are kept: the
number of candidates above the score cap, and the best ``range_min + k`` below it (or the best
``range_max``), so memory does not grow with the corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from ._controlled import mine_with_controls
from ._corpus_engine import HardNegatives, mine
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
            same result, to the bit.
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
        :class:`HardNegatives` with ``indices`` (Q, k) int64 (-1 padded) and ``scores`` (Q, k)
        float32 (NaN padded).

    Examples:
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> rng = np.random.default_rng(0)
        >>> corpus = rng.standard_normal((100, 8)).astype(np.float32)
        >>> queries = corpus[:5] + 0.01
        >>> mined = ra.mine_hard_negatives(queries, corpus, positives=np.arange(5), k=3)
        >>> bool((mined.indices != np.arange(5)[:, None]).all())  # positives never returned
        True
    """
    rules = checked_rules(
        k, range_min, range_max, min_score, max_score, absolute_margin, relative_margin,
        max_positive_similarity, sampling, seed, rescore, rescore_margin, rescore_batch,
    )  # fmt: skip
    if rules.controls:
        return mine_with_controls(queries, corpus, positives, bool(exclude_self), rules)
    return mine(
        queries,
        corpus,
        positives=positives,
        rules=rules,
        exclude_self=exclude_self,
        progress=progress,
        chunk_rows=chunk_rows,
        column=column,
    )
