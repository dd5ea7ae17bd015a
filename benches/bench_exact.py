"""Exact corpus mining against the float32 floor and the peers, same run (issue 26).

Clustered unit rows (1000 centres plus noise, like real embeddings), k=10, threads equal:
- the floor: NumPy's SGEMMs alone for the same products (no normalisation, no selection);
- ``mine_hard_negatives`` (exact: ranked by the float64 score, certified), with its default chunk
  and two others, capped (``max_score`` + ``relative_margin``) and at ``k=100``;
- the HARDEST kernel alone (``mine_batch``: float32, no certification);
- faiss ``IndexFlatIP`` (exact in float32), faiss ``IndexScalarQuantizer`` (8 bit) refined by
  ``IndexRefineFlat`` (approximate: its recall is printed), usearch's exact search;
when installed. Each row: median seconds, and the ratio to the floor (> 1: slower than it).

Usage: python benches/bench_exact.py [--queries 1024] [--rows 100000] [--dim 768] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _common import cpu_name, interleaved, sgemm_only

import ruvector_attention as ra


def clustered(rng, n, d, centres=1000, noise=0.5):
    c = rng.standard_normal((centres, d)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def faiss_contenders(queries, corpus, k, threads):
    try:
        import faiss
    except ImportError:
        return {}, None
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(corpus.shape[1])
    flat.add(corpus)
    sq = faiss.IndexScalarQuantizer(
        corpus.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sq.train(corpus)
    refined = faiss.IndexRefineFlat(sq)  # adds to both the 8-bit and the flat index
    refined.add(corpus)
    refined.k_factor = 4
    fns = {
        "faiss IndexFlatIP": lambda: flat.search(queries, k + 1),
        "faiss SQ8 + RefineFlat (approximate)": lambda: refined.search(queries, k + 1),
    }
    return fns, refined


def usearch_contender(queries, corpus, k, threads):
    try:
        from usearch.index import search
    except ImportError:
        return {}
    return {
        "usearch exact": lambda: search(
            corpus, queries, k + 1, metric="ip", exact=True, threads=threads
        )
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    ra.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    corpus = clustered(rng, args.rows, args.dim)
    # Each query a paraphrase of its positive (cosine about 0.96 to it).
    noise = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries = corpus[: args.queries] + (0.3 / np.sqrt(args.dim)) * noise
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    positives = np.arange(args.queries)
    k = 10
    miner = ra.HardNegativeMiner.hardest(seed=0)

    def ours(**kw):
        return lambda: ra.mine_hard_negatives(queries, corpus, positives=positives, k=k, **kw)

    fns = {
        "NumPy SGEMMs alone (the floor)": lambda: sgemm_only(queries, corpus),
        "mine_hard_negatives (exact)": ours(),
        "  chunk_rows=16384": ours(chunk_rows=16384),
        "  chunk_rows=100000": ours(chunk_rows=100_000),
        "  capped (max_score=0.8, relative_margin)": ours(max_score=0.8, relative_margin=0.05),
        "  k=100": lambda: ra.mine_hard_negatives(queries, corpus, positives=positives, k=100),
        "HARDEST mine_batch (float32 only)": lambda: miner.mine_batch(queries, None, corpus, k + 1),
    }
    peers, refined = faiss_contenders(queries, corpus, k, args.threads)
    fns.update(peers)
    fns.update(usearch_contender(queries, corpus, k, args.threads))
    times = interleaved(fns, repeats=args.repeats)
    exact = ra.mine_hard_negatives(queries, corpus, positives=positives, k=k)
    shape = f"{args.queries} x {args.rows} x {args.dim}"
    print(f"CPU: {cpu_name()}; threads {args.threads}; {shape}, k={k}")
    print(
        f"exactly scored candidates per query: mean {exact.rescored.mean():.1f}, "
        f"max {exact.rescored.max()}"
    )
    floor = times["NumPy SGEMMs alone (the floor)"]
    faiss_time = times.get("faiss IndexFlatIP")
    for name, seconds in times.items():
        extra = f"   faiss/this {faiss_time / seconds:5.2f}x" if faiss_time else ""
        print(f"{name:40s} {seconds * 1000:9.1f} ms   this/floor {seconds / floor:5.2f}x{extra}")
    if refined is not None:
        _, got = refined.search(queries, k + 1)
        hits = [
            len(set(row[row != p][:k].tolist()) & set(want.tolist()))
            for row, p, want in zip(got, positives, exact.indices)
        ]
        print(
            f"faiss SQ8 + RefineFlat recall@{k} against the exact answer: {np.mean(hits) / k:.4f}"
        )


if __name__ == "__main__":
    main()
