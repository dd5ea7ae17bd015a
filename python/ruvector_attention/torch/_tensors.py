"""Tensors in and out of the NumPy kernels: zero-copy views where PyTorch allows them.

A CPU float32 tensor (contiguous or not) becomes a NumPy view of the same memory
(``tensor.detach().numpy()``); the NumPy layer copies only what the kernels cannot read in place
(strided views). Other floating dtypes are converted to float32 once; gradients go back in the
input's dtype. Tensors on other devices are refused by name: moving them is the caller's choice.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ArgumentError, LayoutError

__all__ = ["as_array", "from_array", "grad_array", "inplace_array"]


def _check_device(tensor: torch.Tensor, name: str) -> None:
    if tensor.device.type != "cpu":
        raise ArgumentError(
            f"{name} is on device {tensor.device}; ruvector_attention runs on the CPU, "
            "move it first with .cpu()"
        )
    if tensor.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {tensor.layout}")


_CPU = torch.device("cpu")


def as_array(tensor: object, name: str) -> np.ndarray:
    """A float32 NumPy array of ``tensor``'s values: a view for CPU float32 tensors."""
    if (
        isinstance(tensor, torch.Tensor)
        and tensor.dtype is torch.float32
        and tensor.device == _CPU
        and tensor.layout is torch.strided
        and not tensor.is_neg()
    ):
        return tensor.detach().numpy()  # the common case, checked in as few steps as possible
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    _check_device(tensor, name)
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    values = tensor.detach()
    if values.dtype != torch.float32:
        values = values.to(torch.float32)
    return values.resolve_conj().resolve_neg().numpy()


def from_array(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``array`` (a fresh kernel output) as a tensor in ``like``'s dtype, without a copy when
    that is float32."""
    out = torch.from_numpy(array)
    return out if like.dtype == torch.float32 else out.to(like.dtype)


def inplace_array(tensor: torch.Tensor, name: str) -> np.ndarray:
    """The float32 NumPy view a kernel updates in place (optimizer parameters and state)."""
    _check_device(tensor, name)
    if tensor.dtype != torch.float32:
        raise TypeError(
            f"{name} must be float32 (the kernels update float32 in place), got {tensor.dtype}"
        )
    if not tensor.is_contiguous():
        raise LayoutError(f"{name} must be contiguous to be updated in place")
    return tensor.detach().numpy()


def grad_array(grad: torch.Tensor, name: str) -> np.ndarray:
    """A parameter's gradient as the float32 NumPy array an optimizer kernel reads (a view
    unless the gradient is strided)."""
    if grad.device.type != "cpu" or grad.dtype != torch.float32:
        raise TypeError(
            f"{name}.grad must be a CPU float32 tensor, got {grad.dtype} on {grad.device}"
        )
    return grad.detach().contiguous().numpy()
