"""The package's public surface: names, version, errors, threads, fork safety."""

from __future__ import annotations

import multiprocessing
import platform
import warnings

import numpy as np
import pytest

import ruvector_attention as ra
import ruvector_attention.training as training
from platforms import posix_only
from ruvector_attention import _native
from threads import assert_releases_the_gil

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
    "HardNegativeMiner",
    "InBatchMiner",
    "MiningStrategy",
    "CurriculumScheduler",
    "CurriculumStage",
    "DecayType",
    "TemperatureAnnealing",
]


def test_the_api_contract_and_the_training_namespace_hold_every_public_name():
    # The names docs/api.md fixes are public; every public name is importable and the crate's
    # `training` namespace offers each of them. (Checking `is` for the contract's names alone
    # proved nothing: `from .. import *` makes them the same objects, and missed 8 names.)
    public = set(ra.__all__) - {"__version__"}
    missing = sorted(set(API_NAMES) - public)
    assert not missing, missing
    for name in sorted(public):
        assert getattr(ra, name) is not None, name
        assert getattr(training, name) is getattr(ra, name), name
    assert sorted(training.__all__) == sorted(public)


def test_every_public_name_has_an_example_that_runs():
    # The examples are the package's doctests, which the test run executes.
    import inspect

    missing = [
        name
        for name in ra.__all__
        if name != "__version__" and ">>>" not in (inspect.getdoc(getattr(ra, name)) or "")
    ]
    assert not missing


def test_version_is_a_string():
    assert isinstance(ra.__version__, str) and ra.__version__.count(".") >= 2


def test_one_version_source():
    # Cargo workspace -> extension (CARGO_PKG_VERSION) and package metadata (maturin).
    assert ra.__version__ == _native.__version__


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
        ra._native._testing.force_simd_path("sse9")


def _child_step(queue):
    p = np.zeros(2_000_000, np.float32)
    ra.AdamW(lr=0.1).step(p, np.ones_like(p))
    queue.put(float(p[0]))


@posix_only
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


@pytest.mark.timing
def test_gil_is_released_during_one_long_step():
    p = np.zeros(40_000_000, np.float32)
    g = np.ones_like(p)
    opt = ra.AdamW(lr=0.1)
    assert_releases_the_gil(lambda: opt.step(p, g))


def _loss_results(rng):
    a = rng.standard_normal((40, 33)).astype(np.float32)
    p = rng.standard_normal((40, 33)).astype(np.float32)
    n = rng.standard_normal((40, 5, 33)).astype(np.float32)
    edges = rng.integers(0, 40, size=(100, 2))
    return {
        "infonce per-anchor": ra.InfoNCELoss(0.1).batch_with_gradients(a, p, n, reduction="none"),
        "local contrastive": ra.LocalContrastiveLoss().batch_with_gradients(a, p, n[:, 0]),
        "laplacian": ra.SpectralRegularization(0.5).laplacian_with_gradients(a, edges),
        "infonce shared": ra.InfoNCELoss(0.1).batch_with_gradients(a, p, n[0], reduction="none"),
        "infonce in-batch": ra.InfoNCELoss(0.1).batch_with_gradients(a, p, reduction="none"),
    }


def _flat(result):
    value, grads = result
    parts = [np.atleast_1d(np.asarray(value, np.float64))]
    grads = grads if isinstance(grads, tuple) else (grads,)
    parts += [np.asarray(g, np.float64).ravel() for g in grads if g is not None]
    return np.concatenate(parts)


def test_losses_on_every_simd_path(rng):
    # Row-wise kernels avoid fused multiply-add: identical bits on every path. The GEMM-based
    # forms use FMA where the CPU has it: equal to float32 round-off.
    best = _native._testing.best_simd_path()
    paths = [p for p in ["baseline", "avx2", "avx512"] if _supports(p)]
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert len(paths) >= 2, paths  # one path compared with itself would prove nothing
    results = {}
    try:
        for path in paths:
            _native._testing.force_simd_path(path)
            results[path] = _loss_results(np.random.default_rng(7))
    finally:
        _native._testing.force_simd_path(best.split("+")[0])
    first = results[paths[0]]
    for path in paths[1:]:
        for name, result in results[path].items():
            got, expected = _flat(result), _flat(first[name])
            if name.startswith("infonce shared") or name.startswith("infonce in-batch"):
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} on {path}")


def _supports(path):
    try:
        best = _native._testing.best_simd_path()
        _native._testing.force_simd_path(path)
        _native._testing.force_simd_path(best.split("+")[0])
        return True
    except ValueError:
        return False


def test_outputs_from_the_buffer_cache_never_alias(rng):
    a = rng.standard_normal((300, 256)).astype(np.float32)
    p = rng.standard_normal((300, 256)).astype(np.float32)
    n = rng.standard_normal((300, 8, 256)).astype(np.float32)  # 2.4 MB of negatives' gradient
    loss = ra.InfoNCELoss(0.1)
    _, first = loss.batch_with_gradients(a, p, n)
    kept = first.negatives.copy()
    _, second = loss.batch_with_gradients(a, p, n)
    assert not np.shares_memory(first.negatives, second.negatives)
    np.testing.assert_array_equal(first.negatives, second.negatives)
    second.negatives[:] = 0.0  # writing one result leaves the other alone
    np.testing.assert_array_equal(first.negatives, kept)
    assert first.negatives.flags.writeable and first.negatives.flags.c_contiguous
    del first, second
    assert ra.cached_memory() >= n.nbytes  # freed outputs went back to the cache
    _, third = loss.batch_with_gradients(a, p, n)  # reuses a cached buffer: same values
    np.testing.assert_array_equal(third.negatives, kept)
    released = ra.release_cached_memory()
    assert released >= 0 and ra.cached_memory() == 0
    np.testing.assert_array_equal(third.negatives, kept)  # live outputs are not cached memory
