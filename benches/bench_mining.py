"""Mining benchmarks: ruvector_attention against faiss, NumPy and pytorch-metric-learning.

Run: ``python benches/bench_mining.py`` (``--quick`` for a smoke run). faiss-cpu and
pytorch-metric-learning are compared when installed (``pip install ruvector-attention[bench]``).
Contenders are timed in alternating rounds of back-to-back calls (at least 0.25 s), median of the
rounds.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import cpu_name, interleaved, measure_in_fresh_process, sgemm_only

import ruvector_attention as ra

try:
    import faiss
except ImportError:  # optional
    faiss = None
try:
    import torch
    from pytorch_metric_learning.miners import DistanceWeightedMiner, TripletMarginMiner
except ImportError:  # optional
    torch = None


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def numpy_topk(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k inner products: matmul, argpartition, then sort the k (NumPy's best)."""
    scores = queries @ base.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


_MEMORY_SCRIPT = """
import json, sys, time
import numpy as np
import ruvector_attention as ra
b, n, d = (int(v) for v in sys.argv[1:4])
rng = np.random.default_rng(0)
anchors = rng.standard_normal((b, d), dtype=np.float32)
candidates = rng.standard_normal((n, d), dtype=np.float32)
miner = ra.HardNegativeMiner.hardest()
miner.mine_batch(anchors[:4], None, candidates[:4096], 10)
before = status("VmRSS:")
start = time.perf_counter()
picks = miner.mine_batch(anchors, None, candidates, 10)
seconds = time.perf_counter() - start
print(json.dumps({"before": before, "peak": status("VmHWM:"), "seconds": seconds}))
"""


def peak_memory(b: int, n: int, d: int) -> dict[str, float]:
    return measure_in_fresh_process(_MEMORY_SCRIPT, b, n, d)


def labelled_batch(rng: np.random.Generator, size: int, classes: int, d: int):
    """Unit embeddings in `classes` clusters, labels, and for each anchor a same-class positive."""
    labels = np.repeat(np.arange(classes), size // classes)
    centers = rng.standard_normal((classes, d))
    emb = unit(centers[labels] + 0.8 * rng.standard_normal((size, d)))
    partner = np.array([np.flatnonzero(labels == lab)[(i + 1) % (size // classes)]
                        for i, lab in enumerate(labels)])  # fmt: skip
    return emb, labels, emb[partner]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, few repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    threads = ra.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, kernels on {threads} threads")
    print(f"simd path: {ra.simd_path()}")
    print(
        f"numpy {np.__version__}, faiss: {faiss.__version__ if faiss else 'not installed'}, "
        f"pytorch-metric-learning: {'installed' if torch is not None else 'not installed'}"
    )
    rng = np.random.default_rng(0)

    def row(case: str, impl: str, seconds: float, note: str = "") -> None:
        print(f"  {case:<40} {impl:<34} {seconds * 1e3:9.2f} ms  {note}")

    def report(case: str, times: dict[str, float]) -> None:
        row(case, "ruvector", times["ruvector"])
        for name, seconds in times.items():
            if name != "ruvector":
                row(case, name, seconds, f"ruvector {seconds / times['ruvector']:.1f}x faster")

    # -- hardest top-10 against a large pool ------------------------------------------------------
    b, n, k = (256, 20_000, 10) if args.quick else (1024, 100_000, 10)
    hardest_miner = ra.HardNegativeMiner.hardest()
    for d in (256,) if args.quick else (256, 768):
        queries = unit(rng.standard_normal((b, d)))
        base = unit(rng.standard_normal((n, d)))
        ours = hardest_miner.mine_batch(queries, None, base, k)
        np.testing.assert_array_equal(ours, numpy_topk(queries, base, k))
        fns: dict[str, Callable[[], Any]] = {
            "ruvector": lambda q=queries, x=base: hardest_miner.mine_batch(q, None, x, k),
            "NumPy matmul + argpartition": lambda q=queries, x=base: numpy_topk(q, x, k),
            # Every dot product by BLAS and nothing else: no exact search can beat it by much.
            "NumPy SGEMM alone (floor)": lambda q=queries, x=base: sgemm_only(q, x),
        }
        if faiss is not None:
            index = faiss.IndexFlatIP(d)
            index.add(base)
            _, found = index.search(queries, k)
            agree = np.mean(found == ours)
            print(f"faiss agrees with ruvector on {agree:.4%} of the picks")
            fns["faiss IndexFlatIP.search"] = lambda index=index, q=queries: index.search(q, k)
        print(f"\nHARDEST top-{k}, {b} anchors x {n:,} candidates, D={d} (unit vectors for all)")
        report(f"hardest top-{k} {b}x{n} D={d}", interleaved(fns, repeats=repeats, min_round=0.25))
        print(f"  ({b}x{n}x{d} products = {2 * b * n * d / 1e9:.0f} GFLOP)")

    # -- in-batch semi-hard and distance-weighted ----------------------------------------------
    size, classes = 1024, 64
    emb, labels, positives = labelled_batch(rng, size, classes, 256)
    semi = ra.HardNegativeMiner.semi_hard(0.2, seed=0)
    wu = ra.HardNegativeMiner.distance_weighted(weighting="wu", seed=0)

    def ours_semi() -> Any:
        return semi.mine_batch(
            emb, positives, emb, 16, anchor_labels=labels, candidate_labels=labels
        )

    def ours_wu() -> Any:
        return wu.mine_batch(emb, None, emb, 16, anchor_labels=labels, candidate_labels=labels)

    semi_fns: dict[str, Callable[[], Any]] = {"ruvector": ours_semi}
    wu_fns: dict[str, Callable[[], Any]] = {"ruvector": ours_wu}
    if torch is not None:
        t_emb, t_labels = torch.from_numpy(emb), torch.from_numpy(labels)
        pml_semi = TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
        pml_wu = DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)
        semi_fns["pml TripletMarginMiner(semihard)"] = lambda: pml_semi(t_emb, t_labels)
        wu_fns["pml DistanceWeightedMiner"] = lambda: pml_wu(t_emb, t_labels)
    print(f"\nIn-batch mining, {size} embeddings in {classes} classes, D=256, 16 per anchor")
    report(f"semi-hard in-batch {size}", interleaved(semi_fns, repeats=repeats, min_round=0.25))
    report(
        f"distance-weighted (Wu) in-batch {size}",
        interleaved(wu_fns, repeats=repeats, min_round=0.25),
    )

    # -- a pool of a million -------------------------------------------------------------------
    big_b, big_n, big_d = (256, 200_000, 128) if args.quick else (1024, 1_000_000, 128)
    mem = peak_memory(big_b, big_n, big_d)
    extra = (mem["peak"] - mem["before"]) / 2**20
    print(
        f"\nHARDEST top-10, {big_b} anchors x {big_n:,} candidates, D={big_d}: "
        f"{mem['seconds']:.2f} s, extra peak memory {extra:.0f} MiB (target < 1024 MiB; "
        f"the score matrix alone would be {big_b * big_n * 4 / 2**30:.1f} GiB)"
    )


if __name__ == "__main__":
    main()
