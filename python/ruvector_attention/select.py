"""Negatives selected from a candidate store, without searching the corpus again.

``select_negatives(store, k=10, relative_margin=0.05, ...)`` applies the rank window, the score
filters, the positive-aware margins and the sampling of
:func:`~ruvector_attention.mine_hard_negatives` (same definitions, same seeded draw) to the
candidates a store holds, plus ``max_positive_similarity``: a candidate whose cosine to any of
the query's positives is at least that value is dropped (a near-duplicate of a positive is
likely a false negative).

The answer equals mining the corpus directly whenever the store holds what it needs. Where it
does not (a query whose list was cut at ``candidates`` and whose window or picks reach past
it), the query's ``shortfall`` says how many picks the store could not provide: never a silent
shorter answer. Random sampling needs the window inside the store (``range_max`` at most the
store's ``candidates``) unless every query's list is complete.

The audit counts, for every candidate seen, the first filter that removed it (rank window,
min_score, max_score, absolute_margin, relative_margin, max_positive_similarity), those that
passed but were not drawn, and those selected: the counts add up to the candidates seen. It also
holds the queries short of k and by how much, and histograms of the positive scores and of the
negative scores before and after filtering.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from ._atomic_file import write_atomically
from ._corpus_state import uniform_keys
from ._selection_rules import SelectionRules, checked_rules
from .candidate_store import CandidateStore, StoreError, _pyarrow, _write_manifest, open_store
from .errors import ArgumentError, ShapeError

__all__ = ["FILTERS", "Selection", "save_selection", "select_block", "select_negatives"]

#: The filters in the order the audit charges a removed candidate to (the first that removes it).
FILTERS = (
    "rank_window",
    "min_score",
    "max_score",
    "absolute_margin",
    "relative_margin",
    "max_positive_similarity",
    "rescore_margin",
)
SELECTION_FILE = "selection.parquet"
_BINS = np.linspace(-1.0, 1.0, 41)


@dataclass(frozen=True)
class Selection:
    """Selected negatives: ``indices`` (Q, k) int64 (-1 padded), ``scores`` (Q, k) float64 (NaN
    padded), ``shortfall`` (Q,) picks the store could not provide, the ``parameters`` used and
    the ``audit``.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> import ruvector_attention as ra
        >>> rng = np.random.default_rng(0)
        >>> corpus = rng.standard_normal((60, 8)).astype(np.float32)
        >>> run = os.path.join(tempfile.mkdtemp(), "run")
        >>> store = ra.mine_candidates(corpus[:4], corpus, run, positives=np.arange(4),
        ...                            candidates=20)
        >>> chosen = ra.select_negatives(store, k=3, range_min=2)
        >>> chosen.indices.shape, int(chosen.shortfall.sum())
        ((4, 3), 0)
        >>> a = chosen.audit["removed"]
        >>> sum(a.values()) + chosen.audit["not_drawn"] + chosen.audit["selected"] == (
        ...     chosen.audit["candidates_seen"])
        True
    """

    indices: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]
    shortfall: npt.NDArray[np.int64]
    parameters: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    #: The ``rescore`` teacher's scores of the picks (None without a teacher).
    rescore_scores: Optional[npt.NDArray[np.float64]] = None


class AuditTally:
    """The audit's counts and histograms, summed over blocks."""

    def __init__(self) -> None:
        self.removed = dict.fromkeys(FILTERS, 0)
        self.counts = {"candidates_seen": 0, "not_drawn": 0, "selected": 0}
        self.positive_scores: list[npt.NDArray[np.float64]] = []
        self.before: list[npt.NDArray[np.float64]] = []
        self.after: list[npt.NDArray[np.float64]] = []

    def audit(self, shortfall: npt.NDArray[np.int64]) -> dict[str, Any]:
        short = shortfall[shortfall > 0]
        return {
            **self.counts,
            "removed": self.removed,
            "queries": int(shortfall.size),
            "queries_short": int(short.size),
            "picks_missing": int(short.sum()),
            "shortfall_histogram": {
                str(v): int(c) for v, c in zip(*np.unique(short, return_counts=True))
            },
            "histogram_bins": _BINS.tolist(),
            "positive_scores": _histogram(self.positive_scores),
            "negative_scores_before": _histogram(self.before),
            "negative_scores_after": _histogram(self.after),
        }


def select_negatives(
    store: Any,
    *,
    k: int = 10,
    range_min: int = 0,
    range_max: Optional[int] = None,
    min_score: Optional[float] = None,
    max_score: Optional[float] = None,
    absolute_margin: Optional[float] = None,
    relative_margin: Optional[float] = None,
    max_positive_similarity: Optional[float] = None,
    sampling: str = "top",
    seed: Optional[int] = None,
    rescore: Optional[Callable[[Any, Any], Any]] = None,
    rescore_margin: Optional[float] = None,
    rescore_batch: int = 4096,
) -> Selection:
    """Negatives for every query of ``store`` (a :class:`CandidateStore` or its directory);
    the arguments are :func:`~ruvector_attention.mine_hard_negatives`'s, plus:

    Args:
        max_positive_similarity: drop a candidate whose cosine to any of the query's positives
            is at least this (a near-duplicate of a positive).
        rescore: ``rescore(query_ids, candidate_ids) -> scores``, a teacher (a cross-encoder,
            say) called with int64 arrays of up to ``rescore_batch`` pairs across queries, on
            every candidate the other filters leave and on each query's positives; returns one
            finite float per pair. Its scores are returned in ``Selection.rescore_scores``.
        rescore_margin: drop a candidate whose teacher score exceeds the teacher's lowest score
            of the query's positives minus this margin.
        rescore_batch: pairs per ``rescore`` call.

    Raises:
        StoreError: the store is unfinished or damaged.
        ArgumentError: random sampling whose window reaches past the store's lists; a
            ``rescore`` that returns NaN or infinity.
        ShapeError: a ``rescore`` that returns a number of scores other than the pairs given.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> import ruvector_attention as ra
        >>> corpus = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
        >>> run = os.path.join(tempfile.mkdtemp(), "run")
        >>> store = ra.mine_candidates(corpus[:4], corpus, run, positives=np.arange(4),
        ...                            candidates=20)
        >>> near = ra.select_negatives(store, k=2, max_positive_similarity=0.5)
        >>> near.indices.shape, near.audit["removed"]["max_positive_similarity"] > 0
        ((4, 2), True)
    """
    rules = checked_rules(
        k, range_min, range_max, min_score, max_score, absolute_margin, relative_margin,
        max_positive_similarity, sampling, seed, rescore, rescore_margin, rescore_batch,
    )  # fmt: skip
    if not isinstance(store, CandidateStore):
        store = open_store(os.fspath(store))
    if not store.finished:
        raise StoreError(f"{store.path} is unfinished: resume the mining run first")
    n = store.queries
    out = Selection(
        indices=np.full((n, rules.k), -1, np.int64),
        scores=np.full((n, rules.k), np.nan, np.float64),
        shortfall=np.zeros(n, np.int64),
        parameters=rules.parameters(),
        rescore_scores=None if rescore is None else np.full((n, rules.k), np.nan, np.float64),
    )
    tally = AuditTally()
    for block in store.blocks():
        select_block(block, store.candidates, rules, out, tally)
    out.audit.update(tally.audit(out.shortfall))
    return out


def select_block(
    block: dict[str, Any], width: int, rules: SelectionRules, out: Selection, tally: AuditTally
) -> None:
    """One block's selection into ``out`` (its rows ``block["query"]``), counted in ``tally``."""
    rows = block["query"]
    cand, scores, possim = block["candidates"], block["scores"], block["positive_similarity"]
    held, pos_score, complete = block["count"], block["positive_score"], block["complete"]
    k, range_max = rules.k, rules.range_max
    rank = np.arange(width)[None, :]
    present = rank < held[:, None]
    end = np.inf if range_max is None else range_max
    in_window = present & (rank >= rules.range_min) & (rank < end)
    if rules.sampling == "random" and (range_max is None or range_max > width):
        open_lists = ~complete
        if open_lists.any():
            raise ArgumentError(
                f"random sampling needs the window inside the store's lists: range_max "
                f"must be at most {width} (the store's candidates), got {range_max}; "
                f"{int(open_lists.sum())} queries from query {int(rows[0])} on hold more "
                "candidates than the store kept"
            )
    has_pos = ~np.isnan(pos_score)
    none = np.zeros_like(present)
    # The filters, each as a mask of the candidates it would remove.
    masks = {
        "rank_window": present & ~in_window,
        "min_score": scores < rules.min_score if rules.min_score is not None else none,
        "max_score": scores > rules.max_score if rules.max_score is not None else none,
        "absolute_margin": none,
        "relative_margin": none,
        "max_positive_similarity": (
            possim >= rules.max_positive_similarity
            if rules.max_positive_similarity is not None
            else none
        ),
        "rescore_margin": none,
    }
    if rules.absolute_margin is not None:
        cap = np.where(has_pos, pos_score - rules.absolute_margin, np.inf)
        masks["absolute_margin"] = scores > cap[:, None]
    if rules.relative_margin is not None:
        cap = np.where(has_pos, pos_score * (1.0 - rules.relative_margin), np.inf)
        masks["relative_margin"] = scores > cap[:, None]
    alive = present.copy()
    teacher = np.full(cand.shape, np.nan)
    for name in FILTERS:
        if name == "rescore_margin" and rules.rescore is not None:
            teacher[alive] = _rescored(rules, np.broadcast_to(rows[:, None], cand.shape)[alive],
                                       cand[alive])  # fmt: skip
            if rules.rescore_margin is not None:
                positives = block["positives"]
                lengths = np.array([len(p) for p in positives])
                pairs_q = np.repeat(rows, lengths)
                pos_t = _rescored(
                    rules, pairs_q, np.concatenate([np.zeros(0, np.int64), *positives])
                )
                lowest = np.full(len(rows), np.inf)
                np.minimum.at(lowest, np.repeat(np.arange(len(rows)), lengths), pos_t)
                cap = np.where(lengths > 0, lowest - rules.rescore_margin, np.inf)
                masks[name] = teacher > cap[:, None]
        hit = alive & masks[name]
        tally.removed[name] += int(hit.sum())
        alive &= ~hit
    tally.counts["candidates_seen"] += int(present.sum())
    tally.before.append(scores[present])
    tally.positive_scores.append(pos_score[has_pos])
    if rules.sampling == "top":
        # The candidates in ranking order: the first k alive ones.
        order = np.argsort(~alive, axis=1, kind="stable")[:, :k]
    else:
        keys = uniform_keys(rules.seed_key, np.repeat(rows, width), cand.ravel())
        order = _by_key(np.where(alive, keys.reshape(cand.shape), -1.0), cand, alive)[:, :k]
    taken = np.minimum(alive.sum(axis=1), k)
    picked = np.arange(order.shape[1])[None, :] < taken[:, None]
    out.indices[rows] = np.where(picked, np.take_along_axis(cand, order, axis=1), -1)
    out.scores[rows] = np.where(picked, np.take_along_axis(scores, order, axis=1), np.nan)
    if out.rescore_scores is not None:
        out.rescore_scores[rows] = np.where(
            picked, np.take_along_axis(teacher, order, axis=1), np.nan
        )
    if rules.sampling == "top":
        # Picks the store cannot settle: fewer than k found, the list cut, the window past it.
        window_held = (range_max is not None) & (held >= (range_max or 0))
        open_rows = (taken < k) & ~complete & ~window_held
        out.shortfall[rows[open_rows]] = k - taken[open_rows]
    # (random: the window is inside every list that is not complete, checked above)
    tally.counts["selected"] += int(taken.sum())
    tally.counts["not_drawn"] += int(alive.sum() - taken.sum())
    tally.after.append(out.scores[rows][picked])


def _rescored(
    rules: SelectionRules, queries: npt.NDArray[np.int64], candidates: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """The teacher's scores of the pairs, asked in batches of ``rescore_batch``, checked."""
    assert rules.rescore is not None
    out = np.empty(len(queries), np.float64)
    for lo in range(0, len(queries), rules.rescore_batch):
        hi = min(lo + rules.rescore_batch, len(queries))
        q = np.ascontiguousarray(queries[lo:hi], np.int64)
        c = np.ascontiguousarray(candidates[lo:hi], np.int64)
        got = np.asarray(rules.rescore(q, c), dtype=np.float64)
        if got.shape != (hi - lo,):
            raise ShapeError(
                f"rescore returned scores of shape {got.shape} for {hi - lo} (query, candidate) "
                f"pairs; it must return one score per pair, shape ({hi - lo},)"
            )
        bad = np.flatnonzero(~np.isfinite(got))
        if bad.size:
            j = int(bad[0])
            raise ArgumentError(
                f"rescore returned {got[j]} for query {int(q[j])}, candidate {int(c[j])}: "
                "scores must be finite"
            )
        out[lo:hi] = got
    return out


def _by_key(
    keys: npt.NDArray[np.float64], cand: npt.NDArray[np.int64], alive: npt.NDArray[np.bool_]
) -> npt.NDArray[np.intp]:
    """Per row, the columns by descending key, equal keys by lower candidate row (the order
    mine_hard_negatives draws in); dead columns (key -1) last."""
    order = np.argsort(-keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    tied = ((sorted_keys[:, 1:] == sorted_keys[:, :-1]) & (sorted_keys[:, 1:] >= 0)).any(axis=1)
    for j in np.flatnonzero(tied):  # 53-bit keys: practically never
        live = np.flatnonzero(alive[j])
        first = live[np.lexsort((cand[j, live], -keys[j, live]))]
        order[j] = np.concatenate([first, np.flatnonzero(~alive[j])])
    return order


def _histogram(parts: list[npt.NDArray[np.float64]]) -> list[int]:
    values = np.concatenate([np.zeros(0), *parts]) if parts else np.zeros(0)
    counts, _ = np.histogram(np.clip(values, -1.0, 1.0), bins=_BINS)
    return [int(c) for c in counts]


def save_selection(store: CandidateStore, selection: Selection, *, plot: bool = True) -> str:
    """Writes ``selection.parquet`` (``query``, ``negatives``, ``scores``, ``shortfall``) into
    the store, its parameters and audit into the manifest, and ``audit.png`` (with matplotlib,
    when ``plot``); returns the selection file's path.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> import ruvector_attention as ra
        >>> corpus = np.random.default_rng(4).standard_normal((30, 8)).astype(np.float32)
        >>> run = os.path.join(tempfile.mkdtemp(), "run")
        >>> store = ra.mine_candidates(corpus[:3], corpus, run, positives=np.arange(3),
        ...                            candidates=10)
        >>> path = ra.save_selection(store, ra.select_negatives(store, k=2), plot=False)
        >>> os.path.basename(path), "selection" in ra.open_store(run).manifest
        ('selection.parquet', True)
    """
    pa, pq = _pyarrow()
    lists = [row[row >= 0].tolist() for row in selection.indices]
    scores = [row[~np.isnan(row)].tolist() for row in selection.scores]
    table = pa.table(
        {
            "query": pa.array(np.arange(len(lists), dtype=np.int64)),
            "negatives": pa.array(lists, pa.list_(pa.int64())),
            "scores": pa.array(scores, pa.list_(pa.float64())),
            "shortfall": pa.array(selection.shortfall),
        }
    )
    if selection.rescore_scores is not None:  # the teacher's scores beside the bi-encoder's
        teacher = [row[~np.isnan(row)].tolist() for row in selection.rescore_scores]
        table = table.append_column("rescore_scores", pa.array(teacher, pa.list_(pa.float64())))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    path = os.path.join(store.path, SELECTION_FILE)
    write_atomically(path, buffer.getvalue())
    manifest = json.loads(json.dumps(store.manifest))
    manifest["selection"] = {"parameters": selection.parameters, "audit": selection.audit}
    _write_manifest(store.path, manifest)
    if plot:
        _plot_audit(os.path.join(store.path, "audit.png"), selection.audit)
    return path


def _plot_audit(path: str, audit: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is optional; the numbers are in the manifest
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [*FILTERS, "not_drawn", "selected"]
    values = [audit["removed"][f] for f in FILTERS] + [audit["not_drawn"], audit["selected"]]
    left.barh(names, values)
    left.set_title(f"{audit['candidates_seen']} candidates: where each went")
    left.invert_yaxis()
    centres = (np.array(audit["histogram_bins"][:-1]) + np.array(audit["histogram_bins"][1:])) / 2
    for key, label in (
        ("positive_scores", "positives"),
        ("negative_scores_before", "candidates"),
        ("negative_scores_after", "selected negatives"),
    ):
        right.plot(centres, audit[key], label=label)
    right.set_xlabel("cosine similarity to the query")
    right.set_title(f"{audit['queries_short']} of {audit['queries']} queries short of k")
    right.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomically(path, buffer.getvalue())
