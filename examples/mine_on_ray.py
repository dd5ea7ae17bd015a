"""Hard negatives for 1,000 queries from a 100,000-row corpus held by Ray (a ray.data.Dataset of
eight blocks) on a local Ray cluster with two worker CPUs, checked against the same call in this
process.

    pip install "ruvector-attention[ray]"
    python examples/mine_on_ray.py

On a real cluster, ``ray.init(address="auto")`` (or the head's address) instead, and read the
corpus with ``ray.data.read_parquet`` / ``read_numpy``; name the embedding column with
``column=`` when the dataset has several. Each block is mined where Ray schedules it; only small
per-query lists come back.
"""

from __future__ import annotations

import numpy as np

import ruvector_attention as ra


def main() -> None:
    import ray

    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((100_000, 64)).astype(np.float32)
    queries = corpus[:1000] + 0.1 * rng.standard_normal((1000, 64)).astype(np.float32)
    positives = np.arange(1000)  # query i's positive is corpus row i
    options = {"positives": positives, "k": 10, "range_min": 5, "relative_margin": 0.05}

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        dataset = ray.data.from_numpy(corpus).repartition(8)
        mined = ra.mine_hard_negatives(queries, dataset, **options)
    finally:
        ray.shutdown()

    local = ra.mine_hard_negatives(queries, corpus, **options)
    assert np.array_equal(mined.indices, local.indices)
    assert mined.scores.tobytes() == local.scores.tobytes()
    print(f"mined {mined.indices.shape} negatives on Ray; identical to the in-process result")


if __name__ == "__main__":
    main()
