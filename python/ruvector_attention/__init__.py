"""Rust-backed NumPy training utilities for contrastive and metric learning of embeddings.

Mirrors the training module of the Rust crate ``ruvector-attention``; every public name is also
importable from :mod:`ruvector_attention.training`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._loss_common import Gradients, Reduction
from ._threadpool import register_with_threadpoolctl
from .corpus import HardNegatives, mine_hard_negatives
from .curriculum import CurriculumScheduler, CurriculumStage, DecayType, TemperatureAnnealing
from .errors import ArgumentError, LayoutError, RuvectorError, ShapeError
from .info_nce import InfoNCELoss
from .local_contrastive import LocalContrastiveLoss
from .mining import HardNegativeMiner, InBatchMiner, MiningStrategy
from .optim import SGD, Adam, AdamW, clip_grad_norm
from .runtime import (
    cached_memory,
    get_num_threads,
    release_cached_memory,
    set_num_threads,
    simd_path,
)
from .schedule import LearningRateScheduler
from .spectral import Graph, SpectralRegularization
from .state import StateFileError, load_state, save_state

# threadpoolctl (when installed) sees and limits the kernels' pool as it does BLAS's.
register_with_threadpoolctl()

try:
    __version__: str = version("ruvector-attention")
except PackageNotFoundError:  # running from a source tree without an installed distribution
    from ._native import __version__

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "ArgumentError",
    "CurriculumScheduler",
    "CurriculumStage",
    "DecayType",
    "Gradients",
    "Graph",
    "HardNegativeMiner",
    "HardNegatives",
    "InBatchMiner",
    "InfoNCELoss",
    "LayoutError",
    "LearningRateScheduler",
    "LocalContrastiveLoss",
    "MiningStrategy",
    "Reduction",
    "RuvectorError",
    "ShapeError",
    "SpectralRegularization",
    "StateFileError",
    "TemperatureAnnealing",
    "__version__",
    "cached_memory",
    "clip_grad_norm",
    "get_num_threads",
    "load_state",
    "mine_hard_negatives",
    "release_cached_memory",
    "save_state",
    "set_num_threads",
    "simd_path",
]
