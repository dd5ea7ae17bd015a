"""The ``ruvector-attention`` command (also ``python -m ruvector_attention``).

One subcommand per job, each in its own module of this package:

- ``ruvector-attention train`` (``cli/train/``) trains an embedding head with contrastive learning
  on labelled vectors (scikit-learn's digits by default) and reports test retrieval quality beside
  PCA and LDA baselines of the same dimension. See ``ruvector-attention train --help``.
- ``ruvector-attention mine`` (``cli/mine/``) mines hard negatives for every query against a
  corpus in a ``.npy`` file, in this process or on a Dask or Ray cluster; with ``--out DIR`` it
  writes a resumable candidate store instead.
- ``ruvector-attention select`` (``cli/select/``) filters and samples a store's candidates.
- ``ruvector-attention export`` (``cli/export/``) writes a store's selection with texts for
  sentence-transformers, FlagEmbedding or Tevatron.

Every command ends bad input and file-system problems with exit 2 and one line on stderr, and
Ctrl-C, SIGTERM and SIGHUP with one line and exit 130, 143 and 129, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from .export import add_parser as add_export
    from .mine import add_parser as add_mine
    from .select import add_parser as add_select
    from .train.command import add_parser as add_train

    parser = argparse.ArgumentParser(
        prog="ruvector-attention",
        description="Rust-backed contrastive and metric learning utilities: command-line jobs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub)
    add_mine(sub)
    add_select(sub)
    add_export(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from ..state import StateFileError
    from ._common import describe, exit_code, fail, stop_signals_raise

    try:
        with stop_signals_raise():
            return int(args.run(args))
    except KeyboardInterrupt as exc:  # outside training (which saves a checkpoint first)
        print(f"\nruvector-attention {args.command}: interrupted", file=sys.stderr)
        return exit_code(exc)
    except (OSError, StateFileError, MemoryError) as exc:  # a full disk, a permission, ...
        return fail(args.command, describe(exc))
