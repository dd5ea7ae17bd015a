"""The ``ruvector-attention mine`` job: hard negatives for every query of a retrieval dataset
against a corpus in a ``.npy`` file (memory-mapped), in this process or on a Dask cluster."""

from __future__ import annotations

from .command import add_parser, run

__all__ = ["add_parser", "run"]
