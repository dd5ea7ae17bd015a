"""How the train job's defaults were chosen: validation metrics only, on tuning seeds.

Runs each candidate configuration on the tuning seeds (0-3) and prints mean validation recall@1
and MAP@R. The test part is never looked at here; the gates (tests, .ci/run) use other seeds.
Usage: python benches/tune_train.py [--seeds 0 1 2 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ruvector_attention.cli.train import TrainConfig, Trainer, load_dataset

CANDIDATES = {
    "linear-2000": {},
    "mlp128-2000": {"hidden": 128},
    "mlp256-2000": {"hidden": 256},
    "mlp128-3000": {"hidden": 128, "steps": 3000},
    "mlp256-3000": {"hidden": 256, "steps": 3000},
    "mlp128-2000-lr3e-3": {"hidden": 128, "lr": 0.003},
    "mlp256-2000-lr3e-3": {"hidden": 256, "lr": 0.003},
    "mlp256-3000-lr5e-3": {"hidden": 256, "steps": 3000, "lr": 0.005},
    "mlp256-2000-lr2e-3": {"hidden": 256, "lr": 0.002},
    "mlp256-2000-lr1e-3": {"hidden": 256, "lr": 0.001},
    "mlp512-2000-lr3e-3": {"hidden": 512, "lr": 0.003},
    "mlp256-1500-lr3e-3": {"hidden": 256, "steps": 1500, "lr": 0.003},
}


def validation_score(settings: dict[str, object], seed: int) -> dict[str, float]:
    config = TrainConfig(seed=seed, eval_every=10**9, checkpoint_every=10**9, **settings)
    data = load_dataset(
        None, None, seed=seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
    )
    trainer = Trainer(config, data)
    while trainer.step_count < config.steps:
        trainer.step()
    return trainer.evaluate("validation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--only", nargs="+", default=list(CANDIDATES))
    args = parser.parse_args()
    print(f"{'candidate':<24} {'val recall@1':>13} {'val MAP@R':>10} {'s/run':>7}")
    for name in args.only:
        started = time.perf_counter()
        scores = [validation_score(CANDIDATES[name], seed) for seed in args.seeds]
        seconds = (time.perf_counter() - started) / len(args.seeds)
        r1 = np.mean([s["recall_at_1"] for s in scores])
        mp = np.mean([s["map_at_r"] for s in scores])
        print(f"{name:<24} {r1:>13.4f} {mp:>10.4f} {seconds:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
