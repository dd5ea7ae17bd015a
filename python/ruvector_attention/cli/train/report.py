"""What a run leaves in its output directory: metrics.json, training.png, weights.npz."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from ..._atomic_file import write_atomically
from .data import Dataset
from .trainer import Trainer

__all__ = ["plot", "write_metrics", "write_weights"]


def write_metrics(path: str, document: dict[str, Any]) -> str:
    """``document`` as JSON at ``path`` (atomically: never half-written)."""
    write_atomically(path, json.dumps(document, indent=2).encode())
    return path


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation (over runs) of every metric of every method and split."""
    summary: dict[str, Any] = {}
    for split in ("validation", "test"):
        summary[split] = {}
        for method in runs[0][split]:
            summary[split][method] = {}
            for metric in ("recall_at_1", "map_at_r"):
                # A baseline unavailable on some seed's data (None) is left out of its summary.
                found = [run[split][method][metric] for run in runs]
                values = np.array([v for v in found if v is not None], dtype=np.float64)
                summary[split][method][metric] = {
                    "mean": float(values.mean()) if len(values) else None,
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "seeds": len(values),
                }
    return summary


def plot(out_dir: str, trainer: Trainer, base: dict[str, dict[str, Any]]) -> str:
    """Loss and validation curves beside the baselines' validation scores."""
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
        if base[name]["recall_at_1"] is None:  # unavailable on these data
            continue
        ax_recall.axhline(base[name]["recall_at_1"], color=color, label=f"{name.upper()} recall@1")
        ax_recall.axhline(
            base[name]["map_at_r"], color=color, linestyle="--", label=f"{name.upper()} MAP@R"
        )
    ax_recall.set_xlabel("step")
    ax_recall.set_title("validation retrieval")
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
