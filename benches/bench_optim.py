"""Optimizer step benchmarks: ruvector_attention against the memory bound, NumPy and PyTorch.

Run: ``python benches/bench_optim.py`` (add ``--quick`` for a smoke run). PyTorch is compared
when installed (``pip install ruvector-attention[bench]``). Each figure is the median of at least
5 timed repeats after a warm-up; ratios compare figures from this same run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import cpu_name, interleaved, median_seconds

import ruvector_attention as ra
from ruvector_attention import _native

try:
    import torch
except ImportError:  # optional
    torch = None


def numpy_adamw(p, g, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.01, tmp=None):
    """A careful vectorised NumPy AdamW (in place, one temporary)."""
    p *= 1 - lr * wd
    m *= b1
    m += (1 - b1) * g
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp /= np.sqrt(1 - b2**t)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= lr / (1 - b1**t)
    p -= tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    big = 1_000_000 if args.quick else 10_000_000
    threads = ra.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)

    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, kernels on {threads} threads")
    print(f"simd path: {ra.simd_path()} (best on this CPU: {_native._testing.best_simd_path()})")
    print(
        f"numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch else ", torch: not installed")
    )
    rows: list[tuple[str, str, float, str]] = []

    def row(case: str, impl: str, seconds: float, note: str = "") -> None:
        rows.append((case, impl, seconds, note))
        unit = f"{seconds * 1e3:9.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:9.2f} us"
        print(f"  {case:<34} {impl:<28} {unit}  {note}")

    rng = np.random.default_rng(0)

    # -- large steps against the memory bound -----------------------------------------------------
    # (in a function so that the 10M-element arrays are freed before the next section)
    def large() -> None:
        p = rng.standard_normal(big, dtype=np.float32)
        g = rng.standard_normal(big, dtype=np.float32) * np.float32(1e-3)
        pm = np.zeros(big, np.float32)
        pv = np.zeros(big, np.float32)
        tmp = np.empty_like(p)
        np_state: list[Any] = [np.zeros_like(p), np.zeros_like(p), 0]

        def np_step() -> None:
            np_state[2] += 1
            numpy_adamw(p, g, np_state[0], np_state[1], np_state[2], tmp=tmp)

        def torch_opt(cls: Any, **kw: Any) -> Callable[[], Any]:
            tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
            tp.grad = torch.from_numpy(g.copy())
            return cls([tp], lr=1e-3, **kw).step  # type: ignore[no-any-return]

        adamw, adam = ra.AdamW(lr=1e-3, weight_decay=0.01), ra.Adam(lr=1e-3)
        sgd = ra.SGD(lr=1e-3, momentum=0.9)
        fns: dict[str, Callable[[], Any]] = {
            "probe": lambda: _native._testing.stream_probe(p, g, pm, pv),
            "adamw": lambda: adamw.step(p, g),
            "adam": lambda: adam.step(p, g),
            "sgd": lambda: sgd.step(p, g),
        }
        if torch is not None:
            fns["torch adamw fused"] = torch_opt(torch.optim.AdamW, weight_decay=0.01, fused=True)
            fns["torch adamw foreach"] = torch_opt(
                torch.optim.AdamW, weight_decay=0.01, foreach=True
            )
            fns["torch adam fused"] = torch_opt(torch.optim.Adam, fused=True)
            fns["torch sgd foreach"] = torch_opt(torch.optim.SGD, momentum=0.9, foreach=True)
        t = interleaved(fns, repeats=repeats)
        t["numpy adamw"] = median_seconds(np_step, repeats=max(3, repeats // 3))
        bandwidth = 28 * big / t["probe"]

        def bound(seconds: float, nbytes: int) -> str:
            rate = nbytes * big / seconds
            return f"{rate / 1e9:.1f} GB/s = {rate / bandwidth:.0%} of the measured bound"

        print(
            f"\nstreaming bandwidth (read 4 + write 3 float32 arrays): {bandwidth / 1e9:.1f} GB/s"
        )
        print(f"\nlarge steps, {big:,} float32 params (timed in alternating rounds)")
        row(f"stream probe, {big:,}", "ruvector (memory bound)", t["probe"], bound(t["probe"], 28))
        row("AdamW large", "ruvector", t["adamw"], bound(t["adamw"], 28))
        row(
            "AdamW large",
            "NumPy (vectorised)",
            t["numpy adamw"],
            f"ruvector {t['numpy adamw'] / t['adamw']:.1f}x faster",
        )
        # (case, ours, bytes moved per param, [(torch key, label), ...])
        report = [
            (
                "AdamW large",
                "adamw",
                28,
                [
                    ("torch adamw fused", "torch AdamW fused"),
                    ("torch adamw foreach", "torch AdamW foreach"),
                ],
            ),
            ("Adam large", "adam", 28, [("torch adam fused", "torch Adam fused")]),
            # SGD with momentum moves 20 bytes per parameter (reads p, g, b; writes p, b).
            ("SGD momentum large", "sgd", 20, [("torch sgd foreach", "torch SGD foreach")]),
        ]
        for case, ours, nbytes, rivals in report:
            if ours != "adamw":
                row(case, "ruvector", t[ours], bound(t[ours], nbytes))
            for key, label in rivals:
                if key in t:
                    row(case, label, t[key], f"ruvector {t[key] / t[ours]:.2f}x faster")

    large()

    # -- AdamW, small (per-call overhead) --------------------------------------------------------
    print("\nAdamW step, 1,000 params (per-call overhead)")
    ps = rng.standard_normal(1000, dtype=np.float32)
    gs = rng.standard_normal(1000, dtype=np.float32) * np.float32(1e-3)
    small = ra.AdamW(lr=1e-3)
    t_small = median_seconds(lambda: small.step(ps, gs), repeats=max(5, repeats), inner=2000)
    add_out = ps.copy()
    t_add = median_seconds(
        lambda: np.add(add_out, gs, out=add_out), repeats=max(5, repeats), inner=2000
    )
    row("AdamW 1K", "ruvector", t_small, "target < 2 us")
    row("AdamW 1K", "NumPy in-place add of 1K floats", t_add, f"AdamW = {t_small / t_add:.1f}x it")
    if torch is not None:
        tp = torch.nn.Parameter(torch.from_numpy(ps.copy()))
        tp.grad = torch.from_numpy(gs.copy())
        topt = torch.optim.AdamW([tp], lr=1e-3, fused=True)
        t = median_seconds(topt.step, repeats=max(5, repeats), inner=2000)
        row("AdamW 1K", "torch AdamW fused", t, f"ruvector {t / t_small:.1f}x faster")

    # -- many arrays in one call -----------------------------------------------------------------
    print("\nAdamW step, 100 arrays of 10,000 params in one call")
    plist = [rng.standard_normal(10_000, dtype=np.float32) for _ in range(100)]
    glist = [rng.standard_normal(10_000, dtype=np.float32) * np.float32(1e-3) for _ in range(100)]
    many = ra.AdamW(lr=1e-3)
    t_many = median_seconds(lambda: many.step(plist, glist), repeats=max(5, repeats), inner=20)
    row("AdamW 100 x 10K", "ruvector", t_many)
    if torch is not None:
        tparams = []
        for a, b in zip(plist, glist):
            tp = torch.nn.Parameter(torch.from_numpy(a.copy()))
            tp.grad = torch.from_numpy(b.copy())
            tparams.append(tp)
        topt = torch.optim.AdamW(tparams, lr=1e-3, fused=True)
        t = median_seconds(topt.step, repeats=max(5, repeats), inner=20)
        row("AdamW 100 x 10K", "torch AdamW fused", t, f"ruvector {t / t_many:.2f}x faster")

    # -- every SIMD path on the large AdamW step -------------------------------------------------
    print(
        f"\nAdamW step on each SIMD path, {big // 10:,} params (fits in cache less often than not)"
    )
    n = big // 10
    pp = rng.standard_normal(n, dtype=np.float32)
    gg = rng.standard_normal(n, dtype=np.float32)
    best = _native._testing.best_simd_path()
    for path in ["baseline", "avx2", "avx512"]:
        try:
            _native._testing.force_simd_path(path)
        except ValueError:
            continue
        o = ra.AdamW(lr=1e-3)
        t = median_seconds(lambda o=o: o.step(pp, gg), repeats=repeats)
        row(f"AdamW {n:,} params", f"ruvector path {ra.simd_path()}", t)
    _native._testing.force_simd_path(best.split("+")[0])


if __name__ == "__main__":
    main()
