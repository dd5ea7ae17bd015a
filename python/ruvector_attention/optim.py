"""Optimizers that update NumPy float32 parameters in place: SGD, Adam and AdamW.

The formulas and the vocabulary are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``: ``lr``,
``momentum``, ``betas``, ``eps``, ``weight_decay``, ``state_dict``); the crate's names (``dim``,
``learning_rate()``, the ``with_*`` builders) are in ``ruvector_attention.training``. The
optimizer object owns its state as NumPy arrays (one per parameter array) and passes them to a
stateless Rust kernel, so ``state_dict``, pickling and inspection need no copies through Rust.

Non-finite gradients: like PyTorch, a NaN or Inf gradient element makes that element's moments
and parameter NaN/Inf; every other element is updated normally. Check the value returned by
:func:`clip_grad_norm` (it is not finite when any gradient is) and skip the step to keep the state
clean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Optional

import numpy as np

from . import _native
from . import _validate as check
from ._arrays import ArrayList, FloatArray, as_array_list, as_float32, check_inplace_list
from .errors import ArgumentError, ShapeError

__all__ = ["SGD", "Adam", "AdamW", "clip_grad_norm"]


def _grads_for(params: list[Any], grads: object) -> list[FloatArray]:
    grads_list = as_array_list(grads, "grads")
    if len(grads_list) != len(params):
        raise ShapeError(
            f"grads has {len(grads_list)} arrays but params has {len(params)}; "
            "pass one gradient per parameter array"
        )
    converted = []
    for i, (p, g) in enumerate(zip(params, grads_list)):
        g32 = as_float32(g, f"grads[{i}]")
        if g32.shape != p.shape:
            raise ShapeError(
                f"grads[{i}] has shape {g32.shape} but params[{i}] has shape {p.shape}"
            )
        converted.append(g32)
    return converted


#: The keys of every optimizer's state_dict.
_STATE_DICT_KEYS = ("optimizer", "hyper", "steps", "shapes", "state")


class _Optimizer(ABC):
    """Shared mechanics: argument handling, state ownership, learning rate, serialisation."""

    #: Set by every optimizer's constructor.
    _lr: float
    _weight_decay: float
    #: The keys of ``state_dict()["hyper"]`` (the constructor's arguments), in the order of the
    #: values ``_settings`` returns.
    _HYPER_KEYS: ClassVar[tuple[str, ...]] = ()
    #: Names of the per-array state lists this optimizer keeps (PyTorch's names).
    _STATE_KEYS: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self._steps = 0
        # None until the first step fixes the parameter shapes and sizes the state arrays.
        self._shapes: Optional[list[tuple[int, ...]]] = None
        self._state: Optional[dict[str, list[FloatArray]]] = None
        # The shape of the one parameter array of the last step (None: several, or no step yet):
        # such steps take the fast path of `_step_one`.
        self._single_shape: Optional[tuple[int, ...]] = None

    # -- learning rate -------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        """The learning rate used by the next step."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check.learning_rate(value)

    @property
    def weight_decay(self) -> float:
        """The weight decay (L2 for SGD and Adam, decoupled for AdamW)."""
        return self._weight_decay

    # -- hyper-parameters ------------------------------------------------------------------------

    #: The hyper-parameters checked (``_validate`` owns their domains), in ``_HYPER_KEYS`` order.
    _settings: ClassVar[Callable[..., tuple[Any, ...]]]

    def _configure(self, **changes: Any) -> None:
        """Changes some hyper-parameters; all are checked together before any is assigned (so
        ``momentum=0`` with Nesterov on is refused and nothing changes)."""
        values = {**self._hyper(), **changes} if hasattr(self, "_lr") else changes
        for key, value in zip(self._HYPER_KEYS, self._settings(**values)):
            setattr(self, f"_{key}", value)

    @property
    def steps(self) -> int:
        """How many steps have been taken since construction or :meth:`reset`."""
        return self._steps

    # -- stepping ------------------------------------------------------------------------------

    def step(self, params: ArrayList, grads: ArrayList) -> None:
        """Update ``params`` in place from ``grads``.

        Args:
            params: one float32, C-contiguous, writeable array, or a list of them. Each array
                gets its own state; the list must have the same shapes on every step.
            grads: one array per parameter array, of the same shape (float64 or strided
                gradients are converted once).

        Raises:
            TypeError: params are not float32 NumPy arrays, or grads are not real floats.
            ValueError: a parameter is read-only, not C-contiguous, or overlaps another array.
            ShapeError: shapes differ from the grads or from the optimizer's state.
        """
        if (
            type(params) is np.ndarray
            and params.shape == self._single_shape
            and self._step_one(params, grads)
        ):
            return
        params_list = as_array_list(params, "params")
        check_inplace_list(params_list, "params")
        grads_list = _grads_for(params_list, grads)
        shapes = [p.shape for p in params_list]
        if self._shapes is not None and shapes != self._shapes:
            self._explain_shape_change(params_list)
        state = self._state if self._state is not None else {}
        missing = [key for key in self._active_state_keys() if key not in state]
        if missing:
            # First step, or (SGD) momentum switched on later: PyTorch starts at zero then.
            # A new dict, so that a failed step below leaves the stored state as it was.
            state = dict(state)
            for key in missing:
                state[key] = [np.zeros(s, dtype=np.float32) for s in shapes]
        # The kernel validates every array before writing any; state is kept only on success.
        self._apply(params_list, grads_list, state, self._steps + 1)
        self._shapes = shapes
        self._state = state
        self._steps += 1
        self._single_shape = shapes[0] if len(shapes) == 1 else None

    def _step_one(self, param: np.ndarray, grad: object) -> bool:
        """The small-step fast path (one parameter array, state already sized for it): False,
        with nothing done, where it does not apply; the general path then checks everything."""
        return False

    def _active_state_keys(self) -> tuple[str, ...]:
        return self._STATE_KEYS

    def _explain_shape_change(self, params: list[Any]) -> None:
        expected = self._shapes or []
        if len(expected) != len(params):
            raise ShapeError(
                f"params has {len(params)} arrays but the optimizer state was created for "
                f"{len(expected)} on the first step; call reset() to start over"
            )
        for i, (p, shape) in enumerate(zip(params, expected)):
            if p.shape != shape:
                raise ShapeError(
                    f"params[{i}] has shape {p.shape} but the optimizer state was created for "
                    f"shape {shape} on the first step; call reset() to start over"
                )
        raise ShapeError("parameter shapes changed since the first step; call reset()")

    @abstractmethod
    def _apply(
        self,
        params: list[Any],
        grads: list[FloatArray],
        state: dict[str, list[FloatArray]],
        step: int,
    ) -> None: ...

    def reset(self) -> None:
        """Forget all state (moments and step count); the next step may use new shapes."""
        self._shapes = None
        self._state = None
        self._steps = 0
        self._single_shape = None

    # -- serialisation -------------------------------------------------------------------------

    def _hyper(self) -> dict[str, Any]:
        """The constructor's arguments (``_HYPER_KEYS``), each kept as attribute ``_<key>``."""
        return {key: getattr(self, f"_{key}") for key in self._HYPER_KEYS}

    def _take_hyper(self, other: _Optimizer) -> None:
        for key in self._HYPER_KEYS:
            setattr(self, f"_{key}", getattr(other, f"_{key}"))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit for bit: hyper-parameters, step count and copies of
        the state arrays (plain Python values and NumPy arrays)."""
        state = None
        if self._state is not None:
            state = {key: [a.copy() for a in arrays] for key, arrays in self._state.items()}
            # A buffer switched on since the last step (SGD momentum) starts at zero at the next
            # step; written out as those zeros, so that every state this writes loads back.
            for key in self._active_state_keys():
                if key not in state and self._shapes is not None:
                    state[key] = [np.zeros(shape, dtype=np.float32) for shape in self._shapes]
        return {
            "optimizer": type(self).__name__,
            "hyper": self._hyper(),
            "steps": self._steps,
            "shapes": None if self._shapes is None else [list(s) for s in self._shapes],
            "state": state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; arrays are copied, so the dict can be reused."""
        owner = type(self).__name__
        state_dict = dict(check.state_keys(state_dict, _STATE_DICT_KEYS, owner))
        kind = state_dict["optimizer"]
        if kind != owner:
            raise ArgumentError(f"state_dict is for {kind!r}, not {owner!r}")
        steps = check.non_negative_int("steps", state_dict["steps"])
        raw_shapes = state_dict["shapes"]
        shapes = None
        if raw_shapes is not None:
            if not isinstance(raw_shapes, (list, tuple)):
                raise TypeError(f"shapes must be a list of shapes, got {type(raw_shapes).__name__}")
            shapes = [
                tuple(check.non_negative_int("shape entry", n) for n in s) for s in raw_shapes
            ]
        # The constructor validates every hyper-parameter; nothing is assigned before the whole
        # dict has been checked, so a refused load leaves the optimizer as it was. "dim" (the
        # crate's size hint, saved by versions before 0.2) is accepted and ignored.
        saved_hyper = state_dict["hyper"]
        if isinstance(saved_hyper, dict) and "dim" in saved_hyper:
            saved_hyper = {k: v for k, v in saved_hyper.items() if k != "dim"}
        hyper = type(self)(
            **dict(check.state_keys(saved_hyper, self._HYPER_KEYS, f"{owner} hyper"))
        )
        raw_state = state_dict["state"]
        state: Optional[dict[str, list[FloatArray]]] = None
        if raw_state is not None:
            if not isinstance(raw_state, dict):
                raise TypeError(f"state must be a dict or None, got {type(raw_state).__name__}")
            state = {}
            for key, arrays in raw_state.items():
                if key not in self._STATE_KEYS:
                    raise ArgumentError(f"unknown state key {key!r} for {type(self).__name__}")
                copied = []
                for i, a in enumerate(arrays):
                    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
                        raise TypeError(f"state[{key!r}][{i}] must be a float32 numpy.ndarray")
                    copied.append(np.array(a, dtype=np.float32, order="C", copy=True))
                state[key] = copied
            for key, arrays in state.items():
                if shapes is None or [a.shape for a in arrays] != shapes:
                    raise ShapeError(f"state[{key!r}] does not match the saved parameter shapes")
            # Every buffer the hyper-parameters use must be there: a missing one would restart
            # at zero under the saved step count (Adam's bias correction then overshoots).
            missing = [key for key in hyper._active_state_keys() if key not in state]
            if missing:
                raise ArgumentError(
                    f"state_dict['state'] lacks {', '.join(map(repr, missing))}: a state saved "
                    f"by {owner}.state_dict() always holds every key its hyper-parameters use"
                )
        self._take_hyper(hyper)
        self._shapes = shapes
        self._state = state
        self._steps = steps
        self._single_shape = None  # the next step takes the general path and records it

    def __getstate__(self) -> dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        _Optimizer.__init__(self)
        self.load_state_dict(state)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({hyper})"


class SGD(_Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    PyTorch's formula (dampening 0): ``g += weight_decay * p``; ``b = momentum * b + g``;
    ``p -= lr * (g + momentum * b)`` with Nesterov, else ``p -= lr * b``. With ``momentum=0``
    no buffer is kept and the step is ``p -= lr * g``.

    Args:
        lr: learning rate, >= 0.
        momentum: momentum factor, >= 0.
        weight_decay: L2 penalty added to the gradient, >= 0.
        nesterov: use Nesterov momentum (needs ``momentum > 0``).

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention import SGD
        >>> w = np.ones(3, dtype=np.float32)
        >>> opt = SGD(lr=0.1, momentum=0.9)
        >>> opt.step(w, np.array([1.0, 0.0, -1.0], dtype=np.float32))
        >>> w
        array([0.9, 1. , 1.1], dtype=float32)
    """

    _STATE_KEYS = ("momentum_buffer",)
    _HYPER_KEYS = ("lr", "momentum", "weight_decay", "nesterov")
    _settings = staticmethod(check.sgd_settings)
    _momentum: float
    _nesterov: bool

    def __init__(
        self,
        lr: float = 0.01,
        *,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__()
        self._configure(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    @property
    def momentum(self) -> float:
        return self._momentum

    @property
    def nesterov(self) -> bool:
        return self._nesterov

    def _active_state_keys(self) -> tuple[str, ...]:
        return self._STATE_KEYS if self._momentum != 0.0 else ()

    def _apply(
        self,
        params: list[Any],
        grads: list[FloatArray],
        state: dict[str, list[FloatArray]],
        step: int,
    ) -> None:
        _native.sgd_step(
            params,
            grads,
            state.get("momentum_buffer", []),
            lr=self._lr,
            momentum=self._momentum,
            weight_decay=self._weight_decay,
            nesterov=self._nesterov,
        )


class Adam(_Optimizer):
    """Adam with bias-corrected moments and L2 weight decay (PyTorch ``Adam``).

    ``g += weight_decay * p``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    The crate applies ``weight_decay`` as decoupled decay in ``Adam``; here that is what
    :class:`AdamW` is for (see docs/parity.md).

    Args:
        lr: learning rate, >= 0.
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator, > 0.
        weight_decay: L2 penalty added to the gradient, >= 0.

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention import Adam
        >>> w = np.zeros(2, dtype=np.float32)
        >>> opt = Adam(lr=0.1)
        >>> opt.step(w, np.array([1.0, -2.0], dtype=np.float32))
        >>> w.round(6)  # the first step moves each weight by lr against the gradient's sign
        array([-0.1,  0.1], dtype=float32)
    """

    _STATE_KEYS = ("exp_avg", "exp_avg_sq")
    _HYPER_KEYS = ("lr", "betas", "eps", "weight_decay")
    _settings = staticmethod(check.adam_settings)
    _DECOUPLED: ClassVar[bool] = False
    _betas: tuple[float, float]
    _eps: float
    #: The kernel's prepared settings and the hyper-parameters they were prepared from.
    _prepared: _native.AdamPlan
    _plan_key: Optional[tuple[tuple[float, float], float, float]] = None

    def __init__(
        self,
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self._configure(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @property
    def betas(self) -> tuple[float, float]:
        return self._betas

    @property
    def eps(self) -> float:
        return self._eps

    def _plan(self) -> _native.AdamPlan:
        """The kernel's prepared settings, rebuilt only when a hyper-parameter changed."""
        key = (self._betas, self._eps, self._weight_decay)
        if self._plan_key != key:
            beta1, beta2 = self._betas
            self._prepared = _native.AdamPlan(
                beta1=beta1,
                beta2=beta2,
                eps=self._eps,
                weight_decay=self._weight_decay,
                decoupled=self._DECOUPLED,
            )
            self._plan_key = key
        return self._prepared

    def _step_one(self, param: np.ndarray, grad: object) -> bool:
        state = self._state
        assert state is not None  # a single shape is only recorded after a step
        done = self._plan().try_step_one(
            param, grad, state["exp_avg"][0], state["exp_avg_sq"][0], self._steps + 1, self._lr
        )
        if done:
            self._steps += 1
        return done

    def _apply(
        self,
        params: list[Any],
        grads: list[FloatArray],
        state: dict[str, list[FloatArray]],
        step: int,
    ) -> None:
        self._plan().step(
            params, grads, state["exp_avg"], state["exp_avg_sq"], step=step, lr=self._lr
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch ``AdamW``).

    First ``p *= 1 - lr * weight_decay``, then the Adam step without an L2 term.

    Args:
        lr: learning rate, >= 0.
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator, > 0.
        weight_decay: decoupled decay, >= 0.

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention import AdamW
        >>> w = np.ones(4, dtype=np.float32)
        >>> opt = AdamW(lr=0.1, weight_decay=0.5)
        >>> opt.step(w, np.zeros(4, dtype=np.float32))  # zero gradient: only the decay acts
        >>> w
        array([0.95, 0.95, 0.95, 0.95], dtype=float32)
    """

    _DECOUPLED = True

    def __init__(
        self,
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm(grads: ArrayList, max_norm: float, *, error_if_nonfinite: bool = False) -> float:
    """Scale gradients in place so that their global L2 norm is at most ``max_norm``.

    PyTorch's ``clip_grad_norm_``: the norm of all arrays together is computed (in float64);
    when it exceeds ``max_norm`` every array is multiplied by ``max_norm / (norm + 1e-6)``.

    A non-finite norm (a NaN or Inf gradient) leaves the gradients unchanged and is returned, so
    the caller can skip the step; with ``error_if_nonfinite=True`` it raises ``ValueError``
    instead.

    Args:
        grads: one float32, C-contiguous, writeable array or a list of them (updated in place).
        max_norm: the largest allowed norm, >= 0.
        error_if_nonfinite: raise instead of returning a non-finite norm.

    Returns:
        The global norm before clipping.

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention import clip_grad_norm
        >>> g = np.array([3.0, 4.0], dtype=np.float32)
        >>> clip_grad_norm(g, 1.0)
        5.0
        >>> np.round(g, 4)
        array([0.6, 0.8], dtype=float32)
    """
    grads_list = as_array_list(grads, "grads")
    check_inplace_list(grads_list, "grads")
    limit = check.float32_non_negative("max_norm", max_norm)
    norm = _native.clip_grad_norm(
        grads_list,
        limit,
        error_if_nonfinite=check.boolean("error_if_nonfinite", error_if_nonfinite),
    )
    return float(norm)
