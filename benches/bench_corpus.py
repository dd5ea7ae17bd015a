"""Corpus-scale mining (issue 9): ``mine_hard_negatives`` against the alternatives, same run.

- In RAM, ``"top"`` with k=10: ours vs a chunked NumPy loop (normalise, matmul, argpartition,
  positives removed: the usual hand-written version) and faiss ``IndexFlatIP`` (when installed,
  asked for k + positives neighbours, then positives dropped), threads equal.
- A float16 memmap: time and the growth of RssAnon (sampled while it runs).

Usage: python benches/bench_corpus.py [--queries 1024] [--rows 1000000] [--dim 256]
       [--memmap-rows 10000000] [--memmap-dim 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import numpy as np
from _common import cpu_name, interleaved, sgemm_only

import ruvector_attention as ra


def numpy_loop(queries, corpus, positives, k, chunk=65_536):
    """The hand-written baseline: top k + 1 per chunk by cosine, merged, the positive dropped."""
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(corpus), chunk):
        block = np.asarray(corpus[start : start + chunk], dtype=np.float32)
        block = block / np.linalg.norm(block, axis=1, keepdims=True)
        s = qn @ block.T
        take = min(k + 1, s.shape[1])
        idx = np.argpartition(-s, take - 1, axis=1)[:, :take]
        best_s = np.concatenate([best_s, np.take_along_axis(s, idx, axis=1)], axis=1)
        best_i = np.concatenate([best_i, idx + start], axis=1)
        order = np.argsort(-best_s, axis=1)[:, : k + 1]
        best_s = np.take_along_axis(best_s, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
    keep = best_i != positives[:, None]
    return np.stack([row[m][:k] for row, m in zip(best_i, keep)])


def faiss_search(queries, corpus, positives, k):
    import faiss

    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cn = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(cn)
    _, found = index.search(qn, k + 1)
    keep = found != positives[:, None]
    return np.stack([row[m][:k] for row, m in zip(found, keep)])


def dask_overhead(path, shape, queries, k, in_process_seconds):
    """The same memmap mined by a LocalCluster of 2 single-threaded worker processes, each
    reading its row blocks from the file (as `ruvector-attention mine --scheduler` does): with
    the kernels' pool at the worker's share (the default: 1 thread) and at the machine's core
    count in every worker (2 x 2 threads on 2 cores: oversubscribed)."""
    from distributed import Client, LocalCluster

    from ruvector_attention.cli.mine.command import _dask_corpus

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        lazy = _dask_corpus(path, shape, np.dtype(np.float16))
        for label, threads in (("worker share (default)", None), ("2 threads per worker", 2)):
            client.run(ra.set_num_threads, threads)
            ra.mine_hard_negatives(queries[:8], lazy, k=k)  # warm the workers
            started = time.perf_counter()
            ra.mine_hard_negatives(queries, lazy, k=k)
            seconds = time.perf_counter() - started
            print(
                f"\nDask LocalCluster, 2 workers x 1 thread, pool {label}: {seconds:.2f} s "
                f"against {in_process_seconds:.2f} s in process with 2 threads: "
                f"{seconds / in_process_seconds:.2f}x"
            )


def ray_overhead(path, shape, queries, k, in_process_seconds):
    """The same memmap mined on a local Ray cluster with 2 CPUs, each task reading its row block
    from the file (as `ruvector-attention mine --ray` does); the pool at the task's share (the
    default: 1 thread) and at 2 threads in every worker (oversubscribed)."""
    import ray

    from ruvector_attention.cli.mine.command import _ray_corpus

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        set_threads = ray.remote(ra.set_num_threads)
        for label, threads in (("task share (default)", None), ("2 threads per worker", 2)):
            ray.get([set_threads.remote(threads) for _ in range(8)])  # both worker processes
            refs = _ray_corpus(path, shape)
            ra.mine_hard_negatives(queries[:8], refs, k=k)  # warm the workers
            started = time.perf_counter()
            ra.mine_hard_negatives(queries, refs, k=k)
            seconds = time.perf_counter() - started
            print(
                f"\nRay, 2 CPUs, pool {label}: {seconds:.2f} s against {in_process_seconds:.2f} s "
                f"in process with 2 threads: {seconds / in_process_seconds:.2f}x"
            )
    finally:
        ray.shutdown()


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--memmap-rows", type=int, default=10_000_000)
    parser.add_argument("--memmap-dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dask", action="store_true", help="also: a LocalCluster of 2 single-threaded workers"
    )
    parser.add_argument("--ray", action="store_true", help="also: a local Ray cluster with 2 CPUs")
    parser.add_argument("--skip-ram", action="store_true", help="only the memmap part")
    args = parser.parse_args()
    threads = ra.get_num_threads()
    print(f"CPU: {cpu_name()}; {threads} threads for every contender")
    rng = np.random.default_rng(0)
    if not args.skip_ram:
        in_ram(args, rng, threads)
    memmapped(args, rng)


def in_ram(args: argparse.Namespace, rng: np.random.Generator, threads: int) -> None:
    corpus = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    positives = rng.integers(0, args.rows, args.queries)
    queries = corpus[positives] + 0.1 * rng.standard_normal(
        (args.queries, args.dim), dtype=np.float32
    )
    k = 10
    contenders = {
        "ruvector": lambda: ra.mine_hard_negatives(queries, corpus, positives=positives, k=k),
        "numpy chunked loop": lambda: numpy_loop(queries, corpus, positives, k),
        "SGEMM alone (floor)": lambda: sgemm_only(queries, corpus),
    }
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
        contenders["faiss IndexFlatIP"] = lambda: faiss_search(queries, corpus, positives, k)
    except ImportError:
        print("(faiss not installed: pip install faiss-cpu)")
    times = interleaved(contenders, repeats=args.repeats)
    print(f"\nin RAM: {args.queries} queries x {args.rows:,} x {args.dim} float32, k={k}, top")
    ours = times["ruvector"]
    for name, t in times.items():
        ratio = "" if name == "ruvector" else f"ruvector {t / ours:.2f}x faster"
        print(f"  {name:<22} {t:8.3f} s  {ratio}")


def memmapped(args: argparse.Namespace, rng: np.random.Generator) -> None:
    k = 10
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "corpus.npy")
        rows, dim = args.memmap_rows, args.memmap_dim
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, dim))
        for start in range(0, rows, 500_000):
            stop = min(start + 500_000, rows)
            out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        out.flush()
        del out
        mapped = np.load(path, mmap_mode="r")
        q = rng.standard_normal((args.queries, dim), dtype=np.float32)
        base, peak, done = rss_anon(), [0], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_anon())
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.perf_counter()
        ra.mine_hard_negatives(q, mapped, k=k)
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
        if args.dask:
            dask_overhead(path, (rows, dim), q, k, seconds)
        if args.ray:
            ray_overhead(path, (rows, dim), q, k, seconds)
        growth = (peak[0] - base) / 2**20
        print(
            f"\nfloat16 memmap: {args.queries} queries x {rows:,} x {dim}, k={k}: "
            f"{seconds:.2f} s, RssAnon growth {growth:.0f} MiB "
            f"(file {rows * dim * 2 / 2**30:.2f} GiB)"
        )


if __name__ == "__main__":
    main()
