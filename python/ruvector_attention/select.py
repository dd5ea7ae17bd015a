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
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from . import _validate as check
from ._atomic_file import write_atomically
from ._corpus_state import uniform_keys
from .candidate_store import CandidateStore, StoreError, _pyarrow, _write_manifest, open_store
from .errors import ArgumentError

__all__ = ["FILTERS", "Selection", "save_selection", "select_negatives"]

#: The filters in the order the audit charges a removed candidate to (the first that removes it).
FILTERS = (
    "rank_window",
    "min_score",
    "max_score",
    "absolute_margin",
    "relative_margin",
    "max_positive_similarity",
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
) -> Selection:
    """Negatives for every query of ``store`` (a :class:`CandidateStore` or its directory);
    the arguments are :func:`~ruvector_attention.mine_hard_negatives`'s, plus
    ``max_positive_similarity`` (see the module).

    Raises:
        StoreError: the store is unfinished or damaged.
        ArgumentError: random sampling whose window reaches past the store's lists.
    """
    if not isinstance(store, CandidateStore):
        store = open_store(os.fspath(store))
    if not store.finished:
        raise StoreError(f"{store.path} is unfinished: resume the mining run first")
    k = check.non_negative_int("k", k)
    range_min = check.non_negative_int("range_min", range_min)
    if range_max is not None:
        range_max = check.integer("range_max", range_max, minimum=range_min)
    lo = None if min_score is None else check.real("min_score", min_score)
    hi = None if max_score is None else check.real("max_score", max_score)
    abs_margin = (
        None if absolute_margin is None else check.non_negative("absolute_margin", absolute_margin)
    )
    rel_margin = None if relative_margin is None else check.beta("relative_margin", relative_margin)
    near_dup = (
        None
        if max_positive_similarity is None
        else check.real("max_positive_similarity", max_positive_similarity)
    )
    if sampling not in ("top", "random"):
        raise ArgumentError(f"sampling must be 'top' or 'random', got {sampling!r}")
    if seed is not None:
        seed = check.non_negative_int("seed", seed)
    seed_key = int(np.random.SeedSequence(seed).generate_state(2, np.uint32).view(np.uint64)[0])
    parameters = {
        "k": k,
        "range_min": range_min,
        "range_max": range_max,
        "min_score": lo,
        "max_score": hi,
        "absolute_margin": abs_margin,
        "relative_margin": rel_margin,
        "max_positive_similarity": near_dup,
        "sampling": sampling,
        "seed": seed,
    }
    width = store.candidates
    n = store.queries
    out_index = np.full((n, k), -1, np.int64)
    out_scores = np.full((n, k), np.nan, np.float64)
    shortfall = np.zeros(n, np.int64)
    removed = dict.fromkeys(FILTERS, 0)
    counts = {"candidates_seen": 0, "not_drawn": 0, "selected": 0}
    positive_scores, before, after = [], [], []
    for block in store.blocks():
        rows = block["query"]
        cand, scores, possim = block["candidates"], block["scores"], block["positive_similarity"]
        held, pos_score, complete = block["count"], block["positive_score"], block["complete"]
        rank = np.arange(width)[None, :]
        present = rank < held[:, None]
        end = np.inf if range_max is None else range_max
        in_window = present & (rank >= range_min) & (rank < end)
        if sampling == "random" and (range_max is None or range_max > width):
            open_lists = ~complete
            if open_lists.any():
                raise ArgumentError(
                    f"random sampling needs the window inside the store's lists: range_max "
                    f"must be at most {width} (the store's candidates), got {range_max}; "
                    f"{int(open_lists.sum())} queries of block {int(rows[0]) // max(1, len(rows))} "
                    "hold more candidates than the store kept"
                )
        cap = np.full(len(rows), np.inf)
        has_pos = ~np.isnan(pos_score)
        # The filters, each as a mask of the candidates it would remove.
        masks = {
            "rank_window": present & ~in_window,
            "min_score": scores < lo if lo is not None else np.zeros_like(present),
            "max_score": scores > hi if hi is not None else np.zeros_like(present),
            "absolute_margin": np.zeros_like(present),
            "relative_margin": np.zeros_like(present),
            "max_positive_similarity": (
                possim >= near_dup if near_dup is not None else np.zeros_like(present)
            ),
        }
        if abs_margin is not None:
            cap = np.where(has_pos, pos_score - abs_margin, np.inf)
            masks["absolute_margin"] = scores > cap[:, None]
        if rel_margin is not None:
            rel_cap = np.where(has_pos, pos_score * (1.0 - rel_margin), np.inf)
            masks["relative_margin"] = scores > rel_cap[:, None]
        alive = present.copy()
        for name in FILTERS:
            hit = alive & masks[name]
            removed[name] += int(hit.sum())
            alive &= ~hit
        counts["candidates_seen"] += int(present.sum())
        before.append(scores[present])
        positive_scores.append(pos_score[has_pos])
        if sampling == "top":
            # The candidates in ranking order: the first k alive ones.
            order = np.argsort(~alive, axis=1, kind="stable")[:, :k]
        else:
            keys = uniform_keys(seed_key, np.repeat(rows, width), cand.ravel()).reshape(cand.shape)
            order = _by_key(np.where(alive, keys, -1.0), cand, alive)[:, :k]
        taken = np.minimum(alive.sum(axis=1), k)
        picked = np.arange(order.shape[1])[None, :] < taken[:, None]
        out_index[rows] = np.where(picked, np.take_along_axis(cand, order, axis=1), -1)
        out_scores[rows] = np.where(picked, np.take_along_axis(scores, order, axis=1), np.nan)
        if sampling == "top":
            # Picks the store cannot settle: fewer than k found, the list cut, the window past it.
            window_held = (range_max is not None) & (held >= (range_max or 0))
            open_rows = (taken < k) & ~complete & ~window_held
            shortfall[rows[open_rows]] = k - taken[open_rows]
        # (random: the window is inside every list that is not complete, checked above)
        counts["selected"] += int(taken.sum())
        counts["not_drawn"] += int(alive.sum() - taken.sum())
        after.append(out_scores[rows][picked])
    short = shortfall[shortfall > 0]
    audit: dict[str, Any] = {
        **counts,
        "removed": removed,
        "queries": n,
        "queries_short": int(short.size),
        "picks_missing": int(short.sum()),
        "shortfall_histogram": {
            str(v): int(c) for v, c in zip(*np.unique(short, return_counts=True))
        },
        "histogram_bins": _BINS.tolist(),
        "positive_scores": _histogram(positive_scores),
        "negative_scores_before": _histogram(before),
        "negative_scores_after": _histogram(after),
    }
    return Selection(out_index, out_scores, shortfall, parameters, audit)


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
    when ``plot``); returns the selection file's path."""
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
