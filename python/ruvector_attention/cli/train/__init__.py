"""The ``ruvector-attention train`` job: contrastive training of an embedding head on labelled
vectors, using every part of the library (InfoNCE, the miner, AdamW with warmup-cosine, gradient
clipping, the curriculum, optionally the Laplacian regulariser).

Needs the ``train`` extra (scikit-learn for the digits data and the PCA / LDA baselines,
matplotlib for the plot, tqdm for the progress bar): ``pip install "ruvector-attention[train]"``.
"""

from __future__ import annotations

from .config import TrainConfig
from .data import DataError, Dataset, load_dataset
from .metrics import map_at_r, recall_at_1
from .trainer import Trainer

__all__ = [
    "DataError",
    "Dataset",
    "TrainConfig",
    "Trainer",
    "load_dataset",
    "map_at_r",
    "recall_at_1",
]
