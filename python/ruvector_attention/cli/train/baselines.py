"""PCA and LDA baselines of the same dimension, fitted on the training part by scikit-learn and
scored on the held-out part with the same metrics."""

from __future__ import annotations

from typing import Any

from .data import Dataset
from .metrics import retrieval_metrics

__all__ = ["baselines"]


def baselines(data: Dataset, dim: int) -> dict[str, dict[str, dict[str, Any]]]:
    """PCA and LDA fitted on the training part, scored on the validation and test parts:
    ``{split: {"pca": {dims, recall_at_1, map_at_r}, "lda": {...}}}``."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    features = data.x_train.shape[1]
    pca_dims = min(dim, features, len(data.y_train))
    pca = PCA(n_components=pca_dims, random_state=0).fit(data.x_train)
    # LDA has at most (classes - 1) directions.
    lda_dims = min(dim, features, data.num_classes - 1)
    lda = LinearDiscriminantAnalysis(n_components=lda_dims).fit(data.x_train, data.y_train)
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for split in ("validation", "test"):
        x, y = data.split(split)
        scores[split] = {
            "pca": {"dims": pca_dims, **retrieval_metrics(pca.transform(x), y)},
            "lda": {"dims": lda_dims, **retrieval_metrics(lda.transform(x), y)},
        }
    return scores
