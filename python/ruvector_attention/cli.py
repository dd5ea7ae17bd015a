"""The ``ruvector-attention`` command (also ``python -m ruvector_attention``).

``ruvector-attention train`` trains an embedding head with contrastive learning on labelled
vectors (scikit-learn's digits by default) and reports held-out retrieval quality beside PCA and
LDA baselines of the same dimension. See ``ruvector-attention train --help``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the train extra's modules are imported only when the command runs
    from .train import Dataset, TrainConfig, Trainer

__all__ = ["main"]

_EXTRA_HINT = (
    'ruvector-attention train needs the "train" extra: pip install "ruvector-attention[train]"'
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ruvector-attention", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="contrastive training of an embedding on labelled vectors",
        description=(
            "Trains a projection (or a small MLP) to --dim dimensions with InfoNCE, hard-negative "
            "mining, AdamW with warmup-cosine learning rate, gradient clipping and a curriculum; "
            "reports held-out recall@1 and MAP@R before and after, beside PCA and LDA. Writes "
            "metrics.json, training.png, weights.npz and checkpoint.safetensors to --out."
        ),
    )
    train.add_argument("--dim", type=int, default=8, help="embedding dimension (default 8)")
    train.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--features", help=".npy file of features (samples, dims); default: digits")
    train.add_argument("--labels", help=".npy file of integer labels (samples,)")
    train.add_argument(
        "--out", default="ruvector-run", help="output directory (default ruvector-run)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from --out/checkpoint.safetensors"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start over even if --out holds an earlier run's checkpoint",
    )
    train.add_argument("--batch-size", type=int, default=256, help="anchors per step (default 256)")
    train.add_argument("--lr", type=float, default=0.01, help="peak learning rate (default 0.01)")
    train.add_argument(
        "--hidden", type=int, default=0, help="MLP hidden units; 0 = linear (default)"
    )
    train.add_argument(
        "--laplacian-weight",
        type=float,
        default=0.0,
        help="weight of the Laplacian regulariser on a kNN graph of the inputs (default 0: off)",
    )
    train.add_argument("--checkpoint-every", type=int, default=250, help="default 250 steps")
    train.add_argument("--eval-every", type=int, default=50, help="default 50 steps")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "train":  # pragma: no cover (argparse requires a command)
        return 2
    from .state import StateFileError

    try:
        return train(args)
    except KeyboardInterrupt:  # during start-up or the report (training saves a checkpoint)
        print("\nruvector-attention train: interrupted", file=sys.stderr)
        return 130
    except (OSError, StateFileError) as exc:  # a full disk, a permission, a damaged file, ...
        return _fail(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc)


def _fail(message: str) -> int:
    print(f"ruvector-attention train: error: {message}", file=sys.stderr)
    return 2


def train(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as exc:
        return _fail(f"{_EXTRA_HINT} (missing: {exc.name})")
    from .train import DataError, TrainConfig, Trainer, load_dataset
    from .train.outdir import OutputDirError, locked_output_dir

    config = TrainConfig(
        dim=args.dim,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=args.hidden,
        laplacian_weight=args.laplacian_weight,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        features=args.features,
        labels=args.labels,
    )
    try:
        config.check()
        data = load_dataset(
            config.features, config.labels, seed=config.seed, test_fraction=config.test_fraction
        )
        trainer = Trainer(config, data)
        # The untrained model's metrics: measured before a checkpoint replaces its weights.
        before = trainer.evaluate()
        # Bad data never creates --out; from here on --out is this run's alone.
        with locked_output_dir(args.out, resume=args.resume, overwrite=args.overwrite) as ckpt:
            if args.resume:
                trainer.load(args.out)
            return _train_and_report(args, config, data, trainer, before, ckpt)
    except (DataError, OutputDirError, ValueError) as exc:
        return _fail(str(exc))


def _train_and_report(
    args: argparse.Namespace,
    config: TrainConfig,
    data: Dataset,
    trainer: Trainer,
    before: dict[str, float],
    checkpoint: str,
) -> int:
    """Everything after start-up, with --out locked."""
    from .train.baselines import baselines
    from .train.report import plot, write_metrics, write_weights

    print(f"data: {data.source}")
    print(
        f"      {len(data.y_train)} training and {len(data.y_test)} held-out samples "
        f"(stratified), {data.x_train.shape[1]} features, {data.num_classes} classes"
    )
    model = "linear projection" if not config.hidden else f"MLP ({config.hidden} hidden units)"
    print(f"model: {model} to {config.dim} dims; {config.steps} steps of {config.batch_size}")
    if args.resume:
        print(f"resuming from step {trainer.step_count} ({checkpoint})")
    started = time.perf_counter()
    bar = _Progress(trainer, config, disabled=args.no_progress)
    try:
        trainer.run(args.out, on_step=bar.update)
    except KeyboardInterrupt:
        bar.close()
        print(
            f"\ninterrupted at step {trainer.step_count}: checkpoint saved to "
            f"{checkpoint}; continue with the same flags and --resume",
            file=sys.stderr,
        )
        return 130
    bar.close()
    elapsed = time.perf_counter() - started
    trainer.save(args.out)
    after = trainer.evaluate()
    base = baselines(data, config.dim)
    rows = [
        ("before training (random init)", before),
        (f"PCA, {base['pca']['dims']} dims", base["pca"]),
        (f"LDA, {base['lda']['dims']} dims", base["lda"]),
        (f"ruvector-attention, {config.dim} dims", after),
    ]
    print(f"\nheld-out retrieval ({len(data.y_test)} samples, cosine, leave-one-out)")
    print(f"  {'':<36} {'recall@1':>9} {'MAP@R':>8}")
    for name, m in rows:
        print(f"  {name:<36} {m['recall_at_1']:>9.4f} {m['map_at_r']:>8.4f}")
    beat = after["recall_at_1"] > max(base["pca"]["recall_at_1"], base["lda"]["recall_at_1"])
    print("  " + ("beats" if beat else "does not beat") + " PCA and LDA on recall@1")
    metrics = write_metrics(args.out, config, data, trainer, before, after, base, elapsed)
    png = plot(args.out, trainer, base)
    weights = write_weights(args.out, trainer, data)
    print(f"\nwrote {metrics}, {png}, {weights} ({elapsed:.1f} s of training)")
    return 0


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
