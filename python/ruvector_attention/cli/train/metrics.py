"""Retrieval metrics on held-out embeddings, with cosine similarity and leave-one-out queries
(each sample queries all the others).

- recall@1: the fraction of queries whose nearest neighbour has their label.
- MAP@R (Musgrave et al. 2020): with R the number of other samples of the query's class,
  ``(1/R) * sum over the top R of precision@i at each relevant position``.

Neighbours come from the library's own HARDEST miner (a blocked GEMM with a fused top-k), one
block of queries at a time, so memory is O(block x n) and the n x n similarity matrix is never
built: 200,000 samples need a few hundred MB, not hundreds of GB. Similarities are float32; ties
rank the lower index first.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ...mining import HardNegativeMiner

__all__ = ["map_at_r", "recall_at_1", "retrieval_metrics"]

#: Queries per block: the miner's output and tiles for a block stay in a few MB.
QUERY_BLOCK = 1024


def _neighbours(
    emb: npt.NDArray[np.floating], k: int
) -> Iterator[tuple[int, npt.NDArray[np.int64]]]:
    """For each block of queries: (first query, their k nearest other samples), -1 padded."""
    e = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(e)
    miner = HardNegativeMiner.hardest()
    for start in range(0, n, QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, n)
        # One more than needed: the query itself is among the candidates (usually first).
        ranked = miner.mine_batch(e[start:stop], None, e, min(k + 1, n))
        # Drop the query itself wherever it ranks (a duplicate may tie with it): a stable sort on
        # "is the query" moves it to the end and keeps the others' order.
        own = ranked == np.arange(start, stop)[:, None]
        order = np.argsort(own, axis=1, kind="stable")[:, :k]
        out = np.take_along_axis(ranked, order, axis=1)
        if out.shape[1] < k:  # fewer samples than k + 1
            out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
        out[np.take_along_axis(own, order, axis=1)] = -1
        yield start, out


def recall_at_1(emb: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]) -> float:
    """The fraction of samples whose nearest other sample (cosine) shares their label.

    Examples:
        >>> emb = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
        >>> recall_at_1(emb, np.array([0, 0, 1, 1]))
        1.0
    """
    labels = np.asarray(labels)
    hits = 0
    for start, nearest in _neighbours(emb, 1):
        first = nearest[:, 0]
        hits += int(np.sum((first >= 0) & (labels[first] == labels[start : start + len(first)])))
    return hits / len(labels) if len(labels) else 0.0


def map_at_r(emb: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]) -> float:
    """Mean average precision at R (R: the other samples of the query's class).

    Examples:
        >>> emb = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
        >>> map_at_r(emb, np.array([0, 0, 1, 1]))
        1.0
    """
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    r_of = counts[inverse] - 1  # per query
    if len(labels) == 0 or r_of.max() == 0:
        return 0.0
    r_max = int(r_of.max())
    positions = np.arange(1, r_max + 1)
    total = 0.0
    for start, ranked in _neighbours(emb, r_max):
        r = r_of[start : start + len(ranked)]
        query_labels = labels[start : start + len(ranked)]
        # Relevant: a real neighbour of the query's class within the query's own top R.
        relevant = (ranked >= 0) & (labels[np.maximum(ranked, 0)] == query_labels[:, None])
        relevant &= positions[None, :] <= r[:, None]
        precision = np.cumsum(relevant, axis=1) / positions
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = np.sum(precision * relevant, axis=1) / r
        total += float(np.sum(ap[r > 0]))
    queries = int(np.count_nonzero(r_of))
    return total / queries if queries else 0.0


def retrieval_metrics(
    emb: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]
) -> dict[str, float]:
    return {"recall_at_1": recall_at_1(emb, labels), "map_at_r": map_at_r(emb, labels)}
