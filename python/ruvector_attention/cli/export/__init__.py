"""The ``ruvector-attention export`` job: a store's selection with texts, as files that
sentence-transformers, FlagEmbedding and Tevatron train on."""

from __future__ import annotations

from .command import add_parser, run

__all__ = ["add_parser", "run"]
