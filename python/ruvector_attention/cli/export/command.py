"""``ruvector-attention export RUN --format FORMAT``: the store's selection with texts joined,
for sentence-transformers, FlagEmbedding or Tevatron (see ``ruvector_attention.export``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._common import describe, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from ...export import FORMATS

    export = sub.add_parser(
        "export",
        help="a store's selection as trainer-ready files (sentence-transformers, ...)",
        description=(
            "Joins the texts of queries, positives and selected negatives (from a column of "
            "your Parquet or JSON Lines files) and writes them in a trainer's format. An existing "
            "--out is left untouched unless --overwrite."
        ),
    )
    add = export.add_argument
    add("store", metavar="RUN", help="the candidate store directory, after select")
    add("--format", required=True, choices=list(FORMATS))
    add("--queries-text", required=True, help="Parquet or JSON Lines file of query texts")
    add("--corpus-text", required=True, help="Parquet or JSON Lines file of corpus texts")
    add("--text-column", default="text", help="the column holding texts (default text)")
    add("--id-column", default="id", help="the column holding row ids (default id; else order)")
    add("--out", required=True, help="the file to write (.parquet or .jsonl by format)")
    add("--overwrite", action="store_true", help="replace an existing --out")
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ...export import export_negatives

    if not os.path.isdir(args.store):
        return fail(
            "export", f"{args.store} is not a directory (a candidate store from mine --out)"
        )
    for flag, path in (("--queries-text", args.queries_text), ("--corpus-text", args.corpus_text)):
        if not os.path.isfile(path):
            return fail("export", f"{flag} file not found: {path}")
    folder = os.path.dirname(os.path.realpath(args.out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        return fail("export", f"--out {args.out}: the folder {folder} is missing or not writable")
    try:
        counts = export_negatives(
            args.store,
            args.format,
            args.out,
            queries_text=args.queries_text,
            corpus_text=args.corpus_text,
            text_column=args.text_column,
            id_column=args.id_column,
            overwrite=args.overwrite,
        )
    except (ValueError, TypeError, ImportError) as exc:
        return fail("export", describe(exc))
    print(
        f"wrote {args.out} ({args.format}): {counts['rows']} rows for {counts['queries']} "
        f"queries; {counts['queries_skipped']} queries left out"
    )
    return 0
