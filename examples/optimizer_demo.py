"""Optimizer demo: fit a noisy linear model with AdamW, warmup-cosine and gradient clipping.

Every piece runs in the library: the optimizer step (Rust, in place on NumPy arrays), the
learning-rate schedule and the clipping. The exact least-squares solution is computed alongside
so the printout shows how close training gets to the best possible fit.

Run: ``python examples/optimizer_demo.py``
"""

from __future__ import annotations

import time

import numpy as np

import ruvector_attention as ra


def main() -> None:
    rng = np.random.default_rng(0)
    n, d = 8192, 128
    x = rng.standard_normal((n, d)).astype(np.float32)
    true_w = rng.standard_normal((d, 1)).astype(np.float32)
    y = x @ true_w + 0.1 * rng.standard_normal((n, 1)).astype(np.float32)

    best_w = np.linalg.lstsq(x.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    best_loss = float(np.mean((x @ best_w - y) ** 2))

    w = np.zeros((d, 1), dtype=np.float32)
    b = np.zeros(1, dtype=np.float32)
    steps = 400
    opt = ra.AdamW(lr=0.05, weight_decay=0.0)
    sched = ra.LearningRateScheduler(0.05, warmup_steps=20, decay_steps=steps - 20, min_lr=1e-4)
    print(
        f"ruvector_attention {ra.__version__}: kernels on {ra.get_num_threads()} threads, "
        f"SIMD path {ra.simd_path()}"
    )
    print(f"least squares, {n} samples x {d} features; best possible MSE {best_loss:.5f}\n")
    print(f"{'step':>5} {'lr':>9} {'grad norm':>10} {'mse':>10}")
    start = time.perf_counter()
    for step in range(steps):
        batch = rng.integers(0, n, 512)
        xb, yb = x[batch], y[batch]
        residual = xb @ w + b - yb
        grad_w = (2.0 / len(batch)) * (xb.T @ residual)
        grad_b = (2.0 / len(batch)) * residual.sum(axis=0)
        norm = ra.clip_grad_norm([grad_w, grad_b], max_norm=5.0)
        opt.lr = sched.step()
        opt.step([w, b], [grad_w, grad_b])
        if step % 50 == 0 or step == steps - 1:
            mse = float(np.mean((x @ w + b - y) ** 2))
            print(f"{step:>5} {opt.lr:>9.5f} {norm:>10.3f} {mse:>10.5f}")
    elapsed = time.perf_counter() - start
    mse = float(np.mean((x @ w + b - y) ** 2))
    gap = np.linalg.norm(w - best_w) / np.linalg.norm(best_w)
    print(
        f"\nfinal MSE {mse:.5f} vs best {best_loss:.5f} (ratio {mse / best_loss:.3f}); "
        f"weights within {gap:.2%} of the exact solution; {steps} steps in {elapsed:.2f} s"
    )


if __name__ == "__main__":
    main()
