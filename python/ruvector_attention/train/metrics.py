"""Retrieval metrics on held-out embeddings, with cosine similarity and leave-one-out queries
(each sample queries all the others).

- recall@1: the fraction of queries whose nearest neighbour has their label.
- MAP@R (Musgrave et al. 2020): with R the number of other samples of the query's class,
  ``(1/R) * sum over the top R of precision@i at each relevant position``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["map_at_r", "recall_at_1", "retrieval_metrics"]


def _similarities(emb: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sims: npt.NDArray[np.float64] = e @ e.T
    np.fill_diagonal(sims, -np.inf)
    return sims


def recall_at_1(emb: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]) -> float:
    """The fraction of samples whose nearest other sample (cosine) shares their label.

    >>> recall_at_1(np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]), np.array([0, 0, 1, 1]))
    1.0
    """
    nearest = np.argmax(_similarities(emb), axis=1)
    return float(np.mean(labels[nearest] == labels))


def map_at_r(emb: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]) -> float:
    """Mean average precision at R (R: the other samples of the query's class).

    >>> map_at_r(np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]), np.array([0, 0, 1, 1]))
    1.0
    """
    sims = _similarities(emb)
    order = np.argsort(-sims, axis=1, kind="stable")
    scores = []
    for i in range(len(labels)):
        r = int(np.sum(labels == labels[i])) - 1
        if r == 0:
            continue
        relevant = labels[order[i, :r]] == labels[i]
        precision = np.cumsum(relevant) / np.arange(1, r + 1)
        scores.append(float(np.sum(precision * relevant) / r))
    return float(np.mean(scores)) if scores else 0.0


def retrieval_metrics(
    emb: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]
) -> dict[str, float]:
    return {"recall_at_1": recall_at_1(emb, labels), "map_at_r": map_at_r(emb, labels)}
