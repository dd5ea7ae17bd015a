"""The Dask engine of ``mine_hard_negatives``: one task per row block of a ``dask.array`` corpus
and a tree reduction of their per-query states, run by the active ``distributed.Client`` (or
Dask's default scheduler). Imported only when the corpus is a Dask array (extra ``[dask]``).

Every task is a pure function of its block and the plan, and merging states is associative and
order-independent (lists in a total order, counts added), so the result is the in-memory call's
whatever the blocks, the tree's shape, the number of workers or a task re-run after a worker
died.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np

from ._corpus_state import Plan, State
from .runtime import adopt_worker_share

__all__ = ["reduce_blocks"]

#: States merged per node of the reduction tree.
_FAN_IN = 4


def _absorb(plan: Plan, block: Any, start: int) -> State:
    _take_worker_share()
    return plan.absorb(np.ascontiguousarray(block, dtype=np.float32), start)


def _take_worker_share() -> None:
    """In a distributed worker, the kernels' pool defaults to the worker's thread count (two
    single-threaded workers on two cores would otherwise start four kernel threads)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not in a distributed worker (Dask's own schedulers)
        return
    adopt_worker_share(worker.state.nthreads)


def _merge(*states: State) -> State:
    merged = copy.deepcopy(states[0])
    for state in states[1:]:
        merged.merge(state)
    return merged


def reduce_blocks(plan: Plan, corpus: Any, progress: bool) -> State:
    """The merged state of every row block of ``corpus`` (a ``dask.array.Array``)."""
    import dask
    from dask import delayed

    if corpus.numblocks[1] != 1:
        corpus = corpus.rechunk({1: -1})  # whole rows per block
    starts = np.concatenate([[0], np.cumsum(corpus.chunks[0])[:-1]]).astype(int)
    plan_node = delayed(plan, pure=True)  # shipped once, shared by every task
    level = [
        delayed(_absorb, pure=True)(plan_node, block, int(start))
        for block, start in zip(corpus.to_delayed().ravel(), starts)
    ]
    while len(level) > 1:
        level = [
            delayed(_merge, pure=True)(*level[i : i + _FAN_IN])
            for i in range(0, len(level), _FAN_IN)
        ]
    client = _distributed_client()
    if client is not None:
        merged: State = _wait_for(client.compute(level[0]))
    elif progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            (merged,) = dask.compute(level[0])
    else:
        (merged,) = dask.compute(level[0])
    return merged


def _wait_for(future: Any) -> Any:
    """The future's result; Ctrl-C cancels it (its tasks stop on the cluster) and re-raises.

    The wait happens here, not inside ``distributed``'s own blocking gather: interrupted there,
    it left a task whose exception was printed as a traceback when it was collected.
    """
    finished = threading.Event()
    future.add_done_callback(lambda _: finished.set())
    try:
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        future.cancel()
        raise
    return future.result()


def _distributed_client() -> Any:
    """The active ``distributed.Client``, or None (Dask's own schedulers then run the graph)."""
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None
