"""The candidate store's costs, in one run.

1. What the store adds to a mining run: ``mine_candidates`` (K candidates per query, rescored in
   float64, written as Parquet blocks with digests) against ``mine_hard_negatives(k=K)`` (the
   same search, an in-memory answer), and against a plain ``k=10`` run.
2. ``select_negatives`` on a store of 1M queries x 100 candidates (target: under 30 s on two
   cores), with margins, a rank window and the near-duplicate filter, top and random sampling.
   The store is written directly in the store's format (mining 1M queries would take hours here),
   with random scores sorted best first.

Run: ``python benches/bench_store.py`` (``--quick``: 100k queries and a smaller corpus).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import cpu_name

import ruvector_attention as ra
from ruvector_attention import candidate_store as cs


def store_overhead(queries: int, corpus_rows: int, dim: int, candidates: int, root: str) -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((corpus_rows, dim)).astype(np.float32)
    q = corpus[:queries] + 0.1 * rng.standard_normal((queries, dim)).astype(np.float32)
    positives = np.arange(queries)
    times: dict[str, list[float]] = {"store": [], "mine k=K": [], "mine k=10": []}
    for _ in range(3):
        start = time.perf_counter()
        ra.mine_candidates(q, corpus, os.path.join(root, "run"), positives=positives,
                           candidates=candidates, overwrite=True)  # fmt: skip
        times["store"].append(time.perf_counter() - start)
        for label, k in (("mine k=K", candidates), ("mine k=10", 10)):
            start = time.perf_counter()
            ra.mine_hard_negatives(q, corpus, positives=positives, k=k)
            times[label].append(time.perf_counter() - start)
    med = {key: float(np.median(v)) for key, v in times.items()}
    print(
        f"\n== Store overhead: {queries:,} queries x {corpus_rows:,} rows x {dim}, K={candidates}"
    )
    for key, value in med.items():
        print(f"  {key:<12} {value:8.2f} s")
    print(f"  store / mine k=K: {med['store'] / med['mine k=K']:.3f}x (target <= 1.10x)")


def synthetic_store(path: str, queries: int, width: int, block: int) -> ra.CandidateStore:
    """A finished store in the store's format, with random rows and sorted random scores."""
    rng = np.random.default_rng(1)
    os.makedirs(path)
    manifest = {
        "format": cs.FORMAT,
        "version": cs.FORMAT_VERSION,
        "package_version": ra.__version__,
        "parameters": {"candidates": width, "exclude_self": False, "query_block": block},
        "inputs": {"queries": {"shape": [queries, 0]}, "corpus": {}, "positives": {}},
        "blocks": {"total": -(-queries // block), "done": [], "digests": {}},
    }
    store = ra.CandidateStore(path, manifest)
    for b in range(manifest["blocks"]["total"]):
        start, stop = b * block, min((b + 1) * block, queries)
        n = stop - start
        scores = -np.sort(-rng.uniform(-0.2, 0.9, (n, width)), axis=1)
        cand = rng.integers(0, 10_000_000, (n, width))
        possim = rng.uniform(-0.2, 0.9, (n, width))
        offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))

        def lists(values: np.ndarray, offsets: pa.Array = offsets) -> pa.Array:
            return pa.ListArray.from_arrays(offsets, pa.array(values.ravel()))

        table = pa.table({
            "query": pa.array(np.arange(start, stop, dtype=np.int64)),
            "candidates": lists(cand),
            "scores": lists(scores),
            "positive_similarity": lists(possim),
            "positives": lists(
                rng.integers(0, 10_000_000, n), pa.array(np.arange(n + 1, dtype=np.int32))
            ),
            "positive_score": pa.array(rng.uniform(0.5, 1.0, n)),
            "complete": pa.array(np.zeros(n, bool)),
        })  # fmt: skip
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        with open(store.block_path(b), "wb") as f:
            f.write(buffer.getvalue())
        manifest["blocks"]["done"].append(b)
        manifest["blocks"]["digests"][str(b)] = hashlib.sha256(buffer.getvalue()).hexdigest()
    cs._write_manifest(path, manifest)
    return ra.open_store(path)


def select_speed(queries: int, root: str) -> None:
    path = os.path.join(root, "synthetic")
    start = time.perf_counter()
    store = synthetic_store(path, queries, 100, 4096)
    print(f"\n== select_negatives on {queries:,} queries x 100 candidates "
          f"(store written in {time.perf_counter() - start:.1f} s)")  # fmt: skip
    for label, settings in (
        ("top, k=10, relative_margin=0.05, range_min=5",
         dict(k=10, range_min=5, relative_margin=0.05)),
        ("top, + max_positive_similarity=0.8, max_score=0.85",
         dict(k=10, range_min=5, relative_margin=0.05, max_positive_similarity=0.8,
              max_score=0.85)),
        ("random, k=10, range 5..100, seed 0",
         dict(k=10, range_min=5, range_max=100, sampling="random", seed=0)),
    ):  # fmt: skip
        start = time.perf_counter()
        chosen = ra.select_negatives(store, **settings)
        seconds = time.perf_counter() - start
        print(f"  {label:<52} {seconds:6.1f} s  ({chosen.audit['selected']:,} picks; "
              f"target < 30 s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, kernels on {ra.get_num_threads()}")
    root = tempfile.mkdtemp(prefix="bench_store.")
    try:
        if args.quick:
            store_overhead(2048, 50_000, 64, 100, root)
            select_speed(100_000, root)
        else:
            store_overhead(8192, 200_000, 128, 100, root)
            select_speed(1_000_000, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
