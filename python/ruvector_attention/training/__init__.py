"""The crate's ``ruvector_attention::training`` module: every public name of the package."""

from __future__ import annotations

from .. import (
    SGD,
    Adam,
    AdamW,
    Gradients,
    Graph,
    HardNegativeMiner,
    InBatchMiner,
    InfoNCELoss,
    LearningRateScheduler,
    LocalContrastiveLoss,
    MiningStrategy,
    Reduction,
    RuvectorError,
    ShapeError,
    SpectralRegularization,
    clip_grad_norm,
    get_num_threads,
    set_num_threads,
    simd_path,
)

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Gradients",
    "Graph",
    "HardNegativeMiner",
    "InBatchMiner",
    "InfoNCELoss",
    "LearningRateScheduler",
    "LocalContrastiveLoss",
    "MiningStrategy",
    "Reduction",
    "RuvectorError",
    "ShapeError",
    "SpectralRegularization",
    "clip_grad_norm",
    "get_num_threads",
    "set_num_threads",
    "simd_path",
]
