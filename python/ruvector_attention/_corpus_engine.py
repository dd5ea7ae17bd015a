"""The streaming engine behind :func:`~ruvector_attention.mine_hard_negatives`: the corpus in row
chunks (in this process, on Dask or on Ray), per query only the candidates that can still matter
(see :mod:`ruvector_attention.corpus` for the definitions it implements)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from . import _native
from . import _validate as check
from ._arrays import float_matrix, from_interchange, is_scipy_sparse
from ._corpus_state import Plan, State, exact_scores, uniform_keys, unit_rows
from ._selection_rules import SelectionRules
from ._system import beyond_memory
from .errors import ArgumentError, ShapeError

__all__ = ["HardNegatives", "mine_exact"]

IndexArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class HardNegatives:
    """The mined negatives: ``indices`` (Q, k) int64 corpus rows, -1 padded, and ``scores``
    (Q, k) float32 cosine similarities, NaN padded; best first for ``sampling="top"``; with a
    rescoring teacher, its scores of the picks in ``rescore_scores``.

    Examples:
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> corpus = np.eye(4, dtype=np.float32) + 0.1
        >>> result = ra.mine_hard_negatives(corpus[:2], corpus, positives=np.array([0, 1]), k=2)
        >>> result.indices.shape, result.scores.dtype
        ((2, 2), dtype('float32'))
    """

    indices: IndexArray
    scores: F32
    #: With ``rescore=``: the teacher's scores of the picks, (Q, k) float64, NaN padded.
    rescore_scores: Optional[npt.NDArray[np.float64]] = None
    #: The work behind the answer: per query, the candidates whose exact (float64) score was
    #: computed (across chunks and any longer second pass), (Q,) int64.
    rescored: Optional[IndexArray] = None


#: List entries kept beyond what the window needs: the float32 preselection's uncertainty (a few
#: times ``preselection_error`` wide) then usually falls past the entries the answer needs, so
#: one pass certifies it. Measured (CPU A): with 4, no query of 1024 needed a second pass on
#: clustered 768-d rows, random 128-d rows or 64-d near-duplicates, while each extra entry costs
#: the kernel's top-k about 1% at k=10 (a margin of 16: 128 vs 103 ms a chunk at D=128).
LIST_MARGIN = 4


def _check_state_fits(queries: int, per_query: int) -> None:
    """Refuses a rank window whose per-query lists cannot fit in this machine's memory (the lists
    and a merge's working copies: about 48 bytes per entry), before any work."""
    shortfall = beyond_memory(48 * queries * per_query)
    if shortfall is not None:
        raise MemoryError(
            f"the rank window (range_min, range_max, k) keeps {per_query} candidates for each of "
            f"{queries} queries: {shortfall}; narrow the window or mine fewer queries per call"
        )


def _positive_pairs(
    positives: object, queries: int, corpus_size: int
) -> tuple[IndexArray, IndexArray]:
    """``(query, corpus index)`` of every positive, from (Q,) ints, a list of int arrays or a
    scipy.sparse (Q, N) matrix."""
    if positives is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if is_scipy_sparse(positives):
        matrix: Any = positives
        if tuple(matrix.shape) != (queries, corpus_size):
            raise ShapeError(
                f"positives as a sparse matrix must be ({queries}, {corpus_size}), got "
                f"{tuple(matrix.shape)}"
            )
        coo = matrix.tocoo()
        keep = np.asarray(coo.data) != 0
        return (
            np.asarray(coo.row, np.int64)[keep],
            np.asarray(coo.col, np.int64)[keep],
        )
    if isinstance(positives, np.ndarray) and positives.ndim == 1:
        if positives.dtype.kind not in "iu":
            raise TypeError(f"positives must hold integer corpus indices, got {positives.dtype}")
        if positives.shape != (queries,):
            raise ShapeError(f"positives must have shape ({queries},), got {positives.shape}")
        _refuse_unsigned_overflow(positives, corpus_size, lambda j: j)
        rows, cols = np.arange(queries, dtype=np.int64), positives.astype(np.int64)
    elif isinstance(positives, Sequence) and not isinstance(positives, (str, bytes)):
        if len(positives) != queries:
            raise ShapeError(f"positives has {len(positives)} entries for {queries} queries")
        lists = []
        for i, item in enumerate(positives):
            arr = np.atleast_1d(np.asarray(item))
            if arr.size and arr.dtype.kind not in "iu":
                raise TypeError(f"positives[{i}] must hold integer corpus indices, got {arr.dtype}")
            _refuse_unsigned_overflow(arr.ravel(), corpus_size, lambda _, i=i: i)
            lists.append(arr.astype(np.int64).ravel())
        rows = np.repeat(np.arange(queries, dtype=np.int64), [len(a) for a in lists])
        cols = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    else:
        raise TypeError(
            "positives must be an int array (Q,), a list of int arrays, or a scipy.sparse (Q, N) "
            f"matrix, got {type(positives).__name__}"
        )
    bad = (cols < 0) | (cols >= corpus_size)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ArgumentError(
            f"positive index {int(cols[i])} of query {int(rows[i])} is outside 0..{corpus_size}"
        )
    return rows, cols


def _refuse_unsigned_overflow(indices: npt.NDArray[Any], corpus_size: int, query_of: Any) -> None:
    """Unsigned indices beyond int64 (``2**64 - 1`` became -1 when cast) are named as they are."""
    if indices.dtype.kind != "u" or indices.size == 0:
        return
    beyond = np.flatnonzero(indices > np.iinfo(np.int64).max)
    if beyond.size:
        j = int(beyond[0])
        raise ArgumentError(
            f"positive index {int(indices[j])} of query {query_of(j)} is outside 0..{corpus_size}"
        )


def _corpus_rows(corpus: Any, start: int, stop: int) -> F32:
    """Rows ``start:stop`` of the corpus as float32 (a float16 corpus converts only this chunk)."""
    return np.ascontiguousarray(corpus[start:stop], dtype=np.float32)


def _corpus_take(corpus: Any, rows: IndexArray, dtype: Any = np.float32) -> Any:
    """The given (sorted) rows of the corpus as ``dtype`` (a Dask array computes just these)."""
    taken = corpus[rows]
    if hasattr(taken, "compute"):
        taken = taken.compute()
    return np.ascontiguousarray(taken, dtype=dtype)


def mine_exact(
    queries: object,
    corpus: object,
    *,
    positives: object,
    rules: SelectionRules,
    exclude_self: bool,
    progress: bool,
    chunk_rows: Optional[int],
    column: Optional[str],
) -> tuple[IndexArray, npt.NDArray[np.float64], IndexArray]:
    """``mine_hard_negatives`` without the false-negative controls: the picks, their exact scores
    in float64 (what a candidate store keeps; the API reports their float32 rounding) and the
    number of candidates scored exactly per query."""
    q = float_matrix(queries, "queries", min_rows=0)
    n_queries, dim = q.shape
    if is_scipy_sparse(corpus):
        raise TypeError(
            "corpus must be a dense array (NumPy, a memory map or a dask.array), got a "
            f"scipy.sparse {type(corpus).__name__}; embeddings are dense: pass corpus.toarray()"
        )
    ray_engine = None
    if _is_ray_corpus(corpus):
        from ._ray import RayCorpus

        corpus = ray_engine = RayCorpus(corpus, column)
    elif column is not None:
        raise ArgumentError("column= is for a ray.data.Dataset corpus")
    elif not _is_dask_array(corpus):
        # Another library's CPU array (PyTorch, JAX, array API) is read through DLPack, no copy.
        corpus = from_interchange(corpus, "corpus")
    lazy: Any = corpus
    if _is_dask_array(lazy) and any(math.isnan(rows) for rows in lazy.chunks[0]):
        raise ArgumentError(
            "corpus is a dask.array whose chunk sizes are unknown (NaN), as after boolean "
            "indexing; call corpus.compute_chunk_sizes() (or pass lengths to to_dask_array) first"
        )
    shape = getattr(corpus, "shape", None)
    if shape is None or len(shape) != 2 or (shape[1] != dim and shape[0] > 0):
        raise ShapeError(f"corpus must be (N, {dim}), got shape {shape}")
    dtype = np.dtype(getattr(corpus, "dtype", np.float32))
    if dtype.kind != "f":
        raise TypeError(f"corpus must contain real floating-point numbers, got dtype {dtype}")
    n_corpus = int(shape[0])
    k, range_min, range_max, sampling = rules.k, rules.range_min, rules.range_max, rules.sampling
    lo, hi_score = rules.min_score, rules.max_score
    abs_margin, rel_margin = rules.absolute_margin, rules.relative_margin
    exclude_self = check.boolean("exclude_self", exclude_self)
    if chunk_rows is not None:
        chunk_rows = check.positive_int("chunk_rows", chunk_rows)
    pos_rows, pos_cols = _positive_pairs(positives, n_queries, n_corpus)

    out_index = np.full((n_queries, k), -1, np.int64)
    out_scores = np.full((n_queries, k), np.nan, np.float64)
    rescored = np.zeros(n_queries, np.int64)
    if n_queries == 0 or k == 0 or n_corpus == 0:
        return out_index, out_scores, rescored

    # Excluded pairs: positives and (exclude_self) the query's own row.
    if exclude_self:
        own = np.arange(min(n_queries, n_corpus), dtype=np.int64)
        ex_rows_all = np.concatenate([pos_rows, own])
        ex_cols_all = np.concatenate([pos_cols, own])
    else:
        ex_rows_all, ex_cols_all = pos_rows, pos_cols

    # Each query's positive score (the lowest similarity among its positives) and score cap.
    positive_score = np.full(n_queries, np.nan)
    if pos_cols.size:
        sims = _pair_similarities(q, corpus, pos_rows, pos_cols)
        # fmin skips NaN: a positive row with NaN or Inf does not set the positive score.
        positive_score = np.full(n_queries, np.inf)
        np.fmin.at(positive_score, pos_rows, sims)
        positive_score[np.isinf(positive_score)] = np.nan
    cap = np.full(n_queries, np.inf)
    if hi_score is not None:
        cap = np.minimum(cap, hi_score)
    has_pos = ~np.isnan(positive_score)
    if abs_margin is not None:
        cap[has_pos] = np.minimum(cap[has_pos], positive_score[has_pos] - abs_margin)
    if rel_margin is not None:
        cap[has_pos] = np.minimum(cap[has_pos], positive_score[has_pos] * (1.0 - rel_margin))
    floor = -np.inf if lo is None else lo

    # What is kept per query: the count above the cap, the best candidates below it by score
    # (the window's end, or range_min + k, and a margin beyond it so that the float32
    # preselection's uncertainty falls past what is needed), and (random sampling, open
    # window) the best by random key among those that pass. No list is longer than the corpus.
    window_end = range_max if range_max is not None else range_min + (k if sampling == "top" else 0)
    list_size = min(window_end + LIST_MARGIN, n_corpus)
    open_draw = sampling == "random" and range_max is None
    key_size = min(range_min + k + LIST_MARGIN, n_corpus) if open_draw else 0
    unit_q = unit_rows(q)
    # The preselection's error bound, per query: 0 for an all-zero query (see Plan.errors).
    errors = np.where((q == 0).all(axis=1), 0.0, float(_native.preselection_error(dim)))
    todo = np.arange(n_queries, dtype=np.int64)
    # Queries whose needed entries the lists cannot certify are mined again with lists four
    # times as long; a list as long as the corpus leaves nothing out, so this ends.
    while todo.size:
        _check_state_fits(len(todo), list_size + key_size)
        plan = _plan_for(
            todo, q, unit_q, cap, floor, ex_rows_all, ex_cols_all, list_size, key_size,
            rules.seed_key, errors,
        )  # fmt: skip
        if ray_engine is not None:
            state = ray_engine.reduce(plan)
        elif _is_dask_array(corpus):
            from ._dask import reduce_blocks

            state = reduce_blocks(plan, corpus, progress)
        else:
            step = chunk_rows or plan.default_chunk_rows()
            state = plan.empty()
            chunks = range(0, n_corpus, step)
            sizes = lambda start, step=step: min(step, n_corpus - start)  # noqa: E731
            for start in progress_bar(
                chunks, progress, total=n_corpus, size=sizes, unit="rows", desc="mining"
            ):
                stop = min(start + step, n_corpus)
                state.merge(plan.absorb(_corpus_rows(corpus, start, stop), start))
        rescored[todo] += state.rescored
        settled = _finish(plan, state, rules, n_corpus, out_index, out_scores)
        if (
            list_size >= n_corpus and (key_size in (0, n_corpus)) and not settled.all()
        ):  # pragma: no cover - a broken bound
            raise RuntimeError("internal: lists holding the whole corpus were not certain")
        todo = todo[~settled]
        list_size = min(4 * list_size, n_corpus)
        key_size = min(4 * key_size, n_corpus)
    if key_size:
        # Picks drawn from the key list: their exact scores, computed the one way.
        out_scores[:] = _scores_of(q, corpus, out_index)
    return out_index, out_scores, rescored


def _plan_for(
    todo: IndexArray,
    q: F32,
    unit_q: F32,
    cap: npt.NDArray[np.float64],
    floor: float,
    ex_rows: IndexArray,
    ex_cols: IndexArray,
    list_size: int,
    key_size: int,
    seed_key: int,
    errors: npt.NDArray[np.float64],
) -> Plan:
    """The plan of the queries ``todo`` (rows of ``q``): their excluded pairs renumbered and
    sorted by corpus index (as each chunk looks them up)."""
    local = np.full(len(q), -1, np.int64)
    local[todo] = np.arange(len(todo))
    mine_pairs = local[ex_rows] >= 0
    rows, cols = local[ex_rows[mine_pairs]], ex_cols[mine_pairs]
    order = np.argsort(cols, kind="stable")
    return Plan(
        queries=np.ascontiguousarray(q[todo]),
        unit_q=np.ascontiguousarray(unit_q[todo]),
        query_ids=todo,
        cap=cap[todo],
        floor=floor,
        ex_rows=rows[order],
        ex_cols=cols[order],
        list_size=list_size,
        key_size=key_size,
        seed_key=seed_key,
        errors=errors[todo],
    )


def _finish(
    plan: Plan,
    state: State,
    rules: SelectionRules,
    n_corpus: int,
    out_index: IndexArray,
    out_scores: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_]:
    """Writes the picks of every query whose needed list entries are certain (see
    ``State.certain``); returns which queries were settled. Positions in the list map to ranks
    ``above_cap + position``."""
    k, range_min, range_max = rules.k, rules.range_min, rules.range_max
    certain, certain_keys = state.certain()
    settled = np.zeros(len(plan.query_ids), bool)
    for i, g in enumerate(plan.query_ids.tolist()):
        if state.unsure[i]:
            continue
        index, values = state.by_score.index[i], state.by_score.values[i]
        filled = int((index >= 0).sum())
        # Every eligible row below the cap is in the list: none was left out by a chunk (no
        # bound) and none dropped by a merge (the list is not full, or holds the whole corpus).
        roomy = filled < plan.list_size or plan.list_size >= n_corpus
        exhaustive = bool(np.isneginf(state.score_cut.value[i])) and roomy
        above = int(state.above_cap[i])
        first = max(0, range_min - above)
        window_end = None if range_max is None else max(0, range_max - above)
        last = plan.list_size if window_end is None else min(window_end, plan.list_size)
        # `need`: the list positions the answer depends on; they must all be certain. Past the
        # list's end nothing is known unless the list is exhaustive.
        unknown = n_corpus + 1
        picks: list[int] = []
        need = first if plan.key_size else last
        if not plan.key_size:
            for p in range(first, last):
                if index[p] < 0:  # the list ended
                    need = p if exhaustive else unknown
                    break
                if values[p] < plan.floor:  # everything after is lower still
                    need = p + 1
                    break
                picks.append(p)
                if rules.sampling == "top" and len(picks) == k:
                    need = p + 1
                    break
            else:  # the window runs on past the list
                if (window_end is None or window_end > last) and not exhaustive:
                    need = unknown
        elif first > filled and not exhaustive:  # the head takes every listed row
            need = unknown
        if exhaustive:
            need = min(need, filled)
        if need > certain[i]:
            continue
        settled[i] = True
        if rules.sampling == "top":
            chosen = np.asarray(picks[:k], np.int64)
        elif not plan.key_size:  # random, closed window: every window candidate is in the list
            cand = index[picks]
            keys = uniform_keys(plan.seed_key, np.full(len(cand), g, np.int64), cand)
            chosen = np.asarray(picks, np.int64)[np.lexsort((cand, -keys))][:k]
        else:  # random, open window: the key list minus the head above range_min's rank
            head = set(index[:first].tolist())
            by_key = state.by_key.index[i]
            drawn: list[int] = []
            need_keys = 0
            for p, c in enumerate(by_key.tolist()):
                if c < 0:  # the list ended: every passing row is in it only if none is missing
                    need_keys = p if np.isneginf(state.key_cut.value[i]) else n_corpus + 1
                    break
                need_keys = p + 1
                if c not in head:
                    drawn.append(c)
                    if len(drawn) == k:
                        break
            else:  # the list is full: more passing rows may follow it (a merge dropped them)
                if len(drawn) < k and plan.key_size < n_corpus:
                    need_keys = n_corpus + 1
            if need_keys > certain_keys[i]:
                settled[i] = False
                continue
            out_index[g, : len(drawn)] = drawn
            continue
        out_index[g, : len(chosen)] = index[chosen]
        out_scores[g, : len(chosen)] = values[chosen]
    return settled


def _is_ray_corpus(value: object) -> bool:
    if "ray" not in sys.modules:  # Ray is optional: without it imported, nothing is Ray's
        return False
    from ._ray import is_ray_corpus

    return is_ray_corpus(value)


def _is_dask_array(value: object) -> bool:
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


def _pair_similarities(
    q: F32, corpus: Any, queries: IndexArray, columns: IndexArray
) -> npt.NDArray[np.float64]:
    """The exact score of each (query, corpus row) pair. Only those rows are read, each once and
    in order (as a memory map or a Dask array reads best)."""
    distinct, where = np.unique(columns, return_inverse=True)
    return exact_scores(q, _corpus_take(corpus, distinct), queries, where.astype(np.int64))


def _scores_of(q: F32, corpus: Any, index: IndexArray) -> npt.NDArray[np.float64]:
    """The exact scores of each query with its picks (NaN: no pick)."""
    scores = np.full(index.shape, np.nan, np.float64)
    found = index >= 0
    if found.any():
        queries = np.nonzero(found)[0]
        scores[found] = _pair_similarities(q, corpus, queries, index[found])
    return scores


def progress_bar(
    items: Iterable[int],
    show: bool,
    *,
    total: int,
    size: Callable[[int], int],
    unit: str,
    desc: str,
) -> Iterator[int]:
    """``items``, with a tqdm bar (when ``show`` and tqdm is installed) advanced by ``size(item)``
    after each item, out of ``total``."""
    if not show:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield from items
        return
    with tqdm(total=total, unit=unit, desc=desc) as bar:
        for item in items:
            yield item
            bar.update(size(item))
