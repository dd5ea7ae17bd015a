"""Loss benchmarks: ruvector_attention against NumPy, PyTorch autograd, pytorch-metric-learning
and scipy.sparse, value and every gradient, in one run.

Run: ``python benches/bench_losses.py`` (``--quick`` for a smoke run). The optional contenders
are compared when installed (``pip install ruvector-attention[bench]``). Each figure is the median
of at least 5 timed repeats after a warm-up, contenders timed in alternating rounds.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import cpu_name, interleaved, measure_in_fresh_process

import ruvector_attention as ra

try:
    import torch
except ImportError:  # optional
    torch = None
try:
    import scipy.sparse as sp
except ImportError:  # optional
    sp = None
try:
    from pytorch_metric_learning.losses import NTXentLoss
except ImportError:  # optional
    NTXentLoss = None


# -- NumPy: the same computations, vectorised (float32, as a NumPy user would write them) --------


def numpy_info_nce_per_anchor(a, p, n, t):
    """Mean InfoNCE with per-anchor negatives (B, N, D) and the gradients of all three inputs."""
    b = a.shape[0]
    na = np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)
    np_ = np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-8)
    nn = np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-8)
    ah, ph, nh = a / na, p / np_, n / nn
    logits = np.concatenate(
        [np.sum(ah * ph, axis=1, keepdims=True), np.einsum("bd,bnd->bn", ah, nh)], axis=1
    ) / np.float32(t)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - logits[:, 0]))
    c = e / s
    c[:, 0] -= 1.0
    c /= np.float32(t * b)
    g_ah = c[:, :1] * ph + np.einsum("bn,bnd->bd", c[:, 1:], nh)
    g_ph = c[:, :1] * ah
    g_nh = c[:, 1:, None] * ah[:, None, :]

    def back(g, xh, nx):
        return (g - np.sum(g * xh, axis=-1, keepdims=True) * xh) / nx

    return loss, back(g_ah, ah, na), back(g_ph, ph, np_), back(g_nh, nh, nn)


def numpy_info_nce_in_batch(a, p, t):
    b = a.shape[0]
    na = np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)
    np_ = np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-8)
    ah, ph = a / na, p / np_
    logits = (ah @ ph.T) / np.float32(t)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    idx = np.arange(b)
    loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - logits[idx, idx]))
    c = e / s
    c[idx, idx] -= 1.0
    c /= np.float32(t * b)
    g_ah, g_ph = c @ ph, c.T @ ah

    def back(g, xh, nx):
        return (g - np.sum(g * xh, axis=-1, keepdims=True) * xh) / nx

    return loss, back(g_ah, ah, na), back(g_ph, ph, np_)


# -- PyTorch autograd ----------------------------------------------------------------------------


def torch_per_anchor(a, p, n, t):
    ta, tp, tn = (torch.from_numpy(x).requires_grad_() for x in (a, p, n))

    def run():
        for x in (ta, tp, tn):
            x.grad = None
        ah, ph, nh = (torch.nn.functional.normalize(x, dim=-1, eps=1e-8) for x in (ta, tp, tn))
        logits = torch.cat(
            [(ah * ph).sum(-1, keepdim=True), torch.einsum("bd,bnd->bn", ah, nh)], dim=1
        )
        labels = torch.zeros(a.shape[0], dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(logits / t, labels)
        loss.backward()
        return loss.item()

    return run


def torch_in_batch(a, p, t):
    ta, tp = (torch.from_numpy(x).requires_grad_() for x in (a, p))

    def run():
        ta.grad = tp.grad = None
        ah, ph = (torch.nn.functional.normalize(x, dim=-1, eps=1e-8) for x in (ta, tp))
        logits = ah @ ph.T / t
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(a.shape[0]))
        loss.backward()
        return loss.item()

    return run


# -- peak memory of one in-batch call, in a fresh process ----------------------------------------

_PEAK_SCRIPT = """
import json, sys
import numpy as np
import ruvector_attention as ra
b, d = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((b, d), dtype=np.float32)
p = rng.standard_normal((b, d), dtype=np.float32)
loss = ra.InfoNCELoss(0.05)
loss.batch_with_gradients(a[:8], p[:8])  # load everything once
before = status("VmRSS:")
value, grads = loss.batch_with_gradients(a, p)
peak = status("VmHWM:")
outputs = grads.anchors.nbytes + grads.positives.nbytes
print(json.dumps({"before": before, "peak": peak, "outputs": outputs}))
"""


def in_batch_peak_memory(b: int, d: int) -> dict[str, int]:
    return measure_in_fresh_process(_PEAK_SCRIPT, b, d)


# -- the report ----------------------------------------------------------------------------------


#: The in-batch rows' lower bound: the three products alone, by NumPy's BLAS.
FLOOR = "NumPy three SGEMMs (floor)"


def three_sgemm(a: np.ndarray, p: np.ndarray) -> None:
    """S = A P^T, then C P and C^T A (C shaped like S): the GEMMs of in-batch InfoNCE."""
    s = a @ p.T
    s @ p
    s.T @ a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, few repeats")
    parser.add_argument(
        "--pml-pairs", type=int, default=256, help="pairs for pytorch-metric-learning's NTXentLoss"
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    threads = ra.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, kernels on {threads} threads")
    print(f"simd path: {ra.simd_path()}")
    versions = [f"numpy {np.__version__}"]
    versions.append(f"torch {torch.__version__}" if torch else "torch: not installed")
    if sp is not None:
        import scipy

        versions.append(f"scipy {scipy.__version__}")
    versions.append("pytorch-metric-learning: " + ("installed" if NTXentLoss else "not installed"))
    print(", ".join(versions))
    rng = np.random.default_rng(0)

    def row(case: str, impl: str, seconds: float, note: str = "") -> None:
        unit = f"{seconds * 1e3:9.2f} ms" if seconds < 10 else f"{seconds:9.1f} s "
        print(f"  {case:<36} {impl:<30} {unit}  {note}")

    def report(case: str, times: dict[str, float], ours: str = "ruvector") -> None:
        row(case, ours, times[ours])
        for name, seconds in times.items():
            if name == FLOOR:
                # Not a rival but a bound: the target is a ratio to it.
                row(case, name, seconds, f"ruvector takes {times[ours] / seconds:.2f}x this")
            elif name != ours:
                row(case, name, seconds, f"ruvector {seconds / times[ours]:.1f}x faster")

    # -- per-anchor InfoNCE -----------------------------------------------------------------------
    b, n, d, t = (256, 64, 256, 0.07) if args.quick else (1024, 64, 256, 0.07)
    a = rng.standard_normal((b, d), dtype=np.float32)
    p = (a + 0.5 * rng.standard_normal((b, d), dtype=np.float32)).astype(np.float32)
    neg = rng.standard_normal((b, n, d), dtype=np.float32)
    loss = ra.InfoNCELoss(t)
    ours_value, _ = loss.batch_with_gradients(a, p, neg)
    np_value = numpy_info_nce_per_anchor(a, p, neg, t)[0]
    assert abs(ours_value - np_value) < 1e-4 * abs(np_value), (ours_value, np_value)
    fns: dict[str, Callable[[], Any]] = {
        "ruvector": lambda: loss.batch_with_gradients(a, p, neg),
        "NumPy (vectorised)": lambda: numpy_info_nce_per_anchor(a, p, neg, t),
    }
    if torch is not None:
        fns["PyTorch autograd"] = torch_per_anchor(a, p, neg, t)
    print(f"\nInfoNCE per-anchor negatives, B={b}, N={n}, D={d}: value + 3 gradients")
    report(f"per-anchor B={b} N={n} D={d}", interleaved(fns, repeats=repeats, min_round=0.25))

    # -- in-batch InfoNCE -------------------------------------------------------------------------
    sizes = [(1024, 256)] if args.quick else [(b, d) for b in (1024, 4096) for d in (256, 768)]
    for b, d in sizes:
        a = rng.standard_normal((b, d), dtype=np.float32)
        p = (a + 0.5 * rng.standard_normal((b, d), dtype=np.float32)).astype(np.float32)
        ours_value, _ = loss.batch_with_gradients(a, p)
        np_value = numpy_info_nce_in_batch(a, p, t)[0]
        assert abs(ours_value - np_value) < 1e-4 * abs(np_value), (ours_value, np_value)
        fns = {
            "ruvector": lambda a=a, p=p: loss.batch_with_gradients(a, p),
            "NumPy (vectorised)": lambda a=a, p=p: numpy_info_nce_in_batch(a, p, t),
        }
        if torch is not None:
            fns["PyTorch autograd"] = torch_in_batch(a, p, t)
        # The floor: the three B x B x D products the value and both gradients need, by BLAS.
        fns[FLOOR] = lambda a=a, p=p: three_sgemm(a, p)
        print(f"\nInfoNCE in-batch, B={b}, D={d}: value + 2 gradients")
        report(f"in-batch B={b} D={d}", interleaved(fns, repeats=repeats, min_round=0.25))
        flops = 3 * 2 * b * b * d
        print(f"  (three {b}x{b}x{d} GEMMs = {flops / 1e9:.1f} GFLOP)")

    if NTXentLoss is not None and not args.quick:
        # pml's NTXentLoss builds per-pair tensors: 256 pairs take ~3 GB, 512 pairs ~18 GB and
        # 1024 pairs would not fit in this machine's 24 GiB. The same size of work here: in-batch
        # InfoNCE over the 2N embeddings, each against its pair (not the identical formula: NT-Xent
        # also leaves the anchor itself out of its denominator).
        pairs = args.pml_pairs
        emb = torch.randn(2 * pairs, d, requires_grad=True)
        labels = torch.arange(pairs).repeat(2)
        ntx = NTXentLoss(temperature=t)

        def pml() -> None:
            emb.grad = None
            ntx(emb, labels).backward()

        e = rng.standard_normal((2 * pairs, d), dtype=np.float32)
        partner = np.concatenate([e[pairs:], e[:pairs]])
        times = interleaved(
            {"ruvector": lambda: loss.batch_with_gradients(e, partner), "pml": pml},
            repeats=3,
        )
        print(f"\nNT-Xent-sized work, {pairs} pairs ({2 * pairs} embeddings), D={d}")
        renamed = {"ruvector": times["ruvector"], "pml NTXentLoss": times["pml"]}
        report(f"NT-Xent {pairs} pairs", renamed)

    # The memory target was set at D=256 (the loop above leaves d at its last width).
    big, d = (4096 if args.quick else 16384), 256
    mem = in_batch_peak_memory(big, d)
    extra = mem["peak"] - mem["before"]
    print(
        f"\nin-batch B={big}, D={d}: extra peak memory {extra / 2**20:.0f} MiB "
        f"(of which {mem['outputs'] / 2**20:.0f} MiB are the returned gradients; target < 256 MiB)"
    )

    # -- Laplacian on a sparse graph --------------------------------------------------------------
    nodes, edges_count, dim = (10_000, 100_000, 64) if args.quick else (100_000, 1_000_000, 64)
    x = rng.standard_normal((nodes, dim), dtype=np.float32)
    edges = rng.integers(0, nodes, size=(edges_count, 2))
    weights = rng.uniform(0.1, 1.0, size=edges_count).astype(np.float32)
    reg = ra.SpectralRegularization(0.01)
    graph = ra.Graph(edges, nodes, weights=weights)
    fns = {
        "ruvector": lambda: reg.laplacian_with_gradients(x, graph),
        "ruvector, edge list per call": lambda: reg.laplacian_with_gradients(
            x, edges, weights=weights
        ),
    }
    if sp is not None:
        w = sp.coo_matrix((weights, (edges[:, 0], edges[:, 1])), shape=(nodes, nodes))
        w = (w + w.T).tocsr()
        lap = (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr().astype(np.float32)

        def scipy_laplacian() -> tuple[float, Any]:
            lx = lap @ x
            return 0.01 * float(np.sum(x * lx)), 0.02 * lx

        ours_value, _ = reg.laplacian_with_gradients(x, graph)
        sp_value = scipy_laplacian()[0]
        assert abs(ours_value - sp_value) < 1e-3 * abs(sp_value), (ours_value, sp_value)
        fns["scipy.sparse (L @ X, then trace)"] = scipy_laplacian
    print(f"\nLaplacian regulariser, N={nodes:,} nodes, {edges_count:,} edges, D={dim}")
    report(
        f"Laplacian N={nodes} E={edges_count}", interleaved(fns, repeats=repeats, min_round=0.25)
    )


if __name__ == "__main__":
    main()
