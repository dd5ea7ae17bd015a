"""PCA and LDA baselines of the same dimension, fitted on the training part by scikit-learn and
scored on the held-out part with the same metrics."""

from __future__ import annotations

from typing import Any

from .data import Dataset
from .metrics import retrieval_metrics

__all__ = ["baselines"]


def baselines(data: Dataset, dim: int) -> dict[str, dict[str, dict[str, Any]]]:
    """PCA and LDA fitted on the training part, scored on the validation and test parts:
    ``{split: {"pca": {dims, recall_at_1, map_at_r}, "lda": {...}}}``.

    A baseline that cannot be computed on these data (scikit-learn raises) is reported as such:
    its scores are None and ``unavailable`` holds the reason; the run's own results stand.
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    features = data.x_train.shape[1]
    pca_dims = min(dim, features, len(data.y_train))
    # LDA has at most (classes - 1) directions.
    lda_dims = min(dim, features, data.num_classes - 1)

    def make(name: str) -> Any:
        if name == "pca":
            return PCA(n_components=pca_dims, random_state=0)
        return LinearDiscriminantAnalysis(n_components=lda_dims)

    methods = {"pca": pca_dims, "lda": lda_dims}
    scores: dict[str, dict[str, dict[str, Any]]] = {"validation": {}, "test": {}}
    for name, dims in methods.items():
        try:
            fitted = make(name).fit(data.x_train, data.y_train)
            results = {
                split: {"dims": dims, **retrieval_metrics(fitted.transform(x), y)}
                for split in scores
                for x, y in [data.split(split)]
            }
        except Exception as exc:  # any failure of the baseline is reported, not fatal
            reason = f"{name.upper()} failed on these data: {type(exc).__name__}: {exc}"
            results = {
                split: {"dims": dims, "recall_at_1": None, "map_at_r": None, "unavailable": reason}
                for split in scores
            }
        for split, result in results.items():
            scores[split][name] = result
    return scores
