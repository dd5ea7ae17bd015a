"""mine_hard_negatives on a corpus held by Ray (a ray.data.Dataset, or ObjectRefs of row blocks),
on a local Ray cluster of worker processes: the in-memory result to the bit, also when a worker
is killed while it mines a block; the mine command with --ray; each task's share of the pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import ruvector_attention as ra
from frameworks import require
from platforms import linux_only

pytestmark = pytest.mark.ray
ray = require("ray", "ray")

KWARGS = [
    {"k": 8},
    {"k": 6, "range_min": 3, "absolute_margin": 0.02, "sampling": "random", "seed": 5},
    {"k": 5, "max_score": 0.4, "relative_margin": 0.1},
]


def data(n=3000, d=24, q=40, dtype=np.float32):
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((n, d)).astype(dtype)
    queries = corpus[:q].astype(np.float32) + 0.2 * rng.standard_normal((q, d)).astype(np.float32)
    positives = [np.array([i, i + 7]) for i in range(q)]
    return queries, corpus, positives


def assert_identical(a, b):
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.scores.tobytes() == b.scores.tobytes()  # to the bit (NaN padding included)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with two worker CPUs; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with warnings.catch_warnings():  # Ray's own context warns about its deprecated settings
        warnings.simplefilter("ignore", DeprecationWarning)
        ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("kwargs", KWARGS)
def test_a_dataset_and_object_refs_give_the_in_memory_result(cluster, kwargs, dtype):
    queries, corpus, positives = data(dtype=dtype)
    expected = ra.mine_hard_negatives(queries, corpus, positives=positives, **kwargs)
    dataset = ray.data.from_numpy(corpus).repartition(7)  # regular blocks
    assert_identical(
        ra.mine_hard_negatives(queries, dataset, positives=positives, **kwargs), expected
    )
    # Uneven blocks the caller put in the object store (read-only zero-copy arrays in the tasks).
    bounds = [0, 1, 400, 1313, 1314, 2999, 3000]
    refs = [ray.put(corpus[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert_identical(ra.mine_hard_negatives(queries, refs, positives=positives, **kwargs), expected)


def test_the_embedding_column_is_named_or_found(cluster):
    queries, corpus, _ = data(n=400)
    expected = ra.mine_hard_negatives(queries, corpus, k=4)
    rows = [{"id": i, "emb": corpus[i]} for i in range(len(corpus))]
    dataset = ray.data.from_items(rows)
    assert_identical(ra.mine_hard_negatives(queries, dataset, k=4), expected)  # the one tensor
    assert_identical(ra.mine_hard_negatives(queries, dataset, k=4, column="emb"), expected)
    with pytest.raises(ra.ArgumentError, match=r"column 'vec' is not in the dataset"):
        ra.mine_hard_negatives(queries, dataset, k=4, column="vec")
    two = ray.data.from_items([{"a": corpus[i], "b": corpus[i]} for i in range(10)])
    with pytest.raises(ra.ArgumentError, match=r"pass column= to name the embeddings"):
        ra.mine_hard_negatives(queries, two, k=4)
    with pytest.raises(ra.ArgumentError, match=r"column= is for a ray.data.Dataset"):
        ra.mine_hard_negatives(queries, corpus, k=4, column="emb")
    with pytest.raises(ra.ShapeError, match="one width"):
        ra.mine_hard_negatives(queries, [ray.put(corpus[:5]), ray.put(corpus[:5, :3])], k=4)


def test_each_task_sizes_the_pool_to_its_cpus(cluster):
    # An actor is one worker process: a block mined in it leaves the pool at the task's share
    # (one CPU), not the machine's cores; a count set in the worker is kept.
    from ruvector_attention._corpus_state import Plan
    from ruvector_attention._ray import absorb_block

    @ray.remote(num_cpus=1)
    class Worker:
        def mine_and_count(self, preset):
            if preset is not None:
                ra.set_num_threads(preset)
            unit = np.eye(4, dtype=np.float32)
            plan = Plan(
                queries=unit,
                unit_q=unit,
                query_ids=np.arange(4),
                cap=np.full(4, np.inf),
                floor=-np.inf,
                ex_rows=np.zeros(0, np.int64),
                ex_cols=np.zeros(0, np.int64),
                list_size=2,
                key_size=0,
                seed_key=0,
                errors=np.full(4, 1e-6),
            )
            absorb_block(plan, unit, 0)
            return ra.get_num_threads()

    assert ray.get(Worker.remote().mine_and_count.remote(None)) == 1
    assert ray.get(Worker.remote().mine_and_count.remote(2)) == 2


def _absorbing_worker() -> int | None:
    """The PID of a Ray worker process running a block task (Ray titles it 'ray::absorb_block')."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ray::absorb_block" in f.read():
                    return int(pid)
        except OSError:
            continue
    return None


@pytest.mark.timing
@linux_only
def test_a_worker_killed_while_it_mines_a_block_changes_nothing(cluster):
    queries, corpus, positives = data(n=60_000, d=32, q=200)
    kwargs = {"k": 10, "absolute_margin": 0.01}
    expected = ra.mine_hard_negatives(queries, corpus, positives=positives, **kwargs)
    refs = [ray.put(corpus[i : i + 1000]) for i in range(0, len(corpus), 1000)]
    result = {}
    miner = threading.Thread(
        target=lambda: result.setdefault(
            "got", ra.mine_hard_negatives(queries, refs, positives=positives, **kwargs)
        )
    )
    miner.start()
    deadline = time.monotonic() + 120  # a bound for a broken run, not a timing
    while (victim := _absorbing_worker()) is None:
        assert miner.is_alive() and time.monotonic() < deadline, "no block task was seen"
        time.sleep(0.001)
    os.kill(victim, signal.SIGKILL)
    miner.join(timeout=300)
    assert not miner.is_alive(), "the run hung after the kill"
    assert_identical(result["got"], expected)  # the lost task was run again
    assert not Path(f"/proc/{victim}").exists()


def test_the_mine_command_on_a_ray_cluster(cluster, tmp_path):
    queries, corpus, _ = data(n=2000)
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "c.npy", corpus)
    expected = ra.mine_hard_negatives(queries, corpus, k=5)
    done = subprocess.run(
        [sys.executable, "-m", "ruvector_attention", "mine", "--queries", "q.npy",
         "--corpus", "c.npy", "--k", "5", "--ray", cluster, "--out", "neg.npz", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "on the Ray cluster" in done.stderr
    with np.load(tmp_path / "neg.npz") as saved:
        np.testing.assert_array_equal(saved["indices"], expected.indices)
        assert saved["scores"].tobytes() == expected.scores.tobytes()
    both = subprocess.run(
        [sys.executable, "-m", "ruvector_attention", "mine", "--queries", "q.npy",
         "--corpus", "c.npy", "--ray", cluster, "--scheduler", "x", "--out", "o.npz"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_the_ray_example_runs():
    # examples/mine_on_ray.py starts (and stops) its own local Ray cluster and checks its result
    # against the in-process call itself.
    example = Path(__file__).parent.parent / "examples" / "mine_on_ray.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "identical to the in-process result" in done.stdout
