"""The PyTorch front end against pure PyTorch, in one run.

1. One training step of an MLP 768 -> 512 -> 256 on a batch of 1024 (anchor, positive) pairs,
   in-batch InfoNCE + AdamW: ruvector's loss and optimizer vs PyTorch's best (cross-entropy on
   the normalised similarity matrix, ``torch.optim.AdamW(fused=True)``). Reported: the whole
   step, and the loss + optimizer share (loss forward + backward to the embeddings, and the
   optimizer step over the model's parameters) measured on its own.
2. The framework overhead of ``ruvector_attention.torch.InfoNCELoss`` over the NumPy call it
   wraps, at B=256 (forward + backward vs ``batch_with_gradients``).

Run: ``python benches/bench_torch.py`` (needs the [torch] extra). Threads are equal on both sides.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from _common import cpu_name, interleaved

import ruvector_attention as ra
import ruvector_attention.torch as rat

T = 0.05


def torch_in_batch_info_nce(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """PyTorch's fastest in-batch InfoNCE: one similarity GEMM and cross-entropy."""
    unit = torch.nn.functional.normalize
    logits = unit(a, dim=1) @ unit(p, dim=1).T / T
    return torch.nn.functional.cross_entropy(logits, torch.arange(a.shape[0]))


def mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(768, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 5 if args.quick else 15
    threads = ra.get_num_threads()
    torch.set_num_threads(threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, {threads} threads on both sides")
    print(f"torch {torch.__version__}, numpy {np.__version__}")

    batch = 1024
    gen = torch.Generator().manual_seed(0)
    x_a = torch.randn(batch, 768, generator=gen)
    x_p = x_a + 0.3 * torch.randn(batch, 768, generator=gen)

    models = {"ruvector": mlp(0), "torch": mlp(0)}
    opts = {
        "ruvector": rat.AdamW(models["ruvector"].parameters(), lr=1e-4),
        "torch": torch.optim.AdamW(models["torch"].parameters(), lr=1e-4, fused=True),
    }
    ours_loss = rat.InfoNCELoss(T)
    losses = {"ruvector": ours_loss, "torch": torch_in_batch_info_nce}

    def step(name: str):
        def run() -> None:
            model, opt = models[name], opts[name]
            loss = losses[name](model(x_a), model(x_p))
            opt.zero_grad()
            loss.backward()
            opt.step()

        return run

    whole = interleaved({n: step(n) for n in models}, repeats=repeats)

    # The loss + optimizer share: loss forward + backward to leaf embeddings, and one optimizer
    # step over the model's parameters (their grads left from the steps above).
    emb_a = torch.randn(batch, 256, generator=gen, requires_grad=True)
    emb_p = torch.randn(batch, 256, generator=gen, requires_grad=True)

    def loss_part(name: str):
        def run() -> None:
            emb_a.grad = emb_p.grad = None
            losses[name](emb_a, emb_p).backward()

        return run

    def opt_part(name: str):
        return lambda: opts[name].step()

    loss_t = interleaved({n: loss_part(n) for n in models}, repeats=repeats, min_round=0.05)
    opt_t = interleaved({n: opt_part(n) for n in models}, repeats=repeats, min_round=0.05)

    # The floor of any in-batch InfoNCE value + gradients: its three B x B x D GEMMs (S = A P^T,
    # then C P and C^T A), here by NumPy's BLAS.
    a32 = np.ascontiguousarray(emb_a.detach().numpy())
    p32 = np.ascontiguousarray(emb_p.detach().numpy())

    def three_sgemm() -> None:
        s = a32 @ p32.T
        s @ p32
        s.T @ a32

    gemm_t = interleaved({"numpy": three_sgemm}, repeats=repeats, min_round=0.05)["numpy"]

    print(f"\n== One training step: MLP 768-512-256, batch {batch}, in-batch InfoNCE + AdamW")
    print(f"{'':<28}{'ruvector':>12}{'torch':>12}{'ratio':>10}")
    rows = [
        ("whole step", whole),
        ("loss fwd+bwd (B=1024, 256)", loss_t),
        ("AdamW step (525k params)", opt_t),
        (
            "loss + optimizer",
            {n: loss_t[n] + opt_t[n] for n in models},
        ),
    ]
    for label, t in rows:
        print(
            f"{label:<28}{t['ruvector'] * 1e3:>10.2f}ms{t['torch'] * 1e3:>10.2f}ms"
            f"{t['torch'] / t['ruvector']:>9.2f}x"
        )

    needed = (loss_t["torch"] + opt_t["torch"]) / 2
    print(f"three {batch}x{batch}x256 SGEMMs by NumPy's BLAS (the floor): {gemm_t * 1e3:.2f} ms")
    print(f"2x torch's loss + optimizer would need {needed * 1e3:.2f} ms")

    # Framework overhead at B=256: the torch module vs the NumPy call it wraps.
    small = 256
    a_np = np.random.default_rng(1).normal(size=(small, 256)).astype(np.float32)
    p_np = np.random.default_rng(2).normal(size=(small, 256)).astype(np.float32)
    a_t = torch.from_numpy(a_np.copy()).requires_grad_()
    p_t = torch.from_numpy(p_np.copy()).requires_grad_()
    numpy_loss = ra.InfoNCELoss(T)

    def via_numpy() -> None:
        numpy_loss.batch_with_gradients(a_np, p_np)

    def via_torch() -> None:
        a_t.grad = p_t.grad = None
        ours_loss(a_t, p_t).backward()

    def autograd_floor() -> None:
        # What PyTorch's autograd costs any loss: a graph of one op, backward to both inputs.
        a_t.grad = p_t.grad = None
        (a_t * p_t).sum().backward()

    o = interleaved(
        {"numpy": via_numpy, "torch": via_torch, "floor": autograd_floor},
        repeats=41,
        min_round=0.1,
    )
    print(f"\n== Framework overhead, in-batch InfoNCE B={small}, D=256, value + both gradients")
    print(f"NumPy API {o['numpy'] * 1e6:.1f} us, torch module fwd+bwd {o['torch'] * 1e6:.1f} us")
    print(f"overhead {(o['torch'] - o['numpy']) * 1e6:.1f} us per call, of which PyTorch's own")
    print(f"autograd floor ((a * p).sum().backward(), same tensors) is {o['floor'] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
