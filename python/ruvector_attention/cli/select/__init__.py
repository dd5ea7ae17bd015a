"""The ``ruvector-attention select`` job: negatives chosen from a candidate store's lists
(written by ``ruvector-attention mine --out DIR``), without searching the corpus again."""

from __future__ import annotations

from .command import add_parser, run

__all__ = ["add_parser", "run"]
