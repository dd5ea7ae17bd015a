"""Loading, checking and splitting the labelled vectors. Every problem is reported as a
``DataError`` with a message that says what is wrong, before any training starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from .._common import InputError, load_npy

__all__ = ["DataError", "Dataset", "load_dataset"]


class DataError(InputError):
    """The input data cannot be trained on (the message says why)."""


@dataclass
class Dataset:
    """The three stratified parts, standardised with the training part's statistics.

    Training draws batches from ``train``; everything chosen during a run (defaults tuned by hand,
    the evaluation curve) looks at ``val`` only; ``test`` is scored once, at the end.
    """

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_val: npt.NDArray[np.float32]
    y_val: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    mean: npt.NDArray[np.float32]
    scale: npt.NDArray[np.float32]
    source: str

    @property
    def num_classes(self) -> int:
        return int(np.unique(np.concatenate([self.y_train, self.y_val, self.y_test])).size)

    def split(self, name: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(x, y)`` of ``"train"``, ``"validation"`` or ``"test"``."""
        parts = {
            "train": (self.x_train, self.y_train),
            "validation": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }
        return parts[name]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def _load_array(path: str, what: str) -> npt.NDArray[Any]:
    return load_npy(path, what)


def _check(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf":
        raise DataError(f"features must be numeric, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"features must be a non-empty 2-D array (samples, dims), got {x.shape}")
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {y.shape}")
    if y.dtype.kind not in "biu":
        raise DataError(
            f"labels must be integers (class ids), got dtype {y.dtype}"
            + (" (non-numeric labels)" if y.dtype.kind in "OUS" else "")
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(f"features has {x.shape[0]} rows but labels has {y.shape[0]} entries")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(
            f"features contain NaN or Inf ({int(bad.sum())} values, first in row {row})"
        )
    if (x == x[0]).all():
        raise DataError(
            "every sample has the same features: an embedding of them cannot tell any two apart, "
            "so there is nothing to train on"
        )
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise DataError("labels must contain at least 2 classes")
    lonely = classes[counts < 2]
    if lonely.size:
        raise DataError(
            f"every class needs at least 2 samples (an anchor and a positive); class "
            f"{lonely[0]} has 1" + (f" (and {lonely.size - 1} more)" if lonely.size > 1 else "")
        )
    return x, y.astype(np.int64)


def load_dataset(
    features: Optional[str],
    labels: Optional[str],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> Dataset:
    """Digits (from scikit-learn) or the user's ``.npy`` files, split three ways (stratified by
    class, reproducibly from ``seed``) and standardised with the training part's statistics."""
    if features is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x_raw, y_raw = digits.data, digits.target
        source = "scikit-learn digits (1797 images of 8x8 pixels, 10 classes)"
    else:
        assert labels is not None
        x_raw = _load_array(features, "features")
        y_raw = _load_array(labels, "labels")
        source = f"{features} + {labels}"
    x, y = _check(np.asarray(x_raw), np.asarray(y_raw))
    # Test first, then validation from the rest: the test part does not depend on val_fraction.
    x_rest, x_te, y_rest, y_te = _stratified(x, y, test_fraction, seed, "test")
    rest_fraction = val_fraction / (1.0 - test_fraction)
    x_tr, x_va, y_tr, y_va = _stratified(x_rest, y_rest, rest_fraction, seed + 1, "validation")
    # Each training step draws an anchor and a positive of its class from the training part.
    train_classes, train_counts = np.unique(y_tr, return_counts=True)
    short = [c for c in np.unique(y) if c not in train_classes] + list(
        train_classes[train_counts < 2]
    )
    if short:
        raise DataError(
            f"after the stratified split, class {short[0]} has fewer than 2 training samples "
            f"({len(short)} class(es) affected); every class needs at least 2 in the training part "
            "for an anchor and a positive: add samples of those classes"
        )
    mean = x_tr.mean(axis=0)
    scale = x_tr.std(axis=0)
    scale[scale == 0] = 1.0

    def standard(part: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        result: npt.NDArray[np.float32] = ((part - mean) / scale).astype(np.float32)
        return result

    return Dataset(
        x_train=standard(x_tr),
        y_train=y_tr,
        x_val=standard(x_va),
        y_val=y_va,
        x_test=standard(x_te),
        y_test=y_te,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        source=source,
    )


def _stratified(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.int64], fraction: float, seed: int, part: str
) -> tuple[Any, Any, Any, Any]:
    """``(x_rest, x_part, y_rest, y_part)``: a stratified ``fraction`` split off as ``part``."""
    from sklearn.model_selection import train_test_split

    classes = np.unique(y).size
    n_part = max(round(fraction * len(y)), classes)
    if len(y) - n_part < classes:
        raise DataError(
            f"too few samples ({len(y)}) for a stratified {part} part with {classes} classes"
        )
    try:
        parts: tuple[Any, Any, Any, Any] = tuple(
            train_test_split(x, y, test_size=n_part, stratify=y, random_state=seed)
        )
    except ValueError as exc:
        raise DataError(f"cannot split off a stratified {part} part: {exc}") from exc
    return parts
