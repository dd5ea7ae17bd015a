"""Hard-negative mining: hardest, semi-hard, distance-weighted and random, batched and label-aware.

The selection runs in Rust: a blocked similarity GEMM with the selection fused in as each tile
finishes, so the B x N score matrix is never built. The samplers draw k distinct candidates by
Gumbel-top-k from counter-based random streams keyed by (seed, call, row, candidate): an int seed
reproduces the whole sequence of results, independent of the thread count, and every call draws
anew.
"""

from __future__ import annotations

import enum
import numbers
import threading
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

from . import _native
from . import _validate as check
from ._arrays import FloatArray, as_float32, float_matrix
from .errors import ArgumentError, ShapeError

__all__ = ["HardNegativeMiner", "InBatchMiner", "MiningStrategy"]

IndexArray = npt.NDArray[np.int64]


class MiningStrategy(enum.Enum):
    """How negatives are chosen (the crate's ``HARD_NEGATIVE`` is ``HARDEST``; that name is in
    ``ruvector_attention.training``).

    Examples:
        >>> MiningStrategy.parse("semi-hard")
        <MiningStrategy.SEMI_HARD: 'semi_hard'>
    """

    RANDOM = "random"
    HARDEST = "hardest"
    SEMI_HARD = "semi_hard"
    DISTANCE_WEIGHTED = "distance_weighted"

    @classmethod
    def parse(cls, value: object) -> MiningStrategy:
        if isinstance(value, MiningStrategy):
            return value
        if isinstance(value, str):
            name = value.lower().replace("-", "_")
            for member in cls:
                if name in (member.value, member.name.lower()):
                    return member
        raise ArgumentError(
            "strategy must be a MiningStrategy or one of 'random', 'hardest', 'semi_hard', "
            f"'distance_weighted', got {value!r}"
        )


StrategyLike = Union[MiningStrategy, str]

_WEIGHTINGS = ("softmax", "wu")
_STATE_KEYS = (
    "strategy",
    "margin",
    "temperature",
    "weighting",
    "cutoff",
    "nonzero_loss_cutoff",
    "key",
    "calls",
)
#: Most entries of a (B, k) result: its byte size must stay within a signed 64-bit count.
_MAX_RESULT_ENTRIES = check.INT64_MAX // 8


def _key_from_seed(seed: Optional[int]) -> int:
    """A 64-bit stream key: from the seed, or from fresh OS entropy when ``seed`` is None."""
    words = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def _check_seed(seed: object) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if int(seed) < 0:
        raise ArgumentError(f"seed must be >= 0, got {int(seed)}")
    return int(seed)


def _labels(value: object, name: str, length: int) -> IndexArray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.shape != (length,):
        raise ShapeError(f"{name} must have shape ({length},), got {arr.shape}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ArgumentError(f"{name} has values beyond int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


class HardNegativeMiner:
    """Chooses k negatives per anchor among N candidates.

    Strategies (``MiningStrategy``):

    - ``HARDEST``: the k candidates of highest cosine similarity, highest first (ties: lower
      index first).
    - ``SEMI_HARD`` (FaceNet, Euclidean): candidates with ``d(a,p) < d(a,n) < d(a,p) + margin``,
      nearest first; the rest filled with the hardest candidates not already chosen. Needs
      positives.
    - ``DISTANCE_WEIGHTED``: k distinct candidates drawn without replacement with probability
      proportional to ``exp(cos(a, n) / temperature)`` (``weighting="softmax"``, the seed's
      form), or to Wu et al.'s ``1 / q(d)`` on unit vectors (``weighting="wu"``: ``d`` clamped
      below at ``cutoff``, weight 0 from ``nonzero_loss_cutoff`` on; pytorch-metric-learning's
      DistanceWeightedMiner).
    - ``RANDOM``: k distinct candidates drawn uniformly.

    Candidates whose label equals the anchor's are never returned; rows with fewer than k
    eligible candidates are padded with -1. NaN similarities are never selected.

    Args:
        strategy: a ``MiningStrategy`` or its name.
        margin: semi-hard margin (>= 0).
        temperature: softmax temperature for distance-weighted sampling (> 0).
        seed: None for fresh entropy, or an int for a reproducible sequence of results.
        weighting: ``"softmax"`` or ``"wu"`` (distance-weighted only).
        cutoff: Wu's lower distance bound (0 < cutoff < nonzero_loss_cutoff).
        nonzero_loss_cutoff: Wu's upper distance bound, from which the weight is 0 (below 2).

    Examples:
        >>> import numpy as np
        >>> miner = HardNegativeMiner.hardest()
        >>> anchors = np.array([[1.0, 0.0]], np.float32)
        >>> candidates = np.array([[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]], np.float32)
        >>> miner.mine_batch(anchors, None, candidates, 2)
        array([[1, 0]])
    """

    def __init__(
        self,
        strategy: StrategyLike = MiningStrategy.HARDEST,
        margin: float = 0.1,
        temperature: float = 1.0,
        seed: Optional[int] = None,
        *,
        weighting: str = "softmax",
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
    ) -> None:
        self._strategy = MiningStrategy.parse(strategy)
        self._margin = check.float32_non_negative("margin", margin)
        self._temperature = check.float32_divisor("temperature", temperature)
        if weighting not in _WEIGHTINGS:
            raise ArgumentError(f"weighting must be 'softmax' or 'wu', got {weighting!r}")
        self._weighting = weighting
        self._cutoff = check.positive("cutoff", cutoff)
        self._nonzero_loss_cutoff = check.positive("nonzero_loss_cutoff", nonzero_loss_cutoff)
        if not self._cutoff < self._nonzero_loss_cutoff < 2.0:
            raise ArgumentError(
                "need 0 < cutoff < nonzero_loss_cutoff < 2 (distances between unit vectors), got "
                f"cutoff={self._cutoff}, nonzero_loss_cutoff={self._nonzero_loss_cutoff}"
            )
        self._key = _key_from_seed(_check_seed(seed))
        self._calls = 0
        self._config = self._kernel_config()
        # Two threads sharing a miner must never draw the same call number (NumPy's Generator
        # holds a lock for the same reason).
        self._calls_lock = threading.Lock()

    # -- the seed's constructors ----------------------------------------------------------------

    @classmethod
    def hardest(cls, *, seed: Optional[int] = None) -> HardNegativeMiner:
        """The k most similar candidates (cosine), most similar first.

        Examples:
            >>> HardNegativeMiner.hardest().strategy
            <MiningStrategy.HARDEST: 'hardest'>
        """
        return cls(MiningStrategy.HARDEST, seed=seed)

    @classmethod
    def semi_hard(cls, margin: float = 0.1, *, seed: Optional[int] = None) -> HardNegativeMiner:
        """FaceNet's semi-hard negatives: ``d(a, p) < d(a, n) < d(a, p) + margin`` (Euclidean),
        nearest first, filled with the hardest others; ``mine_batch`` needs positives.

        Examples:
            >>> HardNegativeMiner.semi_hard(0.5).margin
            0.5
        """
        return cls(MiningStrategy.SEMI_HARD, margin=margin, seed=seed)

    @classmethod
    def distance_weighted(
        cls,
        temperature: float = 1.0,
        *,
        weighting: str = "softmax",
        seed: Optional[int] = None,
    ) -> HardNegativeMiner:
        """k distinct candidates drawn with weights ``exp(cos / temperature)`` (``"softmax"``) or
        Wu et al.'s ``1 / q(d)`` (``"wu"``), without replacement.

        Examples:
            >>> HardNegativeMiner.distance_weighted(0.5, weighting="wu").weighting
            'wu'
        """
        return cls(
            MiningStrategy.DISTANCE_WEIGHTED,
            temperature=temperature,
            seed=seed,
            weighting=weighting,
        )

    @classmethod
    def random(cls, *, seed: Optional[int] = None) -> HardNegativeMiner:
        """k distinct candidates drawn uniformly (reproducible from ``seed``).

        Examples:
            >>> HardNegativeMiner.random(seed=0).strategy
            <MiningStrategy.RANDOM: 'random'>
        """
        return cls(MiningStrategy.RANDOM, seed=seed)

    # -- properties -----------------------------------------------------------------------------

    @property
    def strategy(self) -> MiningStrategy:
        return self._strategy

    @property
    def margin(self) -> float:
        return self._margin

    @property
    def temperature(self) -> float:
        return self._temperature

    @property
    def weighting(self) -> str:
        return self._weighting

    def __repr__(self) -> str:
        return (
            f"HardNegativeMiner(strategy={self._strategy.name}, margin={self._margin!r}, "
            f"temperature={self._temperature!r}, weighting={self._weighting!r})"
        )

    # -- mining ---------------------------------------------------------------------------------

    def mine(self, anchor: object, positive: object, candidates: object, k: int) -> IndexArray:
        """Indices (at most ``k``) of negatives in ``candidates`` for one anchor (D,)."""
        a = as_float32(anchor, "anchor")
        p = as_float32(positive, "positive")
        if a.ndim != 1 or a.size == 0:
            raise ShapeError(f"anchor must be a non-empty 1-D vector (D,), got shape {a.shape}")
        if p.shape != a.shape:
            raise ShapeError(f"positive must have the shape of anchor {a.shape}, got {p.shape}")
        row: IndexArray = self.mine_batch(a[None, :], p[None, :], candidates, k)[0]
        picked: IndexArray = row[row >= 0]
        return picked

    def mine_batch(
        self,
        anchors: object,
        positives: object,
        candidates: object,
        k: int,
        *,
        anchor_labels: object = None,
        candidate_labels: object = None,
    ) -> IndexArray:
        """Indices (B, k) into ``candidates`` (N, D) for each of ``anchors`` (B, D), -1 padded.

        ``positives`` (B, D) may be None except for ``SEMI_HARD``. With labels (``anchor_labels``
        (B,) and ``candidate_labels`` (N,), integers), candidates sharing the anchor's label are
        never returned.
        """
        k = check.non_negative_int("k", k)
        a = float_matrix(anchors, "anchors", min_rows=0)
        b, d = a.shape
        if b * k > _MAX_RESULT_ENTRIES:
            raise ArgumentError(
                f"k = {k} is too large: the ({b}, {k}) int64 result would need {8 * b * k} bytes"
            )
        c = float_matrix(candidates, "candidates", cols=d, min_rows=0)
        p: Optional[FloatArray] = None
        if positives is not None:
            p = as_float32(positives, "positives")
            if p.shape != a.shape:
                raise ShapeError(
                    f"positives must have the shape of anchors {a.shape}, got {p.shape}"
                )
        elif self._strategy is MiningStrategy.SEMI_HARD:
            raise ArgumentError("SEMI_HARD mining needs positives (B, D): d(a, p) sets the window")
        if (anchor_labels is None) != (candidate_labels is None):
            raise ArgumentError("pass both anchor_labels and candidate_labels, or neither")
        la = lc = None
        if anchor_labels is not None:
            la = _labels(anchor_labels, "anchor_labels", b)
            lc = _labels(candidate_labels, "candidate_labels", c.shape[0])
        result = _native.mine(
            a,
            p,
            c,
            k,
            config=self._config,
            labels=None if la is None or lc is None else (la, lc),
            key=self._key,
            call=self._next_call(),
        )
        return result

    def _next_call(self) -> int:
        """This call's number (the random streams' key), reserved atomically."""
        with self._calls_lock:
            call = self._calls
            self._calls += 1
        return call

    def _kernel_config(self) -> _native.MinerConfig:
        """The strategy with its settings, as the kernel takes it (built once per miner)."""
        if self._strategy is MiningStrategy.SEMI_HARD:
            return _native.MinerConfig.semi_hard(self._margin)
        if self._strategy is MiningStrategy.DISTANCE_WEIGHTED:
            if self._weighting == "wu":
                return _native.MinerConfig.wu(self._cutoff, self._nonzero_loss_cutoff)
            return _native.MinerConfig.softmax(self._temperature)
        if self._strategy is MiningStrategy.RANDOM:
            return _native.MinerConfig.random()
        return _native.MinerConfig.hardest()

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Settings and the random generator's position (its key and the number of calls).

        Every call that reaches the kernel advances the position, also one that then fails (for
        example with ``MemoryError``).
        """
        return {
            "strategy": self._strategy.value,
            "margin": self._margin,
            "temperature": self._temperature,
            "weighting": self._weighting,
            "cutoff": self._cutoff,
            "nonzero_loss_cutoff": self._nonzero_loss_cutoff,
            "key": self._key,
            "calls": self._calls,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``: later calls draw exactly what the saved miner would have."""
        state = check.state_keys(state, _STATE_KEYS, "HardNegativeMiner")
        restored = HardNegativeMiner(
            state["strategy"],
            state["margin"],
            state["temperature"],
            weighting=state["weighting"],
            cutoff=state["cutoff"],
            nonzero_loss_cutoff=state["nonzero_loss_cutoff"],
        )
        key = check.integer("key", state["key"], maximum=2**64 - 1)
        calls = check.non_negative_int("calls", state["calls"])
        with self._calls_lock:
            self._strategy, self._margin = restored._strategy, restored._margin
            self._temperature, self._weighting = restored._temperature, restored._weighting
            self._cutoff = restored._cutoff
            self._nonzero_loss_cutoff = restored._nonzero_loss_cutoff
            self._key, self._calls = key, calls
            self._config = restored._config

    def __getstate__(self) -> dict[str, Any]:
        return self.state_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._calls_lock = threading.Lock()
        self.load_state_dict(state)


class InBatchMiner:
    """Negatives from the same batch: every index except the anchor's (and, by default, the
    positive's).

    Examples:
        >>> InBatchMiner().get_negatives(0, 1, 4)
        array([2, 3])
    """

    def __init__(self, exclude_positive: bool = True) -> None:
        self._exclude_positive = check.boolean("exclude_positive", exclude_positive)

    @property
    def exclude_positive(self) -> bool:
        return self._exclude_positive

    def get_negatives(self, anchor_idx: int, positive_idx: int, batch_size: int) -> IndexArray:
        """Indices 0..batch_size-1 without the anchor (and the positive, if excluded)."""
        n = check.non_negative_int("batch_size", batch_size)
        a = check.non_negative_int("anchor_idx", anchor_idx)
        p = check.non_negative_int("positive_idx", positive_idx)
        for name, idx in (("anchor_idx", a), ("positive_idx", p)):
            if idx >= n:
                raise ArgumentError(f"{name} must be < batch_size ({n}), got {idx}")
        keep = np.ones(n, dtype=bool)
        keep[a] = False
        if self._exclude_positive:
            keep[p] = False
        return np.flatnonzero(keep).astype(np.int64)

    def __repr__(self) -> str:
        return f"InBatchMiner(exclude_positive={self._exclude_positive})"
