"""The package's public surface: names, version, errors, threads, fork safety."""

from __future__ import annotations

import multiprocessing
import warnings

import numpy as np
import pytest

import ruvector_attention as ra
import ruvector_attention.training as training

API_NAMES = [
    "SGD",
    "Adam",
    "AdamW",
    "LearningRateScheduler",
    "clip_grad_norm",
    "RuvectorError",
    "ShapeError",
    "set_num_threads",
    "get_num_threads",
    "InfoNCELoss",
    "LocalContrastiveLoss",
    "SpectralRegularization",
    "Reduction",
    "Gradients",
    "Graph",
]


@pytest.mark.parametrize("name", API_NAMES)
def test_names_importable_from_package_and_training(name):
    assert getattr(ra, name) is getattr(training, name)


def test_version_is_a_string():
    assert isinstance(ra.__version__, str) and ra.__version__.count(".") >= 2


def test_exception_hierarchy():
    assert issubclass(ra.RuvectorError, Exception)
    assert issubclass(ra.ShapeError, ra.RuvectorError)
    assert issubclass(ra.ShapeError, ValueError)


def test_thread_count_round_trips():
    before = ra.get_num_threads()
    assert before >= 1
    try:
        ra.set_num_threads(3)
        assert ra.get_num_threads() == 3
    finally:
        ra.set_num_threads(before)


def test_simd_path_names_a_real_path():
    assert ra.simd_path() in {"avx512", "avx2+fma", "baseline"}
    with pytest.raises(ValueError, match="unknown SIMD path"):
        ra._native.force_simd_path("sse9")


def _child_step(queue):
    p = np.zeros(2_000_000, np.float32)
    ra.AdamW(lr=0.1).step(p, np.ones_like(p))
    queue.put(float(p[0]))


def test_safe_after_fork():
    # Warm the parent's pool so the child inherits one whose threads do not exist there.
    ra.set_num_threads(2)
    p = np.zeros(2_000_000, np.float32)
    ra.SGD(lr=1.0).step(p, np.ones_like(p))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
        child = ctx.Process(target=_child_step, args=(queue,))
        child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the kernel deadlocked in a forked child")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(-0.1, rel=1e-6)


def test_gil_is_released_during_long_steps():
    import threading
    import time

    p = np.zeros(20_000_000, np.float32)
    g = np.ones_like(p)
    opt = ra.AdamW(lr=0.1)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        start = time.perf_counter()
        for _ in range(5):
            opt.step(p, g)
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if start < x < end]
    # With the GIL held for the whole call, the ticker could not run between calls' start and end.
    assert len(during) >= 5
