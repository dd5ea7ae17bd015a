"""Rust-backed NumPy training utilities for contrastive and metric learning of embeddings.

Mirrors the training module of the Rust crate ``ruvector-attention``; every public name is also
importable from :mod:`ruvector_attention.training`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._loss_common import Gradients, Reduction
from ._threadpool import register_with_threadpoolctl
from .candidate_store import CandidateStore, StoreError, mine_candidates, open_store
from .corpus import HardNegatives, mine_hard_negatives
from .curriculum import CurriculumScheduler, CurriculumStage, DecayType, TemperatureAnnealing
from .errors import ArgumentError, LayoutError, RuvectorError, ShapeError
from .export import export_negatives
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
from .select import Selection, save_selection, select_negatives
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
    "CandidateStore",
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
    "Selection",
    "ShapeError",
    "SpectralRegularization",
    "StateFileError",
    "StoreError",
    "TemperatureAnnealing",
    "__version__",
    "cached_memory",
    "clip_grad_norm",
    "export_negatives",
    "get_num_threads",
    "load_state",
    "mine_candidates",
    "mine_hard_negatives",
    "open_store",
    "release_cached_memory",
    "save_selection",
    "save_state",
    "select_negatives",
    "set_num_threads",
    "simd_path",
]
