"""The crate's ``ruvector_attention::training`` module, by the crate's own names.

The package's API (``ruvector_attention``) speaks PyTorch's and NumPy's vocabulary: keyword
arguments, ``lr``, ``k``, ``temperature`` properties. Code ported from the Rust crate (or from
the seed design) can use the crate's names here instead: each class below *is* the package's
class (same formulas, same checks, same ``state_dict``: a state saved through one namespace loads
in the other), with the crate's constructor signature and method names added as thin aliases.

The crate's builders (``with_*``, ``include_positive``) change the object and return it, as the
crate's consume and return theirs. The parity tests (``tests/test_parity_*.py``) run the crate
itself against this namespace.

Examples:
    >>> import numpy as np
    >>> from ruvector_attention.training import Adam
    >>> opt = Adam(4, 0.1).with_betas(0.9, 0.99)  # the crate's Adam::new(dim, lr)
    >>> opt.learning_rate(), opt.betas
    (0.1, (0.9, 0.99))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

# The package's names the crate shares unchanged (re-exported through __all__), then the crate's
# own forms of the others below.
from .. import (  # noqa: F401
    ArgumentError,
    CandidateStore,
    DecayType,
    Gradients,
    Graph,
    HardNegatives,
    InfoNCELoss,
    LayoutError,
    Reduction,
    RuvectorError,
    Selection,
    ShapeError,
    StateFileError,
    StoreError,
    cached_memory,
    clip_grad_norm,
    export_negatives,
    get_num_threads,
    load_state,
    mine_candidates,
    mine_hard_negatives,
    open_store,
    release_cached_memory,
    save_selection,
    save_state,
    select_negatives,
    set_num_threads,
    simd_path,
)
from .. import __all__ as _PACKAGE_NAMES
from .. import _validate as check
from .._arrays import FloatArray
from .._loss_common import ReductionLike, one_sample
from ..curriculum import CurriculumScheduler as _CurriculumScheduler
from ..curriculum import CurriculumStage as _CurriculumStage
from ..curriculum import TemperatureAnnealing as _TemperatureAnnealing
from ..info_nce import MIN_TEMPERATURE
from ..local_contrastive import LocalContrastiveLoss as _LocalContrastiveLoss
from ..mining import HardNegativeMiner as _HardNegativeMiner
from ..mining import InBatchMiner as _InBatchMiner
from ..mining import IndexArray
from ..mining import MiningStrategy as _MiningStrategy
from ..optim import SGD as _SGD
from ..optim import Adam as _Adam
from ..optim import AdamW as _AdamW
from ..schedule import LearningRateScheduler as _LearningRateScheduler
from ..spectral import SpectralRegularization as _SpectralRegularization

#: Every public name of the package, by the package's own list (they cannot drift apart).
__all__ = [name for name in _PACKAGE_NAMES if name != "__version__"]


def _size_hint(dim: Optional[int]) -> None:
    """The crate's ``dim``: checked, then unused (state is sized on the first step)."""
    if dim is not None:
        check.non_negative_int("dim", dim)


class _CrateLearningRate:
    """The crate's names for the learning rate of an optimizer."""

    lr: float

    def learning_rate(self) -> float:
        """:attr:`lr`."""
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        """Assigns :attr:`lr`."""
        self.lr = lr


class SGD(_CrateLearningRate, _SGD):
    """``SGD::new(dim, lr)`` with ``with_momentum``, ``with_weight_decay``, ``with_nesterov``.

    Examples:
        >>> from ruvector_attention.training import SGD
        >>> SGD(8, 0.1).with_momentum(0.9).momentum
        0.9
    """

    def __init__(
        self,
        dim: Optional[int] = None,
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        _size_hint(dim)
        super().__init__(lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def with_momentum(self, momentum: float) -> SGD:
        self._configure(momentum=momentum)
        return self

    def with_weight_decay(self, weight_decay: float) -> SGD:
        self._configure(weight_decay=weight_decay)
        return self

    def with_nesterov(self, nesterov: bool) -> SGD:
        self._configure(nesterov=nesterov)
        return self


class Adam(_CrateLearningRate, _Adam):
    """``Adam::new(dim, lr)`` with ``with_betas``, ``with_epsilon``, ``with_weight_decay``.

    Examples:
        >>> from ruvector_attention.training import Adam
        >>> Adam(8, 0.01).with_epsilon(1e-6).eps
        1e-06
    """

    def __init__(
        self,
        dim: Optional[int] = None,
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        _size_hint(dim)
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def with_betas(self, beta1: float, beta2: float) -> Adam:
        self._configure(betas=(beta1, beta2))
        return self

    def with_epsilon(self, eps: float) -> Adam:
        self._configure(eps=eps)
        return self

    def with_weight_decay(self, weight_decay: float) -> Adam:
        self._configure(weight_decay=weight_decay)
        return self


class AdamW(_CrateLearningRate, _AdamW):
    """``AdamW::new(dim, lr, weight_decay)`` with ``with_betas``, ``with_epsilon``,
    ``with_weight_decay``.

    Examples:
        >>> from ruvector_attention.training import AdamW
        >>> AdamW(8, 0.001, 0.05).weight_decay
        0.05
    """

    def __init__(
        self,
        dim: Optional[int] = None,
        lr: float = 0.001,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        _size_hint(dim)
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def with_betas(self, beta1: float, beta2: float) -> AdamW:
        self._configure(betas=(beta1, beta2))
        return self

    def with_epsilon(self, eps: float) -> AdamW:
        self._configure(eps=eps)
        return self

    def with_weight_decay(self, weight_decay: float) -> AdamW:
        self._configure(weight_decay=weight_decay)
        return self


class LearningRateScheduler(_LearningRateScheduler):
    """``LearningRateScheduler::new(initial_lr)`` with ``with_warmup``, ``with_decay``,
    ``with_min_lr``.

    Examples:
        >>> from ruvector_attention.training import LearningRateScheduler
        >>> s = LearningRateScheduler(0.1).with_warmup(2).with_decay(2).with_min_lr(0.0)
        >>> [round(s.step(), 4) for _ in range(3)]
        [0.05, 0.1, 0.1]
    """

    def __init__(
        self,
        initial_lr: float,
        warmup_steps: int = 0,
        decay_steps: int = 100_000,
        min_lr: float = 1e-7,
    ) -> None:
        super().__init__(
            initial_lr, warmup_steps=warmup_steps, decay_steps=decay_steps, min_lr=min_lr
        )

    def with_warmup(self, steps: int) -> LearningRateScheduler:
        self._configure(warmup_steps=steps)
        return self

    def with_decay(self, steps: int) -> LearningRateScheduler:
        self._configure(decay_steps=steps)
        return self

    def with_min_lr(self, min_lr: float) -> LearningRateScheduler:
        self._configure(min_lr=min_lr)
        return self


class LocalContrastiveLoss(_LocalContrastiveLoss):
    """The package's loss with the crate's ``with_reduction`` builder.

    Examples:
        >>> from ruvector_attention.training import LocalContrastiveLoss
        >>> LocalContrastiveLoss(1.0).with_reduction("sum").reduction.value
        'sum'
    """

    def with_reduction(self, reduction: ReductionLike) -> LocalContrastiveLoss:
        self._reduction = Reduction.parse(reduction)
        return self


class InBatchMiner(_InBatchMiner):
    """The package's miner with the crate's ``include_positive`` builder.

    Examples:
        >>> from ruvector_attention.training import InBatchMiner
        >>> InBatchMiner().include_positive().get_negatives(0, 1, 3)
        array([1, 2])
    """

    def include_positive(self) -> InBatchMiner:
        self._exclude_positive = False
        return self


class MiningStrategy:
    """The crate's ``MiningStrategy`` names: the package's members, plus ``HARD_NEGATIVE`` (the
    crate's name for ``HARDEST``).

    Examples:
        >>> from ruvector_attention import MiningStrategy as Strategy
        >>> MiningStrategy.HARD_NEGATIVE is Strategy.HARDEST
        True
    """

    RANDOM = _MiningStrategy.RANDOM
    HARDEST = _MiningStrategy.HARDEST
    HARD_NEGATIVE = _MiningStrategy.HARDEST
    SEMI_HARD = _MiningStrategy.SEMI_HARD
    DISTANCE_WEIGHTED = _MiningStrategy.DISTANCE_WEIGHTED
    parse = staticmethod(_MiningStrategy.parse)


class HardNegativeMiner(_HardNegativeMiner):
    """The package's miner with the crate's ``mine(anchor, positive, candidates, num_negatives)``.

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention.training import HardNegativeMiner
        >>> c = np.eye(3, dtype=np.float32)
        >>> HardNegativeMiner.hardest().mine(c[0], c[0], c, num_negatives=1)
        array([0])
    """

    def mine(
        self, anchor: object, positive: object, candidates: object, num_negatives: int
    ) -> IndexArray:
        return super().mine(anchor, positive, candidates, num_negatives)


class SpectralRegularization(_SpectralRegularization):
    """The package's regulariser with the crate's names for its variance penalty: ``compute_batch``
    (= ``variance_penalty``) and ``compute(anchor, positive, negatives)`` (the penalty of the
    stack of the three).

    Examples:
        >>> import numpy as np
        >>> from ruvector_attention.training import SpectralRegularization
        >>> x = np.array([[0.0, 0.0], [2.0, 0.0]], np.float32)  # variances (1, 0) across dims
        >>> SpectralRegularization(1.0).compute_batch(x)
        0.25
    """

    def compute_batch(self, embeddings: object) -> float:
        return self.variance_penalty(embeddings)

    def compute_batch_with_gradients(self, embeddings: object) -> tuple[float, FloatArray]:
        return self.variance_penalty_with_gradients(embeddings)

    def compute(self, anchor: object, positive: object, negatives: object) -> float:
        return self.variance_penalty(_stack(anchor, positive, negatives))

    def compute_with_gradients(
        self, anchor: object, positive: object, negatives: object
    ) -> tuple[float, FloatArray]:
        """``(compute(...), d / d anchor)``: the true gradient (the crate returns zeros)."""
        value, grad = self.variance_penalty_with_gradients(_stack(anchor, positive, negatives))
        return value, grad[0]


def _stack(anchor: object, positive: object, negatives: object) -> FloatArray:
    a, p, n = one_sample(anchor, positive, negatives)
    return np.concatenate([a, p, n[0]], axis=0)


@dataclass(frozen=True)
class CurriculumStage(_CurriculumStage):
    """The crate's stage: a temperature <= 0 (or below 0.01) becomes 0.01, as the crate clamps
    it, and ``k_neighbors`` is the seed's name for ``negative_count``.

    Examples:
        >>> from ruvector_attention.training import CurriculumStage
        >>> CurriculumStage("hard", temperature=-1.0).temperature
        0.01
    """

    def __post_init__(self) -> None:
        clamped = max(check.real("temperature", self.temperature), MIN_TEMPERATURE)
        object.__setattr__(self, "temperature", clamped)
        super().__post_init__()

    @property
    def k_neighbors(self) -> int:
        return self.negative_count


class CurriculumScheduler(_CurriculumScheduler):
    """The package's scheduler with the seed's ``current_params()`` (= ``current_stage()``).

    Examples:
        >>> from ruvector_attention.training import CurriculumScheduler
        >>> CurriculumScheduler.default_curriculum(400).current_params().name
        'warm_up'
    """

    def current_params(self) -> Any:
        return self.current_stage()


class TemperatureAnnealing(_TemperatureAnnealing):
    """The package's annealing with the crate's ``get_temp()`` (= the ``temperature`` property).

    Examples:
        >>> from ruvector_attention.training import TemperatureAnnealing
        >>> TemperatureAnnealing(1.0, 0.1, 10).get_temp()
        1.0
    """

    def get_temp(self) -> float:
        return self.temperature
