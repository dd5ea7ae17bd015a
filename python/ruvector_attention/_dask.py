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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .corpus import _Plan, _State

__all__ = ["reduce_blocks"]

#: States merged per node of the reduction tree.
_FAN_IN = 4


def _absorb(plan: _Plan, block: Any, start: int) -> _State:
    return plan.absorb(np.ascontiguousarray(block, dtype=np.float32), start)


def _merge(*states: _State) -> _State:
    merged = copy.deepcopy(states[0])
    for state in states[1:]:
        merged.merge(state)
    return merged


def reduce_blocks(plan: _Plan, corpus: Any, progress: bool) -> _State:
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
    if progress and _no_distributed_client():
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            (state,) = dask.compute(level[0])
    else:
        (state,) = dask.compute(level[0])
    merged: _State = state
    return merged


def _no_distributed_client() -> bool:
    try:
        from distributed import get_client
    except ImportError:
        return True
    try:
        get_client()
    except ValueError:
        return True
    return False
