"""``ruvector-attention select RUN``: the filters and sampling of ``mine`` applied to a candidate
store; writes ``RUN/selection.parquet``, the audit into ``RUN/manifest.json`` and ``RUN/audit.png``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._common import add_selection_flags, describe, fail, selection_options

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    select = sub.add_parser(
        "select",
        help="negatives from a candidate store (mine --out DIR), without searching again",
        description=(
            "Applies the rank window, score filters, positive-aware margins, the near-duplicate "
            "filter and the sampling to the candidates a store holds. Queries whose store list "
            "cannot provide k picks are counted (shortfall), never silently shorter. Writes "
            "RUN/selection.parquet, the audit into RUN/manifest.json and RUN/audit.png."
        ),
    )
    add = select.add_argument
    add("store", metavar="RUN", help="the candidate store directory")
    add_selection_flags(add, with_defaults=True)
    add("--no-plot", action="store_true", help="no audit.png")
    select.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ...candidate_store import open_store
    from ...select import save_selection, select_negatives

    if not os.path.isdir(args.store):
        return fail(
            "select", f"{args.store} is not a directory (a candidate store from mine --out)"
        )
    try:
        store = open_store(args.store)
        selection = select_negatives(store, **selection_options(args))
    except (ValueError, TypeError, ImportError) as exc:
        return fail("select", describe(exc))
    save_selection(store, selection, plot=not args.no_plot)
    audit = selection.audit
    print(
        f"selected {audit['selected']} negatives for {audit['queries']} queries from "
        f"{audit['candidates_seen']} candidates; {audit['queries_short']} queries short of "
        f"k by {audit['picks_missing']} picks in all (RUN/manifest.json has the audit)"
    )
    return 0
