"""mine_hard_negatives on a dask.array corpus: the threaded scheduler and a real
distributed.LocalCluster with worker processes give the in-memory result to the bit, also when a
worker process is killed while the graph runs."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import ruvector_attention as ra
from platforms import posix_only

if not os.environ.get("CI"):
    pytest.importorskip("dask.array", reason="the [dask] extra is not installed")
    pytest.importorskip("distributed", reason="the [dask] extra is not installed")
import dask
import dask.array as da

KWARGS = [
    {"k": 8},
    {"k": 6, "range_min": 3, "absolute_margin": 0.02, "sampling": "random", "seed": 5},
    {"k": 5, "max_score": 0.4, "relative_margin": 0.1},
]


def data(n=3000, d=24, q=40):
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((n, d)).astype(np.float32)
    queries = corpus[:q] + 0.2 * rng.standard_normal((q, d)).astype(np.float32)
    positives = [np.array([i, i + 7]) for i in range(q)]
    return queries, corpus, positives


def assert_identical(a, b):
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.scores.tobytes() == b.scores.tobytes()  # to the bit (NaN padding included)


@pytest.mark.parametrize("kwargs", KWARGS)
def test_threaded_scheduler_equals_in_memory(kwargs):
    queries, corpus, positives = data()
    expected = ra.mine_hard_negatives(queries, corpus, positives=positives, **kwargs)
    lazy = da.from_array(corpus, chunks=(317, -1))
    with dask.config.set(scheduler="threads"):
        got = ra.mine_hard_negatives(queries, lazy, positives=positives, **kwargs)
    assert_identical(got, expected)
    # Column chunks are joined into whole rows.
    split = da.from_array(corpus, chunks=(500, 10))
    with dask.config.set(scheduler="threads"):
        assert_identical(
            ra.mine_hard_negatives(queries, split, positives=positives, **kwargs), expected
        )


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield client


@pytest.mark.parametrize("kwargs", KWARGS)
def test_local_cluster_with_worker_processes_equals_in_memory(cluster, kwargs):
    queries, corpus, positives = data()
    expected = ra.mine_hard_negatives(queries, corpus, positives=positives, **kwargs)
    lazy = da.from_array(corpus, chunks=(250, -1))
    got = ra.mine_hard_negatives(queries, lazy, positives=positives, **kwargs)
    assert_identical(got, expected)


@posix_only
def test_a_worker_killed_while_the_graph_runs_changes_nothing(cluster):
    queries, corpus, positives = data(n=60_000, d=32, q=200)
    kwargs = {"k": 10, "absolute_margin": 0.01}
    expected = ra.mine_hard_negatives(queries, corpus, positives=positives, **kwargs)
    lazy = da.from_array(corpus, chunks=(1000, -1))
    victim = next(iter(cluster.run(os.getpid).values()))  # one worker process
    killer = threading.Timer(0.3, os.kill, args=(victim, signal.SIGKILL))
    killer.start()
    started = time.perf_counter()
    got = ra.mine_hard_negatives(queries, lazy, positives=positives, **kwargs)
    killer.join()
    assert time.perf_counter() - started > 0.3, "the graph finished before the worker was killed"
    assert_identical(got, expected)
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts it for the other tests


def test_the_mine_command_on_a_dask_scheduler(cluster, tmp_path):
    # --scheduler: the workers read their row blocks from the .npy file themselves.
    import subprocess
    import sys

    queries, corpus, _ = data(n=2000, d=16, q=10)
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "c.npy", corpus.astype(np.float16))
    out = tmp_path / "neg.npz"
    address = cluster.scheduler.address
    done = subprocess.run(
        [sys.executable, "-m", "ruvector_attention", "mine", "--no-progress", "--queries",
         str(tmp_path / "q.npy"), "--corpus", str(tmp_path / "c.npy"), "--k", "6",
         "--scheduler", address, "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = ra.mine_hard_negatives(queries, corpus.astype(np.float16), k=6)
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["indices"], expected.indices)
        assert saved["scores"].tobytes() == expected.scores.tobytes()
