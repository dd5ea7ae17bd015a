"""The runtime: the kernels' threads (counts, GIL release, a fork beside a computing thread),
SIMD paths, memory (allocation failure, the buffer cache), the binding's rules for arrays (a call
reading what another writes, unaligned inputs), and Ctrl-C during a long kernel call."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import ruvector_attention as ra
from platforms import linux_only, posix_only, simd_paths, wait_until_busy
from ruvector_attention import _native
from threads import assert_releases_the_gil

SCRIPTS = Path(__file__).parent / "scripts"
#: The address-space limit of the allocation-failure tests (ulimit -v 4000000, as reported).
LIMIT = 4_000_000 * 1024


def test_thread_count_round_trips():
    before = ra.get_num_threads()
    assert before >= 1
    try:
        ra.set_num_threads(3)
        assert ra.get_num_threads() == 3
        # None (or 0) restores the default: every CPU this process may use. (Python could not
        # ask for it before: counts were 1..4096 here while the kernels took 0 for "auto".)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        for auto in (None, 0):
            ra.set_num_threads(1)
            ra.set_num_threads(auto)
            assert ra.get_num_threads() == (cpus or ra.get_num_threads()) >= 1
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
    paths = simd_paths()
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


def run_python(code: str, *, memory_limit: int | None = None, timeout: float = 120):
    """Runs ``code`` in a fresh interpreter (optionally under an address-space limit, as
    ``ulimit -v``); returns the CompletedProcess."""

    def limit() -> None:
        if memory_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_children_forked_beside_a_computing_thread_never_hang():
    # Before the fix 1-7 of 150-200 children hung on the pool's lock held by a parent thread.
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "fork_beside_kernel.py"), "200", "10"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 of 200 children hung" in done.stdout


@pytest.mark.parametrize(
    "call",
    [
        "ra.HardNegativeMiner.hardest().mine_batch(a, None, a, 10**9)",
        "ra.Graph(np.array([[0, 1]]), num_nodes=10**13)",
        "ra.InfoNCELoss(0.1).batch_with_gradients(a, a, neg)",
    ],
)
@linux_only
def test_allocation_failure_raises_memory_error_instead_of_aborting(call):
    code = f"""
        import numpy as np
        import ruvector_attention as ra
        a = np.ones((4, 8), np.float32)
        # 4 x 2e7 x 8 floats = 2.6 GB fits under the 4 GB limit; its gradient does not.
        neg = np.zeros((4, 2 * 10**7, 8), np.float32) if "neg" in {call!r} else None
        try:
            {call}
        except MemoryError as exc:
            print("MemoryError:", exc)
        """
    done = run_python(code, memory_limit=LIMIT)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "MemoryError" in done.stdout


@linux_only
def test_released_cache_memory_is_returned_to_the_os():
    code = """
        import numpy as np
        import ruvector_attention as ra

        def rss_anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

        loss = ra.InfoNCELoss(0.1)
        base = rss_anon()
        for b in range(600, 1400, 7):  # many sizes: the cache fills to its 512 MiB bound
            a = np.ones((b, 3000), np.float32)
            loss.batch_with_gradients(a, a, a[:500])
            del a
        cached = ra.cached_memory()
        released = ra.release_cached_memory()
        print(cached, released, rss_anon() - base)
        """
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    cached, released, grown = map(int, done.stdout.split())
    assert cached > 256 << 20 and released == cached
    assert grown < 64 << 20, f"RssAnon still {grown >> 20} MiB above the start"


@pytest.mark.timing
def test_the_cache_does_not_grow_under_a_steady_two_thread_load(rng):
    a = rng.standard_normal((512, 64)).astype(np.float32)
    c = rng.standard_normal((50000, 64)).astype(np.float32)
    miner = ra.HardNegativeMiner.hardest()
    ra.release_cached_memory()

    def run(rounds: int) -> bool:
        """Both threads start each call together (a barrier); True if some round's two calls
        ran at the same time (their intervals overlapped)."""
        barrier = threading.Barrier(2)
        spans: list[list[tuple[float, float]]] = [[], []]

        def work(me: int) -> None:
            for _ in range(rounds):
                barrier.wait()
                start = time.perf_counter()
                miner.mine_batch(a, None, c, 10)
                spans[me].append((start, time.perf_counter()))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return any(s0 < e1 and s1 < e0 for (s0, e0), (s1, e1) in zip(*spans))

    # Settled: after a round in which the two calls overlapped (both sets of buffers were out at
    # once), and once the cache stopped growing; a loaded machine takes more rounds, never fails.
    overlapped, previous = False, -1
    for _ in range(50):
        overlapped |= run(3)
        if overlapped and ra.cached_memory() == previous:
            break
        previous = ra.cached_memory()
    assert overlapped, "the two threads' calls never ran at the same time"
    settled = ra.cached_memory()
    run(30)
    assert ra.cached_memory() <= settled + (4 << 20), (settled, ra.cached_memory())


def test_writing_an_array_another_call_is_reading_says_so(rng):
    param = rng.standard_normal((4096, 256)).astype(np.float32)
    anchors = rng.standard_normal((4096, 256)).astype(np.float32)
    started = threading.Event()
    miner = ra.HardNegativeMiner.hardest()

    def read_it() -> None:
        started.set()
        for _ in range(3):
            miner.mine_batch(anchors, None, param, 10)  # reads `param` with the GIL released

    reader = threading.Thread(target=read_it)
    reader.start()
    started.wait()
    opt = ra.AdamW(lr=0.1)
    grad = np.ones_like(param)
    messages = set()
    while reader.is_alive():
        try:
            opt.step(param, grad)
        except ValueError as exc:
            messages.add(str(exc))
    reader.join()
    assert messages, "the reader finished before any clash could be seen"
    assert all("another call in progress" in m for m in messages), messages
    assert all("this call would update it" in m for m in messages), messages
    # Within one call the message names the other argument.
    with pytest.raises(ValueError, match=r"shares memory with params\[0\]"):
        ra.SGD(lr=0.1).step([param, param[:10]], [grad, grad[:10]])


def test_reading_an_array_another_call_is_writing_says_which_side_writes(rng):
    # The report: a read-only call on a view of `w` while another thread's Adam.step updates `w`
    # was refused with "... while this call would update it"; the call only reads.
    w = rng.standard_normal((4096, 2048)).astype(np.float32)
    grad = np.ones_like(w)
    seen = threading.Event()
    steps = []

    def write_it() -> None:
        opt = ra.Adam(lr=1e-6)
        # Handshake: steps go on until the reader has met one (bounded, never timed).
        while not seen.is_set() and len(steps) < 500:
            opt.step(w, grad)  # large: runs with the GIL released
            steps.append(1)

    reg = ra.SpectralRegularization(weight=0.1)
    writer = threading.Thread(target=write_it)
    writer.start()
    message = None
    try:
        while message is None and writer.is_alive():
            try:
                # Small: holds the GIL throughout, so it runs only while the writer is inside
                # its step (and the writer cannot be refused in turn).
                reg.variance_penalty(w[:2])
            except ValueError as exc:
                message = str(exc)
    finally:
        seen.set()
        writer.join()
    assert message is not None, f"no clash in {len(steps)} steps"
    assert "being updated in place by another call in progress" in message, message
    assert "this call only reads it" in message and "would update" not in message


def test_unaligned_float32_inputs_are_copied_and_in_place_ones_named():
    x_aligned = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    raw = bytearray(1) + bytearray(x_aligned.tobytes())
    x = np.frombuffer(raw, np.float32, 12, offset=1).reshape(3, 4)
    assert not x.flags.aligned
    loss = ra.InfoNCELoss(0.2)
    assert loss.batch(x, x) == loss.batch(x_aligned, x_aligned)
    p = np.frombuffer(bytearray(4 * 12 + 1), np.float32, 12, offset=1)
    with pytest.raises(ValueError, match=r"params\[0\] is not aligned"):
        ra.SGD(lr=0.1).step(p, np.ones(12, np.float32))


@pytest.mark.timing
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["mine", "info_nce", "per_anchor", "margin"])
@linux_only
def test_ctrl_c_ends_a_long_kernel_call_promptly(kind, threads):
    # Measured from outside the call: the parent's clock, from the signal to the child's line.
    # (Measured inside the handler, an uninterruptible call looked prompt: the handler runs only
    # after the call returns.) Before the fix: 4.2 s for a 4.6 s call.
    child = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "interrupt_kernel.py"), kind, str(threads)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "started"
        wait_until_busy(child, 0.3)  # the call is under way (0.3 s of CPU after "started")
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        outcome = child.stdout.readline().strip()
        seconds = time.perf_counter() - sent
        rest = child.stdout.read()
    finally:
        child.wait(timeout=120)
        child.stdout.close()
    assert outcome == "interrupted", outcome  # not "finished": the call was cut short
    # About a tile's (or a row block's) time: 0.01-0.2 s measured. A call that cannot be stopped
    # raises only when it returns: 0.6 s or more after the signal for each kind here.
    assert seconds < 0.3, seconds
    assert "ok" in rest and child.returncode == 0  # the miner works on afterwards


def _busy_threads(call) -> int:
    """How many of this process's threads ran for at least 50 ms of CPU time during ``call()``
    (from /proc: user + system clock ticks of each thread, 100 per second). Sampled during the
    call too, since a thread started for the call may end with it."""

    def ticks() -> dict[str, int]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):  # the thread ended
                continue
            out[tid] = int(fields[11]) + int(fields[12])  # utime, stime
        return out

    before = ticks()
    latest: dict[str, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            latest.update(ticks())
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    latest.update(ticks())
    sampler_tid = str(sampler.native_id)
    return sum(1 for tid, t in latest.items() if tid != sampler_tid and t - before.get(tid, 0) >= 5)


@linux_only
def test_threadpoolctl_sees_and_limits_the_kernels_pool(rng):
    from threadpoolctl import threadpool_info, threadpool_limits

    ours = [i for i in threadpool_info() if i["user_api"] == "ruvector_attention"]
    assert len(ours) == 1 and ours[0]["num_threads"] == ra.get_num_threads(), ours
    a = rng.standard_normal((4096, 512)).astype(np.float32)
    loss = ra.InfoNCELoss(0.1)
    call = lambda: loss.batch_with_gradients(a, a)  # noqa: E731  (0.3 s on two threads)
    before = ra.get_num_threads()
    try:
        with threadpool_limits(limits=1, user_api="ruvector_attention"):
            assert ra.get_num_threads() == 1
            assert _busy_threads(call) == 1  # the limit holds inside a call, not just in a getter
        assert ra.get_num_threads() == before
        if before >= 2 and len(os.sched_getaffinity(0)) >= 2:
            assert _busy_threads(call) >= 2  # the same call uses the pool when not limited
    finally:
        ra.set_num_threads(before)
