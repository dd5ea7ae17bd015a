"""What a training run needs of the machine, checked before any work (so a size that cannot fit
stops with one line naming the flags, not a MemoryError after --out was created)."""

from __future__ import annotations

from ..._system import beyond_memory
from .config import TrainConfig
from .data import DataError, Dataset

__all__ = ["check_memory", "memory_needed"]

#: Negatives per anchor the curriculum can ask for at its hardest stage (an upper bound).
_MAX_NEGATIVES = 64


def memory_needed(config: TrainConfig, data: Dataset) -> int:
    """About how many bytes a run takes at its peak (float32 throughout): the parameters six
    times over (the model, the initial model kept for the baseline, gradients, AdamW's two
    moments, a checkpoint's copy), a step's activations for the anchors, positives and
    negatives, and the embeddings of every sample for evaluation."""
    n, features = len(data.y_train) + len(data.y_val) + len(data.y_test), data.x_train.shape[1]
    width = config.hidden + config.dim
    if config.hidden:
        params = features * config.hidden + config.hidden + config.hidden * config.dim + config.dim
    else:
        params = features * config.dim + config.dim
    rows_per_step = config.batch_size * (2 + _MAX_NEGATIVES)
    floats = 6 * params + 2 * rows_per_step * width + 2 * n * width
    return int(4 * floats)


def check_memory(config: TrainConfig, data: Dataset) -> None:
    """Refuses a run that cannot fit in this machine's memory, naming the flags that size it."""
    shortfall = beyond_memory(memory_needed(config, data))
    if shortfall is not None:
        raise DataError(
            f"--dim {config.dim} with --hidden {config.hidden} and --batch-size "
            f"{config.batch_size} needs about {shortfall} of memory; choose smaller sizes"
        )
