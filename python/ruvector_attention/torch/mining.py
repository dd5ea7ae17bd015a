"""The miners with tensors in and int64 tensors out (the NumPy miners underneath)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import mining as _mining
from ..errors import ArgumentError
from ._tensors import as_array

__all__ = ["HardNegativeMiner", "InBatchMiner"]


def _floats(value: object, name: str) -> Any:
    return as_array(value, name) if isinstance(value, torch.Tensor) else value


def _labels(value: object, name: str) -> Any:
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise ArgumentError(f"{name} is on device {value.device}; move it first with .cpu()")
        return value.detach().numpy()
    return value


class HardNegativeMiner(_mining.HardNegativeMiner):
    """:class:`ruvector_attention.HardNegativeMiner` taking tensors (or arrays) and returning
    int64 tensors; the strategies, seeding and ``state_dict`` are the NumPy miner's.

    Examples:
        >>> import torch
        >>> from ruvector_attention.torch import HardNegativeMiner
        >>> anchors = torch.tensor([[1.0, 0.0]])
        >>> candidates = torch.tensor([[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]])
        >>> HardNegativeMiner.hardest().mine_batch(anchors, None, candidates, 2)
        tensor([[1, 0]])
    """

    def mine(self, anchor: object, positive: object, candidates: object, k: int) -> torch.Tensor:
        picked = super().mine(
            _floats(anchor, "anchor"),
            _floats(positive, "positive"),
            _floats(candidates, "candidates"),
            k,
        )
        return torch.from_numpy(np.ascontiguousarray(picked))

    def mine_batch(
        self,
        anchors: object,
        positives: object,
        candidates: object,
        k: int,
        *,
        anchor_labels: object = None,
        candidate_labels: object = None,
    ) -> torch.Tensor:
        picked = super().mine_batch(
            _floats(anchors, "anchors"),
            None if positives is None else _floats(positives, "positives"),
            _floats(candidates, "candidates"),
            k,
            anchor_labels=_labels(anchor_labels, "anchor_labels"),
            candidate_labels=_labels(candidate_labels, "candidate_labels"),
        )
        return torch.from_numpy(picked)


class InBatchMiner(_mining.InBatchMiner):
    """:class:`ruvector_attention.InBatchMiner` returning int64 tensors.

    Examples:
        >>> from ruvector_attention.torch import InBatchMiner
        >>> InBatchMiner().get_negatives(0, 1, 4)
        tensor([2, 3])
    """

    def get_negatives(self, anchor_idx: int, positive_idx: int, batch_size: int) -> torch.Tensor:
        return torch.from_numpy(super().get_negatives(anchor_idx, positive_idx, batch_size))
