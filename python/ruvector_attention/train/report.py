"""What a run leaves in its output directory: metrics.json, training.png, weights.npz."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from .._atomic_file import write_atomically
from .config import TrainConfig
from .data import Dataset
from .trainer import Trainer

__all__ = ["plot", "write_metrics", "write_weights"]


def write_metrics(
    out_dir: str,
    config: TrainConfig,
    data: Dataset,
    trainer: Trainer,
    before: dict[str, float],
    after: dict[str, float],
    base: dict[str, dict[str, Any]],
    seconds: float,
) -> str:
    metrics = {
        "recall_at_1": after["recall_at_1"],
        "map_at_r": after["map_at_r"],
        "before_recall_at_1": before["recall_at_1"],
        "before_map_at_r": before["map_at_r"],
        "pca_recall_at_1": base["pca"]["recall_at_1"],
        "pca_map_at_r": base["pca"]["map_at_r"],
        "pca_dims": base["pca"]["dims"],
        "lda_recall_at_1": base["lda"]["recall_at_1"],
        "lda_map_at_r": base["lda"]["map_at_r"],
        "lda_dims": base["lda"]["dims"],
        "final_loss": trainer.history["loss"][-1] if trainer.history["loss"] else None,
        "steps": trainer.step_count,
        "train_seconds": seconds,
        "data": data.source,
        "train_samples": len(data.y_train),
        "test_samples": len(data.y_test),
        "config": config.to_dict(),
        "history": {
            "eval_step": trainer.history["eval_step"],
            "recall_at_1": trainer.history["recall_at_1"],
            "map_at_r": trainer.history["map_at_r"],
        },
    }
    path = os.path.join(out_dir, "metrics.json")
    write_atomically(path, json.dumps(metrics, indent=2).encode())
    return path


def plot(out_dir: str, trainer: Trainer, base: dict[str, dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(trainer.history["step"])
    loss = np.asarray(trainer.history["loss"])
    fig, (ax_loss, ax_recall) = plt.subplots(1, 2, figsize=(11, 4))
    if len(loss):
        window = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax_loss.plot(steps, loss, color="0.8", linewidth=0.8, label="per step")
        ax_loss.plot(steps[window - 1 :], smooth, color="C0", label=f"mean of {window}")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("InfoNCE loss")
    ax_loss.set_title("training loss (temperature and negatives follow the curriculum)")
    ax_loss.legend()
    ax_recall.plot(
        trainer.history["eval_step"],
        trainer.history["recall_at_1"],
        "C0-",
        label="ruvector recall@1",
    )
    ax_recall.plot(
        trainer.history["eval_step"], trainer.history["map_at_r"], "C0--", label="ruvector MAP@R"
    )
    for name, color in (("pca", "C1"), ("lda", "C2")):
        ax_recall.axhline(base[name]["recall_at_1"], color=color, label=f"{name.upper()} recall@1")
        ax_recall.axhline(
            base[name]["map_at_r"], color=color, linestyle="--", label=f"{name.upper()} MAP@R"
        )
    ax_recall.set_xlabel("step")
    ax_recall.set_title("held-out retrieval")
    ax_recall.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, "training.png")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, buffer.getvalue())
    return path


def write_weights(out_dir: str, trainer: Trainer, data: Dataset) -> str:
    """The head's parameters and the input standardisation (embed with ``(x - mean) / scale``)."""
    path = os.path.join(out_dir, "weights.npz")
    arrays: dict[str, Any] = {"mean": data.mean, "scale": data.scale}
    arrays.update(zip(trainer.model.names, trainer.model.params))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomically(path, buffer.getvalue())
    return path
