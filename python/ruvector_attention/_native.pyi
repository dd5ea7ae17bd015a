# Stub of the compiled extension (rust/python). Checked against the built module by
# `python -m mypy.stubtest ruvector_attention._native` in .ci/run.
from typing import Optional, final

import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_I64 = npt.NDArray[np.int64]
_LossResult = tuple[npt.NDArray[np.float64], Optional[tuple[_F32, _F32, Optional[_F32]]]]

__all__ = [
    "MAX_THREADS",
    "MIN_TEMPERATURE",
    "NORM_EPS",
    "AdamPlan",
    "MinerConfig",
    "__version__",
    "_testing",
    "cached_memory",
    "clip_grad_norm",
    "corpus_keys",
    "csr_from_dense",
    "csr_from_edges",
    "effective_temperature",
    "exact_cosines",
    "get_num_threads",
    "hardest_within",
    "info_nce_per_anchor",
    "info_nce_pooled",
    "laplacian",
    "local_contrastive",
    "mine",
    "preselection_error",
    "release_cached_memory",
    "requested_threads",
    "set_num_threads",
    "sgd_step",
    "simd_path",
    "variance_penalty",
]

__version__: str
MIN_TEMPERATURE: float
NORM_EPS: float
MAX_THREADS: int

def sgd_step(
    params: list[npt.NDArray[np.float32]],
    grads: list[npt.NDArray[np.float32]],
    momentum_buffers: list[npt.NDArray[np.float32]],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> None: ...

@final
class AdamPlan:
    def __new__(
        cls, *, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool
    ) -> AdamPlan: ...
    def step(
        self,
        params: list[npt.NDArray[np.float32]],
        grads: list[npt.NDArray[np.float32]],
        exp_avg: list[npt.NDArray[np.float32]],
        exp_avg_sq: list[npt.NDArray[np.float32]],
        *,
        step: int,
        lr: float,
    ) -> None: ...
    def try_step_one(
        self,
        param: npt.NDArray[np.float32],
        grad: object,
        exp_avg: npt.NDArray[np.float32],
        exp_avg_sq: npt.NDArray[np.float32],
        step: int,
        lr: float,
        /,
    ) -> bool: ...

def clip_grad_norm(
    grads: list[npt.NDArray[np.float32]], max_norm: float, *, error_if_nonfinite: bool
) -> float: ...
def effective_temperature(temperature: float) -> float: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def requested_threads() -> int: ...
def simd_path() -> str: ...
def info_nce_per_anchor(
    anchors: _F32,
    positives: _F32,
    negatives: _F32,
    *,
    temperature: float,
    grad_scale: Optional[float] = None,
    grad_weights: Optional[_F32] = None,
) -> _LossResult: ...
def info_nce_pooled(
    anchors: _F32,
    positives: _F32,
    negatives: Optional[_F32],
    *,
    temperature: float,
    grad_scale: Optional[float] = None,
    grad_weights: Optional[_F32] = None,
) -> _LossResult: ...
def local_contrastive(
    anchors: _F32,
    positives: _F32,
    negatives: _F32,
    *,
    margin: float,
    grad_scale: Optional[float] = None,
    grad_weights: Optional[_F32] = None,
) -> _LossResult: ...
def csr_from_edges(edges: _I64, weights: Optional[_F32], n: int) -> tuple[_I64, _I64, _F32]: ...
def csr_from_dense(graph: _F32) -> tuple[_I64, _I64, _F32]: ...
def laplacian(
    x: _F32,
    indptr: _I64,
    indices: _I64,
    weights: _F32,
    *,
    weight: float,
    with_grad: bool,
) -> tuple[float, Optional[_F32]]: ...
def variance_penalty(
    embeddings: _F32, *, weight: float, with_grad: bool
) -> tuple[float, Optional[_F32]]: ...
def release_cached_memory() -> int: ...
def cached_memory() -> int: ...

@final
class MinerConfig:
    @staticmethod
    def hardest() -> MinerConfig: ...
    @staticmethod
    def semi_hard(margin: float) -> MinerConfig: ...
    @staticmethod
    def softmax(temperature: float) -> MinerConfig: ...
    @staticmethod
    def wu(cutoff: float, nonzero_loss_cutoff: float) -> MinerConfig: ...
    @staticmethod
    def random() -> MinerConfig: ...

def mine(
    anchors: _F32,
    positives: Optional[_F32],
    candidates: _F32,
    k: int,
    *,
    config: MinerConfig,
    labels: Optional[tuple[_I64, _I64]] = None,
    key: int,
    call: int,
) -> _I64: ...
def corpus_keys(seed: int, queries: _I64, rows: _I64, /) -> npt.NDArray[np.float64]: ...
def exact_cosines(
    queries: _F32, rows: _F32, query_index: _I64, row_index: _I64, /
) -> npt.NDArray[np.float64]: ...
def preselection_error(dim: int, /) -> float: ...
def hardest_within(
    queries: _F32,
    rows: _F32,
    k: int,
    ceilings: _F32 | None,
    excluded: tuple[_I64, _I64] | None,
    draw: tuple[int, _I64, _F32, int, int] | None,
    /,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64], npt.NDArray[np.int64] | None]: ...

class _Testing:
    """Hooks for tests and benchmarks only (the private submodule ``_native._testing``)."""

    @staticmethod
    def best_simd_path() -> str: ...
    @staticmethod
    def force_simd_path(name: str) -> None: ...
    @staticmethod
    def set_parallel_threshold(elements: int | None, /) -> int | None: ...
    @staticmethod
    def stream_probe(
        p: npt.NDArray[np.float32],
        g: npt.NDArray[np.float32],
        m: npt.NDArray[np.float32],
        v: npt.NDArray[np.float32],
    ) -> None: ...

_testing: _Testing
