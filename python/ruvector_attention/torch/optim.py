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


class _GroupViews:
    """One param group's kernel arguments as last built: the parameters that had gradients, their
    state dicts, and the NumPy views of parameters and state the kernel updates in place.

    A step reuses them while every parameter, state dict and state tensor is the same object at
    the same address and shape (checked per step: about 0.5 us a parameter); anything else
    (a parameter given new storage, ``load_state_dict``, a state entry replaced) builds them
    again. The views keep only tensors the optimizer holds anyway alive.
    """

    __slots__ = ("arrays", "params", "pointers", "shapes", "states", "step_views", "steps")

    def __init__(
        self,
        params: list[torch.Tensor],
        states: list[dict[str, Any]],
        keys: tuple[str, ...],
        where: str,
        positions: list[int],
    ) -> None:
        self.params = params
        self.states = states
        self.shapes = [p.shape for p in params]
        rows = [(p, *(s[k] for k in keys)) for p, s in zip(params, states)]
        self.pointers = [tuple(t.data_ptr() for t in row) for row in rows]
        # arrays[j]: the views of the parameters (j = 0) or of state tensor keys[j - 1].
        self.arrays: list[list[np.ndarray]] = [
            [
                inplace_array(row[j], f"{where}['params'][{i}]" + (f" {keys[j - 1]}" if j else ""))
                for row, i in zip(rows, positions)
            ]
            for j in range(len(keys) + 1)
        ]
        # Adam's per-parameter step counts (torch's float32 0-d tensors), written in place.
        counted = bool(states) and "step" in states[0]
        self.step_views = [_step_view(s) for s in states] if counted else []
        self.steps = [s["step"] for s in states] if counted else []

    def holds(
        self, params: list[torch.Tensor], states: list[dict[str, Any]], keys: tuple[str, ...]
    ) -> bool:
        """Whether these views still are those of ``params`` and ``states``."""
        if len(params) != len(self.params):
            return False
        for p, s, old_p, old_s, shape, pointers in zip(
            params, states, self.params, self.states, self.shapes, self.pointers
        ):
            if p is not old_p or s is not old_s or p.shape != shape:
                return False
            if (p.data_ptr(), *(s[k].data_ptr() for k in keys)) != pointers:
                return False
        return all(s.get("step") is step for s, step in zip(states, self.steps))


def _step_view(state: dict[str, Any]) -> np.ndarray:
    """A writable 0-d float32 view of ``state["step"]``, made a CPU float32 tensor first if a
    loaded state holds a number or another dtype (torch keeps float32 0-d tensors too)."""
    step = state["step"]
    if not (
        isinstance(step, torch.Tensor)
        and step.dtype is torch.float32
        and step.device.type == "cpu"
        and step.dim() == 0
    ):
        step = state["step"] = torch.scalar_tensor(float(step), dtype=torch.float32)
    return step.numpy()


class _NativeOptimizer(torch.optim.Optimizer):
    """What the three optimizers share: checks of groups and tensors, the step loop, the cached
    kernel arguments."""

    #: Options torch's optimizers have that these kernels do not implement: each must be off.
    _OFF: ClassVar[tuple[str, ...]] = ("amsgrad", "maximize", "differentiable")
    #: Whether the state holds torch's per-parameter step count (Adam's bias correction).
    _COUNTS_STEPS: ClassVar[bool] = False

    def __init__(self, params: _Params, defaults: dict[str, Any]) -> None:
        self._check_hyper(defaults, "defaults")
        self._reset_caches()
        # The group keys whose values decide the checks: a step re-checks only on change.
        self._hyper_keys = tuple(sorted((set(defaults) | set(self._OFF)) - {"params"}))
        super().__init__(params, defaults)

    def _reset_caches(self) -> None:
        self._groups: dict[int, _GroupViews] = {}
        self._checked: dict[int, tuple[Any, ...]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's __getstate__ keeps defaults, state and param_groups only: a copy or an unpickled
        # optimizer starts with empty caches (without this it had none and failed at load).
        super().__setstate__(state)
        self._reset_caches()
        self._hyper_keys = tuple(sorted((set(self.defaults) | set(self._OFF)) - {"params"}))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._reset_caches()
        super().load_state_dict(state_dict)

    def _check_group(self, index: int, group: dict[str, Any], where: str) -> None:
        """``_check_hyper`` unless this group's values are those last found valid."""
        values = tuple(group.get(k) for k in self._hyper_keys)
        # Tensors (a scheduler's 0-d lr) do not compare as plain values: always re-checked.
        if (
            not any(isinstance(v, torch.Tensor) for v in values)
            and self._checked.get(index) == values
        ):
            return
        self._check_hyper(group, where)
        self._checked[index] = values
        self._hyper_changed(index, group)

    def _hyper_changed(self, index: int, group: dict[str, Any]) -> None:
        """A hook for what a class prepares from a group's checked hyper-parameters."""

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
        # No torch.no_grad() needed: the update runs in the kernels, and the only tensors made
        # here (zeroed state) do not require gradients.
        for index, group in enumerate(self.param_groups):
            where = f"param_groups[{index}]"
            self._check_group(index, group, where)
            params, positions = [], []
            for i, p in enumerate(group["params"]):
                if p.grad is not None:
                    params.append(p)
                    positions.append(i)
            if not params:
                continue
            views = self._group_views(index, group, params, positions, where)
            grads = self._grad_arrays(params, positions, where)
            self._update(index, group, views, grads)
            # Autograd must see the in-place change (a graph holding these parameters then
            # refuses to backpropagate, as it does after torch's own optimizers).
            torch.autograd.graph.increment_version(params)
        return loss

    def _grad_arrays(
        self, params: list[torch.Tensor], positions: list[int], where: str
    ) -> list[np.ndarray]:
        """The gradients as float32 NumPy arrays: views in the common case (contiguous CPU
        float32, not part of a graph), checked and converted one by one otherwise."""
        arrays = []
        for p in params:
            grad = p.grad
            if grad.dtype is not torch.float32 or grad.is_sparse or not grad.is_contiguous():
                break
            try:
                arrays.append(grad.numpy())  # refuses other devices and grads that need grad
            except (RuntimeError, TypeError):
                break
        else:
            return arrays
        named = []
        for p, i in zip(params, positions):
            name = f"{where}['params'][{i}]"
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients ({name})"
                )
            named.append(grad_array(p.grad, name))
        return named

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The state tensors the kernel updates in place besides the parameter, in its argument
        order."""
        raise NotImplementedError

    def _new_state(self, p: torch.Tensor) -> dict[str, Any]:
        """What a parameter's state starts with (torch's names and layout)."""
        raise NotImplementedError

    def _group_views(
        self,
        index: int,
        group: dict[str, Any],
        params: list[torch.Tensor],
        positions: list[int],
        where: str,
    ) -> _GroupViews:
        keys = self._state_keys(group)
        states = []
        if keys:
            needed = keys + (("step",) if self._COUNTS_STEPS else ())
            for p in params:
                state = self.state[p]
                if any(state.get(k) is None for k in needed):
                    for key, value in self._new_state(p).items():
                        if state.get(key) is None:
                            state[key] = value
                states.append(state)
        else:
            states = [_NO_STATE] * len(params)  # no state needed: none made (as torch's SGD)
        cached = self._groups.get(index)
        if cached is None or not cached.holds(params, states, keys):
            cached = self._groups[index] = _GroupViews(params, states, keys, where, positions)
        return cached

    def _update(
        self, index: int, group: dict[str, Any], views: _GroupViews, grads: list[np.ndarray]
    ) -> None:
        raise NotImplementedError


_NO_STATE: dict[str, Any] = {}


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

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0.0 else ()

    def _new_state(self, p: torch.Tensor) -> dict[str, Any]:
        # torch starts from a copy of the first gradient; b = momentum * 0 + g is the same number.
        return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.contiguous_format)}

    def _update(
        self, index: int, group: dict[str, Any], views: _GroupViews, grads: list[np.ndarray]
    ) -> None:
        momentum = float(_number(group["momentum"], "momentum"))
        _native.sgd_step(
            views.arrays[0],
            grads,
            views.arrays[1] if momentum != 0.0 else [],
            lr=_number(group["lr"], "lr"),
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
    _COUNTS_STEPS = True

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

    def _hyper_changed(self, index: int, group: dict[str, Any]) -> None:
        beta1, beta2 = (_number(b, "betas") for b in group["betas"])
        self._plans[index] = _native.AdamPlan(
            beta1=beta1,
            beta2=beta2,
            eps=float(_number(group["eps"], "eps")),
            weight_decay=float(_number(group["weight_decay"], "weight_decay")),
            decoupled=self._DECOUPLED,
        )

    def _reset_caches(self) -> None:
        super()._reset_caches()
        self._plans: dict[int, Any] = {}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _new_state(self, p: torch.Tensor) -> dict[str, Any]:
        return {
            "step": torch.scalar_tensor(0.0, dtype=torch.float32),
            "exp_avg": torch.zeros_like(p, memory_format=torch.contiguous_format),
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.contiguous_format),
        }

    def _update(
        self, index: int, group: dict[str, Any], views: _GroupViews, grads: list[np.ndarray]
    ) -> None:
        plan = self._plans[index]
        lr = _number(group["lr"], "lr")
        params, exp_avg, exp_avg_sq = views.arrays
        counts = [int(v) for v in views.step_views]
        if all(c == counts[0] for c in counts):  # the usual case: one call for the whole group
            plan.step(params, grads, exp_avg, exp_avg_sq, step=counts[0] + 1, lr=lr)
        else:
            # A parameter that missed steps (no grad) has its own count: one call per count.
            by_count: dict[int, list[int]] = {}
            for k, c in enumerate(counts):
                by_count.setdefault(c, []).append(k)
            for c, members in by_count.items():
                plan.step(
                    *(
                        [arrays[k] for k in members]
                        for arrays in (params, grads, exp_avg, exp_avg_sq)
                    ),
                    step=c + 1,
                    lr=lr,
                )
        for view, c in zip(views.step_views, counts):
            view[()] = c + 1  # in place, as torch's own optimizers advance their step tensors


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
