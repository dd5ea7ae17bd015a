"""``torch.optim.Optimizer`` subclasses whose update is one native call per param group.

State uses torch's names and layout (``step`` as a float32 0-d tensor, ``exp_avg``,
``exp_avg_sq``, ``momentum_buffer``), so ``state_dict()`` moves between these classes and
``torch.optim.SGD`` / ``Adam`` / ``AdamW`` in both directions, and ``torch.optim.lr_scheduler``
drives ``param_groups[i]["lr"]`` as usual. The formulas are torch's (see
:mod:`ruvector_attention.optim`); options that would change them and that the kernels do not
implement (``amsgrad``, ``maximize``, ``dampening``, ``differentiable``) are refused by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import torch

from .. import _native
from .. import _validate as check
from ..errors import ArgumentError
from ._tensors import grad_array, inplace_array

__all__ = ["SGD", "Adam", "AdamW"]

_Params = Iterable[Any]


def _number(value: object, name: str) -> float:
    """A hyper-parameter that schedulers may have stored as a 0-d tensor, as a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ArgumentError(
                f"{name} must be a number, got a tensor of shape {tuple(value.shape)}"
            )
        return float(value.item())
    return value  # type: ignore[return-value]


class _NativeOptimizer(torch.optim.Optimizer):
    """What the three optimizers share: checks of groups and tensors, the step loop."""

    #: Options torch's optimizers have that these kernels do not implement: each must be off.
    _OFF: ClassVar[tuple[str, ...]] = ("amsgrad", "maximize", "differentiable")

    def __init__(self, params: _Params, defaults: dict[str, Any]) -> None:
        self._check_hyper(defaults, "defaults")
        # NumPy views of the tensors the kernels update in place (parameters and state), made
        # once: id -> (tensor, its data pointer, view). A tensor given new storage gets a new view.
        self._views: dict[int, tuple[torch.Tensor, int, np.ndarray]] = {}
        # The hyper-parameters of each group as last checked (a step re-checks only on change).
        self._checked: dict[int, tuple[Any, ...]] = {}
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's __getstate__ keeps defaults, state and param_groups only: a copy or an unpickled
        # optimizer starts with empty caches (without this it had none and failed at load).
        super().__setstate__(state)
        self._views = {}
        self._checked = {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._views.clear()
        self._checked.clear()
        super().load_state_dict(state_dict)

    def _view(self, tensor: torch.Tensor, name: str) -> np.ndarray:
        """``inplace_array(tensor)``, cached while the tensor keeps its storage and shape."""
        entry = self._views.get(id(tensor))
        if (
            entry is not None
            and entry[0] is tensor
            and entry[1] == tensor.data_ptr()
            and entry[2].shape == tensor.shape
        ):
            return entry[2]
        view = inplace_array(tensor, name)
        self._views[id(tensor)] = (tensor, tensor.data_ptr(), view)
        return view

    def _check_group(self, index: int, group: dict[str, Any], where: str) -> None:
        """``_check_hyper`` unless this group's values are those last found valid."""
        values = tuple(v for k, v in sorted(group.items()) if k != "params")
        if any(isinstance(v, torch.Tensor) for v in values):
            self._check_hyper(group, where)  # tensors do not compare as plain values
            return
        if self._checked.get(index) != values:
            self._check_hyper(group, where)
            self._checked[index] = values

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_hyper(self.param_groups[-1], f"param_groups[{len(self.param_groups) - 1}]")

    def _check_hyper(self, group: dict[str, Any], where: str) -> None:
        for key in self._OFF:
            if group.get(key):
                raise ArgumentError(
                    f"{where}: {key}=True is not supported by {type(self).__name__} "
                    "(use torch.optim for it)"
                )

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()``'s value.

        Raises:
            RuntimeError: a gradient is sparse.
            TypeError / ValueError: a parameter is not a contiguous CPU float32 tensor, or a
                group's hyper-parameters are out of range (after a scheduler or a state load).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g, group in enumerate(self.param_groups):
            where = f"param_groups[{g}]"
            self._check_group(g, group, where)
            params, grads = [], []
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients "
                        f"({where}['params'][{i}])"
                    )
                params.append((f"{where}['params'][{i}]", p))
                grads.append(p.grad)
            if params:
                self._update(group, where, params, grads)
                # Autograd must see the in-place change (a graph holding these parameters
                # then refuses to backpropagate, as it does after torch's own optimizers).
                torch.autograd.graph.increment_version([p for _, p in params])
        return loss

    def _update(
        self,
        group: dict[str, Any],
        where: str,
        params: list[tuple[str, torch.Tensor]],
        grads: list[torch.Tensor],
    ) -> None:
        raise NotImplementedError


class SGD(_NativeOptimizer):
    """SGD with momentum, Nesterov momentum and L2 weight decay (``torch.optim.SGD``'s formula,
    dampening 0), one native call per param group.

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import SGD
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = SGD([w], lr=0.1, momentum=0.9)
        >>> w.grad = torch.tensor([1.0, 0.0, -1.0])
        >>> opt.step()
        >>> w.detach()
        tensor([0.9000, 1.0000, 1.1000])
    """

    def __init__(
        self,
        params: _Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any], where: str) -> None:
        super()._check_hyper(group, where)
        if group.get("dampening", 0.0):
            raise ArgumentError(f"{where}: dampening must be 0 for {type(self).__name__}")
        lr = _number(group["lr"], f"{where} lr")
        check.sgd_settings(lr, group["momentum"], group["weight_decay"], group["nesterov"], where)

    def _update(
        self,
        group: dict[str, Any],
        where: str,
        params: list[tuple[str, torch.Tensor]],
        grads: list[torch.Tensor],
    ) -> None:
        momentum = float(group["momentum"])
        buffers = []
        if momentum != 0.0:
            for _, p in params:
                state = self.state[p]
                if state.get("momentum_buffer") is None:
                    # torch starts from a copy of the first gradient; b = momentum * 0 + g
                    # is the same number.
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.contiguous_format
                    )
                buffers.append(self._view(state["momentum_buffer"], f"{where} momentum_buffer"))
        _native.sgd_step(
            [self._view(p, name) for name, p in params],
            [grad_array(g, name) for (name, _), g in zip(params, grads)],
            buffers,
            lr=_number(group["lr"], f"{where} lr"),
            momentum=momentum,
            weight_decay=float(group["weight_decay"]),
            nesterov=bool(group["nesterov"]),
        )


class Adam(_NativeOptimizer):
    """Adam with L2 weight decay (``torch.optim.Adam``'s formula), one native call per group.

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import Adam
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> opt = Adam([w], lr=0.1)
        >>> w.grad = torch.tensor([1.0, -2.0])
        >>> opt.step()
        >>> w.detach()
        tensor([-0.1000,  0.1000])
    """

    _DECOUPLED: ClassVar[bool] = False

    def __init__(
        self,
        params: _Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": self._DECOUPLED,
        }
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any], where: str) -> None:
        super()._check_hyper(group, where)
        betas = group["betas"]
        if isinstance(betas, (tuple, list)) and len(betas) == 2:
            betas = tuple(_number(b, f"{where} beta{i + 1}") for i, b in enumerate(betas))
        lr = _number(group["lr"], f"{where} lr")
        check.adam_settings(lr, betas, group["eps"], group["weight_decay"], where)
        decoupled = group.get("decoupled_weight_decay", self._DECOUPLED)
        if bool(decoupled) != self._DECOUPLED:
            raise ArgumentError(
                f"{where}: decoupled_weight_decay={decoupled} does not match "
                f"{type(self).__name__} (use {'AdamW' if decoupled else 'Adam'})"
            )

    def _update(
        self,
        group: dict[str, Any],
        where: str,
        params: list[tuple[str, torch.Tensor]],
        grads: list[torch.Tensor],
    ) -> None:
        # Parameters of one group normally share their step count; one that missed steps (no
        # grad) has its own, so the group is updated in one call per distinct count.
        by_step: dict[int, list[int]] = {}
        for k, (_, p) in enumerate(params):
            state = self.state[p]
            if not state:
                state["step"] = torch.scalar_tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            by_step.setdefault(int(float(state["step"])), []).append(k)
        beta1, beta2 = (_number(b, f"{where} betas") for b in group["betas"])
        plan = _native.AdamPlan(
            beta1=beta1,
            beta2=beta2,
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            decoupled=self._DECOUPLED,
        )
        for step, members in by_step.items():
            chosen = [params[k] for k in members]
            states = [self.state[p] for _, p in chosen]
            plan.step(
                [self._view(p, name) for name, p in chosen],
                [grad_array(grads[k], params[k][0]) for k in members],
                [
                    self._view(s["exp_avg"], f"{name} exp_avg")
                    for (name, _), s in zip(chosen, states)
                ],
                [
                    self._view(s["exp_avg_sq"], f"{name} exp_avg_sq")
                    for (name, _), s in zip(chosen, states)
                ],
                step=step + 1,
                lr=_number(group["lr"], f"{where} lr"),
            )
            for s in states:
                s["step"] = torch.scalar_tensor(float(step + 1), dtype=torch.float32)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``'s formula), one native call per
    param group.

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import AdamW
        >>> w = torch.nn.Parameter(torch.ones(4))
        >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = torch.zeros(4)  # zero gradient: only the decay acts
        >>> opt.step()
        >>> w.detach()
        tensor([0.9500, 0.9500, 0.9500, 0.9500])
    """

    _DECOUPLED = True

    def __init__(
        self,
        params: _Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad=amsgrad, maximize=maximize)
