"""``ruvector-attention mine``: flags, input checks before any work, the mining, the output.

Inputs are ``.npy`` files: queries (Q, D), the corpus (N, D) float32 or float16 (memory-mapped,
never loaded whole), and optionally positives as corpus indices: (Q,) or (Q, P) integers, -1
padded. The result goes to ``--out`` as an ``.npz`` with ``indices`` (Q, k) int64 (-1 padded)
``scores`` (Q, k) float32 (NaN padded) and ``rescored`` (Q,) int64 (the candidates each query had
scored exactly), written atomically. With ``--scheduler ADDRESS``
the corpus is mined on that Dask cluster, with ``--ray ADDRESS`` on that Ray cluster, each worker
reading its row blocks from the file (which all of them must see at the same absolute path).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any, Optional

import numpy as np

from .._common import (
    SELECTION_OPTIONS,
    InputError,
    add_selection_flags,
    check_output_file,
    describe,
    fail,
    load_npy,
    selection_options,
)

__all__ = ["add_parser", "run"]

#: Corpus rows per Dask or Ray block (the in-process path chooses its own chunks).
_BLOCK_ROWS = 1 << 18


def add_parser(sub: Any) -> None:
    mine = sub.add_parser(
        "mine",
        help="hard negatives for every query against a corpus (.npy, memory-mapped)",
        description=(
            "Mines hard negatives for every query against the whole corpus: positive-aware "
            "(positives are never returned; margins relative to each query's positive score), "
            "with a rank window and score filters, best first or sampled. Bad input stops with "
            "exit 2 before any work; --out is written atomically."
        ),
    )
    add = mine.add_argument
    add("--queries", required=True, help=".npy file of queries (Q, D)")
    add("--corpus", required=True, help=".npy file of the corpus (N, D), float32 or float16")
    add("--positives", help=".npy file of positives: (Q,) or (Q, P) corpus indices, -1 padded")
    add_selection_flags(add, with_defaults=False)
    add("--exclude-self", action="store_true", help="query i is corpus row i: never pick it")
    cluster = mine.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler", help="address of a running Dask scheduler (needs the [dask] extra)"
    )
    cluster.add_argument(
        "--ray", metavar="ADDRESS", help="address of a running Ray cluster (needs the [ray] extra)"
    )
    add(
        "--out",
        required=True,
        help="output .npz (indices, scores), or a directory for a candidate store",
    )
    add("--candidates", type=int, help="store: best rows kept per query (default 100)")
    add("--query-block", type=int, help="store: queries per block written (default 4096)")
    add("--resume", action="store_true", help="store: continue an interrupted run in --out")
    add("--overwrite", action="store_true", help="store: replace what --out holds")
    add("--no-progress", action="store_true", help="no progress bar")
    mine.set_defaults(run=run)


def _positives(path: Optional[str], queries: int) -> Optional[list[np.ndarray]]:
    if path is None:
        return None
    arr = load_npy(path, "positives")
    if arr.dtype.kind not in "iu":
        raise InputError(f"positives must be integer corpus indices, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != queries:
        raise InputError(f"positives must be ({queries},) or ({queries}, P), got {arr.shape}")
    # -1 is the documented padding; any other negative value is a mistake, not padding.
    bad = np.argwhere(arr < -1)
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise InputError(
            f"positives of query {i} hold {int(arr[i, j])}: corpus indices are >= 0 and -1 is "
            "the only padding"
        )
    return [row[row >= 0] for row in arr]


def _dask_corpus(path: str, shape: tuple[int, int], dtype: np.dtype) -> Any:
    """The .npy corpus as a dask.array whose blocks each worker reads from the file itself."""
    import dask.array as da
    from dask import delayed

    blocks = []
    for start in range(0, shape[0], _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, shape[0])
        rows = delayed(_read_rows, pure=True)(path, start, stop)
        blocks.append(da.from_delayed(rows, shape=(stop - start, shape[1]), dtype=dtype))
    return da.concatenate(blocks, axis=0) if blocks else da.zeros((0, shape[1]), dtype=dtype)


def _ray_corpus(path: str, shape: tuple[int, int]) -> list[Any]:
    """The .npy corpus as Ray object references of row blocks, each read by a Ray worker."""
    import ray

    read = ray.remote(_read_rows)
    return [
        read.remote(path, start, min(start + _BLOCK_ROWS, shape[0]))
        for start in range(0, shape[0], _BLOCK_ROWS)
    ]


def _read_rows(path: str, start: int, stop: int) -> np.ndarray:
    return np.array(np.load(path, mmap_mode="r", allow_pickle=False)[start:stop])


_STORE_FLAGS = ("candidates", "query_block", "resume", "overwrite")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_mode(args: argparse.Namespace) -> Optional[str]:
    """The problem with the flags given for the output kind --out names, if any."""
    if args.out.endswith(".npz"):
        given = [n for n in _STORE_FLAGS if getattr(args, n) not in (None, False)]
        if given:
            return f"{_flag(given[0])} is for a candidate store; --out {args.out} is an .npz file"
        return None
    # The selection flags apply to an .npz result, and to a store at `select`.
    given = [n for n in SELECTION_OPTIONS if getattr(args, n) is not None]
    if given:
        return (
            f"{_flag(given[0])} filters or samples: with a candidate store (--out {args.out}) "
            f"give it to: ruvector-attention select {args.out} ..."
        )
    if args.ray:
        return "--ray does not write a candidate store yet: use --scheduler or no cluster"
    if args.resume and args.overwrite:
        return "--resume and --overwrite exclude each other"
    return None


def _check_store_out(args: argparse.Namespace) -> None:
    out = os.path.realpath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {args.out} exists and is not a directory")
    from ...candidate_store import holds_a_run  # the store's own rule (pyarrow stays unloaded)

    held = holds_a_run(out)
    if held and not (args.resume or args.overwrite):
        raise InputError(f"--out {args.out} is not empty: add --resume or --overwrite")
    if args.resume and not held:
        raise InputError(f"--out {args.out} holds no run to --resume")
    folder = os.path.dirname(out)
    if not os.path.isdir(folder):
        raise InputError(f"--out {args.out}: the folder {folder} does not exist")
    if not os.access(out if os.path.isdir(out) else folder, os.W_OK | os.X_OK):
        raise InputError(f"--out {args.out} is not writable")


def run(args: argparse.Namespace) -> int:
    from ..._atomic_file import write_atomically
    from ...corpus import mine_hard_negatives

    problem = _check_mode(args)
    if problem is not None:
        return fail("mine", problem)
    to_store = not args.out.endswith(".npz")
    try:
        if to_store:
            _check_store_out(args)
        else:
            check_output_file(args.out, "--out")
        queries = load_npy(args.queries, "queries")
        corpus = load_npy(args.corpus, "corpus", mmap=True)
        positives = _positives(args.positives, queries.shape[0] if queries.ndim else 0)
    except InputError as exc:
        return fail("mine", str(exc))
    options: dict[str, Any] = dict(
        positives=positives, exclude_self=args.exclude_self, progress=not args.no_progress
    )
    if to_store:
        options.update(
            candidates=100 if args.candidates is None else args.candidates,
            query_block=4096 if args.query_block is None else args.query_block,
            resume=args.resume,
            overwrite=args.overwrite,
        )
    else:
        options.update(selection_options(args))
    source: Any = corpus
    client = None
    ray_cluster = False
    if (args.scheduler or args.ray) and corpus.ndim != 2:
        return fail("mine", f"corpus must be a 2-D array (N, D), got shape {corpus.shape}")
    # Cluster workers read the file themselves, from their own working directories: an absolute
    # path, resolved here, names the same file for all of them.
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            return fail(
                "mine", '--scheduler needs the "dask" extra: pip install "ruvector-attention[dask]"'
            )
        try:
            client = Client(args.scheduler, timeout=30)
        except OSError as exc:
            return fail("mine", f"cannot reach the Dask scheduler at {args.scheduler}: {exc}")
        source = _dask_corpus(os.path.abspath(args.corpus), corpus.shape, corpus.dtype)
        where = f"the Dask cluster at {args.scheduler}"
    if args.ray:
        try:
            import ray
        except ImportError:
            return fail(
                "mine", '--ray needs the "ray" extra: pip install "ruvector-attention[ray]"'
            )
        try:
            ray.init(address=args.ray, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            return fail("mine", f"cannot reach the Ray cluster at {args.ray}: {exc}")
        ray_cluster = True
        if corpus.shape[0] > 0:
            source = _ray_corpus(os.path.abspath(args.corpus), corpus.shape)
        where = f"the Ray cluster at {args.ray}"
    if args.scheduler or args.ray:
        print(f"mining {queries.shape[0]} queries on {where}", file=sys.stderr, flush=True)
    try:
        if to_store:
            return _mine_store(queries, source, args.out, options)
        result = mine_hard_negatives(queries, source, **options)
    except (ValueError, TypeError, MemoryError) as exc:  # checked before any work
        return fail("mine", describe(exc))
    except KeyboardInterrupt:
        # Closing the client (below) releases its futures: the scheduler cancels their tasks.
        said = (
            f"the finished blocks are kept in {args.out}; --resume continues"
            if to_store
            else "nothing was written"
        )
        print(f"ruvector-attention mine: interrupted; {said}", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
        if ray_cluster:
            import ray

            ray.shutdown()  # the driver's tasks end with it
    buffer = io.BytesIO()
    rescored = result.rescored if result.rescored is not None else np.zeros(0, np.int64)
    np.savez(buffer, indices=result.indices, scores=result.scores, rescored=rescored)
    # (a candidate store was written block by block above and returned there)
    write_atomically(args.out, buffer.getvalue())
    found = int((result.indices >= 0).sum())
    work = (
        f"; scored exactly per query: mean {rescored.mean():.1f}, max {int(rescored.max())}"
        if rescored.size
        else ""
    )
    print(f"wrote {args.out}: {result.indices.shape[0]} queries, {found} negatives{work}")
    return 0


def _mine_store(queries: np.ndarray, corpus: Any, out: str, options: dict[str, Any]) -> int:
    from ...candidate_store import mine_candidates, open_store

    done_before = len(open_store(out).manifest["blocks"]["done"]) if options["resume"] else 0
    store = mine_candidates(queries, corpus, out, **options)
    blocks = store.manifest["blocks"]["total"]
    resumed = f" (resumed: {done_before} blocks were done)" if options["resume"] else ""
    print(
        f"wrote {out}: {store.queries} queries x up to {store.candidates} candidates "
        f"in {blocks} blocks{resumed}"
    )
    return 0
