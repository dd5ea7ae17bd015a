"""``ruvector-attention train``: flags, the run (or several seeds' runs) and the report.

Every number the command reports says which split it was measured on. The evaluation curve (and
anything a user tunes by watching it) uses the validation part; the test part is scored once per
run, after training. ``--repeats N`` trains N seeds and reports the mean and standard deviation of
every metric beside PCA and LDA.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from ...state import StateFileError
from .._common import Stopped, exit_code, fail
from .config import TrainConfig
from .data import DataError, Dataset, load_dataset
from .outdir import FINISHED, RESUME, OutputDirError, locked_output_dir, plan_runs
from .resources import check_memory
from .trainer import Trainer, check_same_run, data_digest

__all__ = ["add_parser", "run"]

_EXTRA_HINT = (
    'ruvector-attention train needs the "train" extra: pip install "ruvector-attention[train]"'
)


def add_parser(sub: Any) -> None:
    """The ``train`` subcommand and its flags."""
    train = sub.add_parser(
        "train",
        help="contrastive training of an embedding on labelled vectors",
        description=(
            "Trains a projection (or a small MLP) to --dim dimensions with InfoNCE, hard-negative "
            "mining, AdamW with warmup-cosine learning rate, gradient clipping and a curriculum. "
            "The data are split (stratified) into training, validation and test parts; the "
            "evaluation curve uses validation, and recall@1 and MAP@R are reported on test once, "
            "after training, beside PCA and LDA. Writes metrics.json, training.png, weights.npz "
            "and checkpoint.safetensors to --out."
        ),
    )
    defaults = TrainConfig()
    add = train.add_argument
    add(
        "--dim",
        type=int,
        default=defaults.dim,
        help=f"embedding dimension (default {defaults.dim})",
    )
    add(
        "--steps",
        type=int,
        default=defaults.steps,
        help=f"training steps (default {defaults.steps})",
    )
    add("--seed", type=int, default=0, help="random seed of the split and the run (default 0)")
    add("--repeats", type=int, default=1, help="train seeds seed..seed+N-1; report mean and std")
    add("--features", help=".npy file of features (samples, dims); default: digits")
    add("--labels", help=".npy file of integer labels (samples,)")
    add("--out", default="ruvector-run", help="output directory (default ruvector-run)")
    add("--resume", action="store_true", help="continue from --out/checkpoint.safetensors")
    add("--overwrite", action="store_true", help="start over even if --out holds a checkpoint")
    add("--batch-size", type=int, default=defaults.batch_size, help="anchors per step")
    add("--lr", type=float, default=defaults.lr, help=f"peak learning rate (default {defaults.lr})")
    add(
        "--hidden",
        type=int,
        default=defaults.hidden,
        help=f"MLP hidden units; 0 = linear (default {defaults.hidden})",
    )
    add(
        "--laplacian-weight",
        type=float,
        default=0.0,
        help="weight of the Laplacian regulariser on a kNN graph of the inputs (default 0: off)",
    )
    add("--checkpoint-every", type=int, default=250, help="default 250 steps")
    add("--eval-every", type=int, default=50, help="validation every N steps (default 50)")
    add("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The command: exit 0, 2 (bad input, one line on stderr) or 130 (interrupted)."""
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as exc:
        return fail("train", f"{_EXTRA_HINT} (missing: {exc.name})")
    if not isinstance(args.repeats, int) or args.repeats < 1:
        return fail("train", f"--repeats must be an integer >= 1, got {args.repeats}")
    seeds = [args.seed + i for i in range(args.repeats)]
    configs = [_config(args, seed) for seed in seeds]
    try:
        for config in configs:
            config.check()
        # All data first, and the memory the run needs: bad input never creates --out.
        datasets = [_load(config) for config in configs]
        check_memory(configs[0], datasets[0])
        with locked_output_dir(args.out):
            run_dirs = (
                [args.out]
                if len(seeds) == 1
                else [os.path.join(args.out, f"seed-{seed}") for seed in seeds]
            )
            plans = plan_runs(run_dirs, resume=args.resume, overwrite=args.overwrite)
            runs = []
            for config, data, run_dir, plan in zip(configs, datasets, run_dirs, plans):
                result: dict[str, Any] | int
                if plan == FINISHED:
                    result = _finished_run(config, data, run_dir)
                else:
                    result = _one_run(args, config, data, run_dir, resume=plan == RESUME)
                if isinstance(result, int):  # stopped by a signal: its exit code
                    return result
                runs.append(result)
            if len(runs) > 1:
                _report_repeats(args.out, runs)
            return 0
    except (DataError, OutputDirError, ValueError, StateFileError) as exc:
        return fail("train", str(exc))


def _finished_run(config: TrainConfig, data: Dataset, run_dir: str) -> dict[str, Any]:
    """The report of a seed that finished before (``--resume`` of several seeds): not run again,
    once its settings and data are shown to be those of this command."""
    path = os.path.join(run_dir, "metrics.json")
    try:
        with open(path, encoding="utf-8") as f:
            result: dict[str, Any] = json.load(f)
        saved_config, digest = dict(result["config"]), result["data_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StateFileError(f"{path}: not the report of a finished run; remove it") from None
    check_same_run(f"the finished run in {run_dir}", config, data, saved_config, digest)
    print(f"seed {config.seed}: finished before ({run_dir}); not run again")
    return result


def _config(args: argparse.Namespace, seed: int) -> TrainConfig:
    return TrainConfig(
        dim=args.dim,
        steps=args.steps,
        seed=seed,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=args.hidden,
        laplacian_weight=args.laplacian_weight,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        features=args.features,
        labels=args.labels,
    )


def _load(config: TrainConfig) -> Dataset:
    return load_dataset(
        config.features,
        config.labels,
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
    )


def _one_run(
    args: argparse.Namespace, config: TrainConfig, data: Dataset, out_dir: str, *, resume: bool
) -> dict[str, Any] | int:
    """Train one seed into ``out_dir`` and report it; the exit code if a signal stopped it (the
    checkpoint saved)."""
    from .baselines import baselines
    from .report import plot, write_metrics, write_weights

    os.makedirs(out_dir, exist_ok=True)
    trainer = Trainer(config, data)
    if resume:
        trainer.load(out_dir)
    sizes = data.sizes()
    print(f"data: {data.source}")
    print(
        f"      {sizes['train']} training, {sizes['validation']} validation and {sizes['test']} "
        f"test samples (stratified, seed {config.seed}), {data.x_train.shape[1]} features, "
        f"{data.num_classes} classes"
    )
    model = "linear projection" if not config.hidden else f"MLP ({config.hidden} hidden units)"
    print(f"model: {model} to {config.dim} dims; {config.steps} steps of {config.batch_size}")
    if resume:
        print(f"resuming from step {trainer.step_count} ({out_dir})")
    started = time.perf_counter()
    bar = _Progress(trainer, config, disabled=args.no_progress)
    try:
        trainer.run(out_dir, on_step=bar.update)
    except KeyboardInterrupt as exc:
        bar.close()
        by = (
            f" by {exc.args[0]}" if isinstance(exc, Stopped) and exc.signum != signal.SIGINT else ""
        )
        print(
            f"\ninterrupted{by} at step {trainer.step_count}: checkpoint saved in {out_dir}; "
            "continue with the same flags and --resume",
            file=sys.stderr,
        )
        return exit_code(exc)
    bar.close()
    elapsed = time.perf_counter() - started
    trainer.save(out_dir)
    base = baselines(data, config.dim)
    scores: dict[str, dict[str, Any]] = {}
    for split in ("validation", "test"):  # test: scored once, here
        scores[split] = {
            "ruvector": trainer.evaluate(split),
            "before_training": trainer.evaluate_initial(split),
            **base[split],
        }
    _print_table(f"test ({sizes['test']} samples, cosine, leave-one-out)", scores["test"], config)
    result = {
        "seed": config.seed,
        "splits": sizes,
        "validation": scores["validation"],
        "test": scores["test"],
        "history": {
            "measured_on": "validation",
            "eval_step": trainer.history["eval_step"],
            "recall_at_1": trainer.history["recall_at_1"],
            "map_at_r": trainer.history["map_at_r"],
        },
        "final_loss": trainer.history["loss"][-1] if trainer.history["loss"] else None,
        "steps": trainer.step_count,
        "train_seconds": elapsed,
        "data": data.source,
        "data_sha256": data_digest(data),
        "config": config.to_dict(),
    }
    metrics = write_metrics(os.path.join(out_dir, "metrics.json"), result)
    png = plot(out_dir, trainer, base["validation"])
    weights = write_weights(out_dir, trainer, data)
    print(f"\nwrote {metrics}, {png}, {weights} ({elapsed:.1f} s of training)")
    return result


_ROWS = (
    ("before_training", "before training (random init)"),
    ("pca", "PCA, {dims} dims"),
    ("lda", "LDA, {dims} dims"),
    ("ruvector", "ruvector-attention, {dim} dims"),
)


def _print_table(title: str, scores: dict[str, Any], config: TrainConfig) -> None:
    print(f"\n{title}")
    print(f"  {'':<36} {'recall@1':>9} {'MAP@R':>8}")
    for key, label in _ROWS:
        m = scores[key]
        name = label.format(dims=m.get("dims"), dim=config.dim)
        if m["recall_at_1"] is None:
            print(f"  {name:<36} {'n/a':>9} {'n/a':>8}  ({m['unavailable']})")
        else:
            print(f"  {name:<36} {m['recall_at_1']:>9.4f} {m['map_at_r']:>8.4f}")
    available = [scores[b] for b in ("pca", "lda") if scores[b]["recall_at_1"] is not None]
    names = " and ".join(b.upper() for b in ("pca", "lda") if scores[b]["recall_at_1"] is not None)
    if available:
        beat = scores["ruvector"]["recall_at_1"] > max(m["recall_at_1"] for m in available)
        print("  " + ("beats" if beat else "does not beat") + f" {names} on recall@1")


def _report_repeats(out_dir: str, runs: list[dict[str, Any]]) -> None:
    from .report import summarise, write_metrics

    summary = summarise(runs)
    seeds = [run["seed"] for run in runs]
    print(f"\ntest, {len(runs)} seeds {seeds}: mean +- standard deviation")
    print(f"  {'':<36} {'recall@1':>17} {'MAP@R':>17}")
    for key, label in _ROWS:
        m = summary["test"][key]
        name = label.format(dims=runs[0]["test"][key].get("dims"), dim=runs[0]["config"]["dim"])
        r1, mp = m["recall_at_1"], m["map_at_r"]
        r1_text = "n/a" if r1["mean"] is None else f"{r1['mean']:.4f} +- {r1['std']:.4f}"
        mp_text = "n/a" if mp["mean"] is None else f"{mp['mean']:.4f} +- {mp['std']:.4f}"
        print(f"  {name:<36} {r1_text:>17} {mp_text:>17}")
    document = {"seeds": seeds, "summary": summary, "runs": runs}
    path = write_metrics(os.path.join(out_dir, "metrics.json"), document)
    print(f"\nwrote {path} (and one directory per seed)")


class _Progress:
    def __init__(self, trainer: Trainer, config: TrainConfig, disabled: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=config.steps,
            initial=trainer.step_count,
            disable=disabled,
            unit="step",
            dynamic_ncols=True,
        )

    def update(self, trainer: Trainer, info: dict[str, float]) -> None:
        stage = trainer.stage()
        self._bar.set_postfix(
            loss=f"{info['loss']:.3f}",
            lr=f"{info['lr']:.2e}",
            t=f"{info['temperature']:.2f}",
            stage=stage.name,
            refresh=False,
        )
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
