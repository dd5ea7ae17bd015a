"""The PyTorch front end's optimizers against ``torch.optim``, in one run, on 1 and 2 threads.

For each of AdamW, Adam and SGD (momentum 0.9), ``ruvector_attention.torch`` against torch's
fastest CPU path: ``fused=True`` where torch has it for the CPU, ``foreach=True`` otherwise.
1. The step alone, called back to back (as torch's own optimizer benchmarks time it), on a
   768-512-256 MLP (0.5M parameters in 4 tensors) and a 10M-parameter model (6 tensors).
2. Inside a training loop: forward, MSE loss, backward and the step of the MLP at batch 256, where
   torch's OpenMP workers have just run the backward pass; the whole iteration is timed, and the
   step's own share.
3. ``--crossover``: where the kernels' thread pool starts to pay for an AdamW / SGD step on one
   array: through the front end (steps called from Python in a loop, as training does), and by
   the bare native call back to back and after 1 ms asleep (the pool's workers asleep).

Run: ``python benches/bench_torch_optim.py`` (needs the [torch] extra; ``--quick`` for a smoke
run). Threads are equal on both sides (``torch.set_num_threads`` = ``ra.set_num_threads``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import cpu_name, interleaved

import ruvector_attention as ra
import ruvector_attention.torch as rat
from ruvector_attention import _native

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "AdamW": dict(lr=1e-4, weight_decay=0.01),
    "Adam": dict(lr=1e-4),
    "SGD": dict(lr=1e-3, momentum=0.9),
}


def model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "mlp":  # 768-512-256: 525,568 parameters
        layers = [torch.nn.Linear(768, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256)]
    else:  # 2048-2048-2048-768: 9,967,360 parameters
        layers = [
            torch.nn.Linear(2048, 2048),
            torch.nn.ReLU(),
            torch.nn.Linear(2048, 2048),
            torch.nn.ReLU(),
            torch.nn.Linear(2048, 768),
        ]
    return torch.nn.Sequential(*layers)


def torch_fastest(name: str, params: list[torch.nn.Parameter]) -> tuple[Any, str]:
    """torch's optimizer in its fastest CPU form: fused where this torch has it, else foreach."""
    cls = getattr(torch.optim, name)
    try:
        opt = cls(params, fused=True, **OPTIMIZERS[name])
        opt.step()  # a torch without a CPU fused kernel fails here, not at construction
        opt.zero_grad(set_to_none=False)
        return opt, "fused"
    except (RuntimeError, TypeError, ValueError):
        return cls(params, foreach=True, **OPTIMIZERS[name]), "foreach"


def with_gradients(kind: str) -> list[torch.nn.Parameter]:
    params = list(model(kind).parameters())
    gen = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    return params


def step_alone(kind: str, repeats: int, names: list[str]) -> list[tuple[str, float, float, str]]:
    rows = []
    for name in names:
        ours = getattr(rat, name)(with_gradients(kind), **OPTIMIZERS[name])
        theirs, form = torch_fastest(name, with_gradients(kind))
        t = interleaved({"ours": ours.step, "torch": theirs.step}, repeats=repeats, min_round=0.05)
        rows.append((name, t["ours"], t["torch"], form))
    return rows


def training_case(name: str, x: torch.Tensor, y: torch.Tensor, repeats: int) -> tuple[float, ...]:
    """(ours whole, torch whole, ours step, torch step) seconds per training iteration."""
    nets = {"ours": model("mlp"), "torch": model("mlp")}
    opts = {
        "ours": getattr(rat, name)(nets["ours"].parameters(), **OPTIMIZERS[name]),
        "torch": torch_fastest(name, list(nets["torch"].parameters()))[0],
    }
    spent = {"ours": 0.0, "torch": 0.0}
    calls = {"ours": 0, "torch": 0}

    def iteration(side: str) -> Callable[[], None]:
        net, opt = nets[side], opts[side]

        def run() -> None:
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            start = time.perf_counter()
            opt.step()
            spent[side] += time.perf_counter() - start
            calls[side] += 1

        return run

    whole = interleaved({side: iteration(side) for side in nets}, repeats=repeats, min_round=0.1)
    return (
        whole["ours"],
        whole["torch"],
        spent["ours"] / calls["ours"],
        spent["torch"] / calls["torch"],
    )


def in_training(
    repeats: int, names: list[str], batch: int = 256
) -> list[tuple[str, tuple[float, ...]]]:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(batch, 768, generator=gen)
    y = torch.randn(batch, 256, generator=gen)
    return [(name, training_case(name, x, y, repeats)) for name in names]


def one_array_kernels(n: int, rng: np.random.Generator) -> dict[str, Callable[[], None]]:
    """An AdamW and an SGD-momentum step of one n-element array: through the PyTorch front end
    (``torch`` keys) and by the bare native calls."""
    p, g, m, v = (rng.random(n, dtype=np.float32) for _ in range(4))
    plan = _native.AdamPlan(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True)
    front = {}
    for name in ("AdamW", "SGD"):
        param = torch.nn.Parameter(torch.from_numpy(p.copy()))
        param.grad = torch.from_numpy(g.copy())
        front[name] = getattr(rat, name)([param], **OPTIMIZERS[name])
    return {
        "AdamW front end": front["AdamW"].step,
        "SGD front end": front["SGD"].step,
        "AdamW native": lambda: plan.step([p], [g], [m], [v], step=5, lr=1e-4),
        "SGD native": lambda: _native.sgd_step(
            [p], [g], [m], lr=1e-4, momentum=0.9, weight_decay=0.0, nesterov=False
        ),
    }


def crossover(repeats: int) -> None:
    """Optimizer steps of one array on 2 threads, the pool forced on or off."""
    ra.set_num_threads(2)
    torch.set_num_threads(2)
    print(
        "\n== Crossover: 2 threads, pool forced on or off (the optimizers' own threshold: "
        "1,048,576; the other streaming kernels': 262,144)"
    )
    print(
        "front end: the optimizer's step() called from Python in a loop; native: the bare call "
        "back to back, and after 1 ms asleep"
    )
    print(
        f"{'elements':>10} {'case':<16} {'gap':<6} {'serial':>10} {'pool':>10} {'pool/serial':>12}"
    )
    rng = np.random.default_rng(0)
    try:
        for n in (65_536, 131_072, 262_144, 524_288, 1_048_576, 2_097_152, 4_194_304):
            for case, call in one_array_kernels(n, rng).items():
                for gap in (0.0, 1e-3) if case.endswith("native") else (0.0,):
                    s, q = pool_against_serial(call, n, gap, repeats)
                    print(
                        f"{n:>10,} {case:<16} {gap * 1e3:>4.0f}ms {s * 1e6:>8.1f}us "
                        f"{q * 1e6:>8.1f}us {q / s:>11.2f}x"
                    )
    finally:
        _native._testing.set_parallel_threshold(None)


def pool_against_serial(
    call: Callable[[], object], n: int, gap: float, repeats: int
) -> tuple[float, float]:
    """Median seconds per call with the pool forced off, then on, in alternating rounds."""
    times: dict[str, list[float]] = {"serial": [], "pool": []}
    for _ in range(repeats):
        for mode in times:
            _native._testing.set_parallel_threshold(1 << 62 if mode == "serial" else 0)
            call()
            inner = []
            for _ in range(max(40, 8_000_000 // n)):
                if gap:
                    time.sleep(gap)
                start = time.perf_counter()
                call()
                inner.append(time.perf_counter() - start)
            times[mode].append(statistics.median(inner))
    return statistics.median(times["serial"]), statistics.median(times["pool"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repeats, the MLP only")
    parser.add_argument("--crossover", action="store_true", help="only the pool's crossover")
    parser.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), action="append", help="only these (repeatable)"
    )
    parser.add_argument("--model", choices=["mlp", "10m"], action="append", help="only these")
    parser.add_argument("--no-training", action="store_true", help="the steps alone only")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole table")
    args = parser.parse_args()
    names = args.optimizer or list(OPTIMIZERS)
    repeats = 3 if args.quick else 9
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; torch {torch.__version__}")
    if args.crossover:
        crossover(repeats)
        return
    kinds = args.model or (["mlp"] if args.quick else ["mlp", "10m"])
    for threads in [t for _ in range(args.rounds) for t in (1, 2)]:
        torch.set_num_threads(threads)
        ra.set_num_threads(threads)
        print(f"\n== {threads} thread(s) on both sides, SIMD path {ra.simd_path()}")
        print(f"{'case':<34}{'ruvector':>11}{'torch':>11}  {'torch/ruvector':>14}")
        for kind in kinds:
            label = "MLP 0.5M" if kind == "mlp" else "10M params"
            for name, ours, theirs, form in step_alone(kind, repeats, names):
                print(
                    f"{name + ' step, ' + label + ' (' + form + ')':<34}"
                    f"{ours * 1e3:>9.3f}ms{theirs * 1e3:>9.3f}ms  {theirs / ours:>13.2f}x"
                )
        for name, (ours, theirs, ours_step, their_step) in (
            [] if args.no_training else in_training(repeats, names)
        ):
            print(
                f"{name + ' training iteration, MLP':<34}"
                f"{ours * 1e3:>9.3f}ms{theirs * 1e3:>9.3f}ms  {theirs / ours:>13.2f}x"
                f"   (step share {ours_step * 1e3:.3f} vs {their_step * 1e3:.3f} ms)"
            )


if __name__ == "__main__":
    main()
