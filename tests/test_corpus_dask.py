"""mine_hard_negatives on a dask.array corpus: the threaded scheduler and a real
distributed.LocalCluster with worker processes give the in-memory result to the bit, also when a
worker process is killed while the graph runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import ruvector_attention as ra
from frameworks import require
from platforms import posix_only

pytestmark = pytest.mark.dask
dask = require("dask", "dask")
da = require("dask.array", "dask")
require("distributed", "dask")

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


def test_near_duplicates_on_any_dask_chunking_are_the_exact_answer():
    # The report: a 6-row corpus gave [2] in memory and [5] as a dask.array in chunks (3, -1);
    # near-duplicate rows ranked in float32 differently per chunking. Now every chunking gives
    # the exact float64 answer (reference.exact_cosine_matrix).
    import reference as ref

    rng = np.random.default_rng(4)
    centres = rng.standard_normal((60, 20))
    corpus = centres[rng.integers(0, 60, 900)] * (1 + 1e-6 * rng.standard_normal((900, 20)))
    corpus = corpus.astype(np.float32)
    queries = (corpus[:30] * (1 + 1e-6 * rng.standard_normal((30, 20)))).astype(np.float32)
    positives = [np.array([i]) for i in range(30)]
    sims = ref.exact_cosine_matrix(queries, corpus)
    expected = ref.corpus_negatives(queries, corpus, positives, sims=sims, k=6, range_min=1)
    with dask.config.set(scheduler="threads"):
        for chunks in ((3, -1), (7, -1), (317, -1), (450, 10)):
            lazy = da.from_array(corpus, chunks=chunks)
            got = ra.mine_hard_negatives(queries, lazy, positives=positives, k=6, range_min=1)
            np.testing.assert_array_equal(got.indices, expected, err_msg=str(chunks))


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

    # The scheduler's transition log (read by the worker-kill test) keeps 100,000 entries, not
    # the default 1,000 that one mining graph's transitions overrun.
    with (
        dask.config.set({"distributed.admin.low-level-log-length": 100_000}),
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


def test_each_worker_sizes_the_kernels_pool_to_its_own_threads(cluster):
    # Two single-threaded workers on this machine: left at the machine's core count, each would
    # start one kernel thread per core (4 on 2 cores). A worker's share is its thread count.
    queries, corpus, _ = data()
    ra.mine_hard_negatives(queries, da.from_array(corpus, chunks=(100, -1)), k=4)
    nthreads = cluster.nthreads()
    counts = cluster.run(ra.get_num_threads)
    assert counts == {address: nthreads[address] for address in counts}, (counts, nthreads)
    # A count set in the worker by the user is kept.
    cluster.run(ra.set_num_threads, 2)
    try:
        ra.mine_hard_negatives(queries, da.from_array(corpus, chunks=(100, -1)), k=4)
        assert set(cluster.run(ra.get_num_threads).values()) == {2}
    finally:
        cluster.run(ra.set_num_threads, None)


@pytest.mark.timing
@posix_only
def test_a_worker_killed_while_the_graph_runs_changes_nothing(cluster):
    # Proven to land mid-graph: the kill is sent while the victim processes one of the graph's
    # tasks, its PID changes (the nanny restarts it), and a task it held is processed again.
    queries, corpus, positives = data(n=60_000, d=32, q=200)
    kwargs = {"k": 10, "absolute_margin": 0.01}
    expected = ra.mine_hard_negatives(queries, corpus, positives=positives, **kwargs)
    lazy = da.from_array(corpus, chunks=(1000, -1))
    pids = cluster.run(os.getpid)
    victim, victim_pid = next(iter(pids.items()))
    result = {}
    miner = threading.Thread(
        target=lambda: result.setdefault(
            "got", ra.mine_hard_negatives(queries, lazy, positives=positives, **kwargs)
        )
    )
    miner.start()
    deadline = time.monotonic() + 120  # a bound for a broken run, not a timing
    # A task of the mining graph itself (a block's state), not the gather of positive rows
    # that precedes it.
    while not (held := [k for k in cluster.processing().get(victim, ()) if "_absorb" in str(k)]):
        assert miner.is_alive() and time.monotonic() < deadline, "the victim never got a task"
        time.sleep(0.002)
    os.kill(victim_pid, signal.SIGKILL)
    miner.join()
    assert_identical(result["got"], expected)
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts it for the other tests
    assert victim_pid not in cluster.run(os.getpid).values()

    def processing_counts(dask_scheduler, keys):
        # The scheduler's transition log: (key, from state, to state, ...) per transition.
        log = list(dask_scheduler.transition_log)
        names = {str(k) for k in keys}
        counts = dict.fromkeys(names, 0)
        for key, _, to, *_ in log:
            if str(key) in names and to == "processing":
                counts[str(key)] += 1
        return counts

    counts = cluster.run_on_scheduler(processing_counts, keys=held)
    assert max(counts.values()) >= 2, counts  # a task the victim held was processed again


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


def test_a_candidate_store_written_on_the_cluster_is_the_in_process_one(cluster, tmp_path):
    pytest.importorskip("pyarrow")
    queries, corpus, positives = data(n=2000, d=16, q=30)
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "c.npy", corpus.astype(np.float16))
    np.save(tmp_path / "p.npy", np.stack(positives))
    done = subprocess.run(
        [sys.executable, "-m", "ruvector_attention", "mine", "--no-progress", "--queries",
         str(tmp_path / "q.npy"), "--corpus", str(tmp_path / "c.npy"), "--positives",
         str(tmp_path / "p.npy"), "--candidates", "30", "--query-block", "8",
         "--scheduler", cluster.scheduler.address, "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    local = ra.mine_candidates(queries, corpus.astype(np.float16), str(tmp_path / "local"),
                               positives=positives, candidates=30, query_block=8)  # fmt: skip
    remote = ra.open_store(str(tmp_path / "run"))
    assert remote.manifest["inputs"] == local.manifest["inputs"]
    assert remote.manifest["blocks"]["digests"] == local.manifest["blocks"]["digests"]
    for block in range(4):
        with open(remote.block_path(block), "rb") as a, open(local.block_path(block), "rb") as b:
            assert a.read() == b.read()


def test_the_mine_command_resolves_a_relative_corpus_path_for_the_workers(cluster, tmp_path):
    # The report: --corpus rel/c.npy was opened by each worker from its own working directory.
    import subprocess
    import sys

    queries, corpus, _ = data(n=1500, d=8, q=6)
    (tmp_path / "rel").mkdir()
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "rel" / "c.npy", corpus)
    workers_cwd = set(cluster.run(os.getcwd).values())
    assert str(tmp_path) not in workers_cwd  # the relative path means nothing to them
    done = subprocess.run(
        [sys.executable, "-m", "ruvector_attention", "mine", "--no-progress", "--queries", "q.npy",
         "--corpus", "rel/c.npy", "--k", "4", "--scheduler", cluster.scheduler.address,
         "--out", "neg.npz"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "neg.npz") as saved:
        np.testing.assert_array_equal(
            saved["indices"], ra.mine_hard_negatives(queries, corpus, k=4).indices
        )


@posix_only
def test_ctrl_c_during_a_scheduler_run_is_one_line_and_exit_130(cluster, tmp_path):
    # The report: Ctrl-C during a --scheduler run printed a distributed traceback.
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    rows, dim = 3_000_000, 32
    corpus = np.lib.format.open_memmap(tmp_path / "c.npy", "w+", np.float16, (rows, dim))
    for start in range(0, rows, 500_000):
        corpus[start : start + 500_000] = rng.standard_normal((500_000, dim)).astype(np.float16)
    corpus.flush()
    del corpus
    np.save(tmp_path / "q.npy", rng.standard_normal((3000, dim)).astype(np.float32))
    child = subprocess.Popen(
        [sys.executable, "-m", "ruvector_attention", "mine", "--no-progress", "--queries", "q.npy",
         "--corpus", "c.npy", "--k", "10", "--max-score", "0.5", "--scheduler",
         cluster.scheduler.address, "--out", "neg.npz"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        first = child.stderr.readline()
        assert "on the Dask cluster" in first, first
        # Handshake: the signal goes only once the cluster is running the command's tasks.
        deadline = time.monotonic() + 120
        while not any(cluster.processing().values()):
            assert time.monotonic() < deadline and child.poll() is None, "no task started"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        rest = child.stderr.read()
        code = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    assert code == 130, rest
    assert "Traceback" not in rest and rest.strip().splitlines() == [
        "ruvector-attention mine: interrupted; nothing was written"
    ], rest
    assert not (tmp_path / "neg.npz").exists()
    # The command's tasks are released: the cluster goes idle by itself.
    deadline = time.monotonic() + 60
    while any(cluster.processing().values()):
        assert time.monotonic() < deadline, "the cluster kept running the interrupted tasks"
        time.sleep(0.1)


def test_unknown_chunk_sizes_are_refused_with_the_remedy():
    # The report: x[x[:, 0] > 0] failed with "cannot convert float NaN to integer".
    queries, corpus, _ = data(n=500, d=8, q=3)
    lazy = da.from_array(corpus, chunks=(100, -1))
    filtered = lazy[lazy[:, 0] > 0]
    with pytest.raises(ValueError, match=r"chunk sizes are unknown.*compute_chunk_sizes\(\)"):
        ra.mine_hard_negatives(queries, filtered, k=3)
    filtered.compute_chunk_sizes()
    with dask.config.set(scheduler="threads"):
        got = ra.mine_hard_negatives(queries, filtered, k=3)
    assert_identical(got, ra.mine_hard_negatives(queries, corpus[corpus[:, 0] > 0], k=3))


def test_the_dask_example_runs():
    # examples/mine_on_dask.py starts its own LocalCluster of worker processes and checks its
    # result against the in-process call itself; it must end cleanly, without warnings.
    example = Path(__file__).parent.parent / "examples" / "mine_on_dask.py"
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", str(example)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "identical to the in-process result" in done.stdout
