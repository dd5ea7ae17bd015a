"""The Ray engine of ``mine_hard_negatives``: one task per row block of a corpus held by Ray (a
``ray.data.Dataset``'s embedding column, or ``ray.ObjectRef``s of row blocks), each mined where
Ray schedules it, and a merge of their per-query states as they finish. Imported only when the
corpus is one of these (extra ``[ray]``).

The tasks run ``_corpus_state.Plan.absorb``, the Dask engine's and the in-memory loop's own step,
and merging states is associative and order-independent, so the result is the in-memory call's
to the bit, whatever the blocks, the order they finish in, or a task re-run after a worker died
(Ray retries a task whose worker is lost). Only the small per-query states come back, and the
rows the result reports (the picks, the positives) are gathered block by block.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from ._corpus_state import Plan, State
from .errors import ArgumentError, ShapeError
from .runtime import adopt_worker_share

__all__ = ["RayCorpus", "is_ray_corpus"]


def is_ray_corpus(value: object) -> bool:
    """A ``ray.data.Dataset``, or a non-empty list or tuple of ``ray.ObjectRef``s (row blocks)."""
    ray = sys.modules.get("ray")
    if ray is None:
        return False
    data = sys.modules.get("ray.data")
    if data is not None and isinstance(value, data.Dataset):
        return True
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, ray.ObjectRef) for v in value)
    )


def _describe(block: Any) -> tuple[int, int, str]:
    array = np.asarray(block)
    return (array.shape[0], array.shape[1] if array.ndim == 2 else -1, array.dtype.str)


def absorb_block(plan: Plan, block: Any, start: int) -> State:
    """One block's state, in a Ray task: the pool first takes the task's share of the machine
    (the CPUs Ray assigned it, 1 by default)."""
    import ray

    adopt_worker_share(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))
    return plan.absorb(np.ascontiguousarray(block, dtype=np.float32), start)


def _take(block: Any, rows: npt.NDArray[np.int64]) -> Any:
    return np.asarray(block)[rows]


@functools.cache
def _tasks() -> Any:
    """The remote functions, made once Ray is imported (it is optional)."""
    import ray

    return ray.remote(_describe), ray.remote(absorb_block), ray.remote(_take)


class RayCorpus:
    """A corpus whose row blocks live in Ray's object store, seen as an (N, D) array: ``shape``,
    ``dtype`` and ``corpus[rows]`` (sorted rows, gathered from the blocks that hold them)."""

    def __init__(self, source: Any, column: Optional[str]) -> None:
        import ray

        if isinstance(source, ray.data.Dataset):
            self.refs: list[Any] = source.to_numpy_refs(column=_embedding_column(source, column))
        elif column is not None:
            raise ArgumentError("column= names a column of a ray.data.Dataset, not of ObjectRefs")
        else:
            self.refs = list(source)
        if not self.refs:
            raise ShapeError("the corpus holds no row blocks (an empty dataset)")
        describe, _, _ = _tasks()
        shapes = ray.get([describe.remote(ref) for ref in self.refs])
        dims = {cols for _, cols, _ in shapes}
        if len(dims) != 1 or -1 in dims:
            raise ShapeError(
                f"corpus blocks must be 2-D with one width, got (rows, cols) "
                f"{[(r, c) for r, c, _ in shapes][:5]}"
            )
        dtypes = {np.dtype(d) for _, _, d in shapes}
        if len(dtypes) != 1:
            raise TypeError(f"corpus blocks must share one dtype, got {sorted(map(str, dtypes))}")
        rows = np.array([r for r, _, _ in shapes], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
        self.shape = (int(rows.sum()), dims.pop())
        self.dtype = dtypes.pop()

    def __getitem__(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import ray

        _, _, take = _tasks()
        block_of = np.searchsorted(self.starts, rows, side="right") - 1
        parts = [
            take.remote(self.refs[b], rows[block_of == b] - self.starts[b])
            for b in np.unique(block_of)
        ]
        gathered = ray.get(parts)
        if not gathered:
            return np.empty((0, self.shape[1]), self.dtype)
        return np.concatenate(gathered)

    def reduce(self, plan: Plan) -> State:
        """The merged state of every block, merged as the tasks finish."""
        import ray

        _, absorb, _ = _tasks()
        shared = ray.put(plan)  # shipped once, shared by every task
        pending = [
            absorb.remote(shared, ref, int(start)) for ref, start in zip(self.refs, self.starts)
        ]
        state = plan.empty()
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            state.merge(ray.get(done[0]))
        return state


def _embedding_column(dataset: Any, column: Optional[str]) -> str:
    """``column``, or the dataset's only column, or its only tensor column."""
    schema = dataset.schema()
    names: Sequence[str] = list(schema.names)
    if column is not None:
        if column not in names:
            raise ArgumentError(
                f"column {column!r} is not in the dataset, whose columns are {names}"
            )
        return column
    if len(names) == 1:
        return names[0]
    tensors = [n for n, t in zip(names, schema.types) if "Tensor" in type(t).__name__]
    if len(tensors) != 1:
        raise ArgumentError(f"the dataset has columns {names}: pass column= to name the embeddings")
    return tensors[0]
