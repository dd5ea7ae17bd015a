# Stub of the compiled extension (rust/python). Checked against the built module by
# `python -m mypy.stubtest ruvector_attention._native` in .ci/run.
import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "adam_step",
    "best_simd_path",
    "clip_grad_norm",
    "force_simd_path",
    "get_num_threads",
    "set_num_threads",
    "sgd_step",
    "simd_path",
    "stream_probe",
]

__version__: str

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
def adam_step(
    params: list[npt.NDArray[np.float32]],
    grads: list[npt.NDArray[np.float32]],
    exp_avg: list[npt.NDArray[np.float32]],
    exp_avg_sq: list[npt.NDArray[np.float32]],
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
) -> None: ...
def clip_grad_norm(
    grads: list[npt.NDArray[np.float32]], max_norm: float, *, error_if_nonfinite: bool
) -> float: ...
def stream_probe(
    p: npt.NDArray[np.float32],
    g: npt.NDArray[np.float32],
    m: npt.NDArray[np.float32],
    v: npt.NDArray[np.float32],
) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_path() -> str: ...
def best_simd_path() -> str: ...
def force_simd_path(name: str) -> None: ...
