"""Hard negatives for 1,000 queries from a 100,000-row corpus on a local Dask cluster of two
single-threaded worker processes, checked against the same call in this process.

    pip install "ruvector-attention[dask]"
    python examples/mine_on_dask.py

On a real cluster, connect a ``distributed.Client`` to its scheduler instead of the
``LocalCluster``, and give the workers a corpus they can all read (a file on shared storage,
``da.from_zarr``, ...). Each worker mines its row blocks; only small per-query lists move.
"""

from __future__ import annotations

import numpy as np

import ruvector_attention as ra


def main() -> None:
    import dask.array as da
    from distributed import Client, LocalCluster

    # The corpus is made by the workers, block by block (a real one would be read by them).
    lazy = da.random.default_rng(0).standard_normal((100_000, 64), chunks=(12_500, -1))
    lazy = lazy.astype(np.float32)  # eight blocks
    corpus = lazy.compute()  # for the check below, in this process
    rng = np.random.default_rng(1)
    queries = corpus[:1000] + 0.1 * rng.standard_normal((1000, 64)).astype(np.float32)
    positives = np.arange(1000)  # query i's positive is corpus row i
    options = {"positives": positives, "k": 10, "range_min": 5, "relative_margin": 0.05}

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster),
    ):
        mined = ra.mine_hard_negatives(queries, lazy, **options)

    local = ra.mine_hard_negatives(queries, corpus, **options)
    assert np.array_equal(mined.indices, local.indices)
    assert mined.scores.tobytes() == local.scores.tobytes()
    print(f"mined {mined.indices.shape} negatives on Dask; identical to the in-process result")


if __name__ == "__main__":
    main()
