"""A candidate store: every query's best corpus candidates, mined once, kept on disk.

``mine_candidates(queries, corpus, "run/")`` mines, for every query, its ``candidates`` best
corpus rows (positives and, with ``exclude_self``, the query's own row left out: the ranking that
:func:`~ruvector_attention.mine_hard_negatives` windows and filters) and writes them to a
directory:

- ``block-000000.parquet``, ... : one Parquet file (one row group) per block of
  ``query_block`` queries, with the columns

  - ``query`` (int64): the query's row;
  - ``candidates`` (list of int64): corpus rows, best first (ties by lower row), at most
    ``candidates``;
  - ``scores`` (list of float64): their cosine similarity to the query, computed in float64 from
    the stored rows (float16 / float32 widened exactly);
  - ``positive_similarity`` (list of float64): each candidate's highest cosine to any of the
    query's positives (NaN without positives), for ``max_positive_similarity``;
  - ``positives`` (list of int64): the query's positives (never among the candidates);
  - ``positive_score`` (float64): the query's lowest cosine to its positives (NaN without);
  - ``complete`` (bool): the list holds every candidate the query has (so a selection from it is
    never short for lack of candidates);

- ``manifest.json``: the format, the package version, the parameters, the inputs' shapes, dtypes
  and SHA-256 digests, and the blocks done with each file's digest.

A block file is written whole and atomically, then the manifest, so a run killed at any moment
(``kill -9`` included) leaves finished blocks and a manifest that lists only finished ones;
``resume=True`` checks that the inputs and parameters are the same (refusing by name otherwise)
and mines the blocks not yet done. A block's file depends only on the inputs and parameters, so
the finished store is the same, byte for byte in its block files, however often it was resumed.
Needs ``pyarrow`` (the ``[store]`` extra).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from . import _validate as check
from ._arrays import float_matrix, from_interchange
from ._atomic_file import is_leftover, write_atomically
from ._candidate_rows import candidate_block, group_by_query
from ._corpus_engine import _is_dask_array, _positive_pairs, progress_bar
from .errors import ArgumentError, RuvectorError

__all__ = ["CandidateStore", "StoreError", "mine_candidates", "open_store"]

FORMAT = "ruvector-attention candidate store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Bytes hashed at a time (a memory-mapped corpus is read once, in order).
_HASH_CHUNK = 1 << 24


class StoreError(RuvectorError, ValueError):
    """A candidate store that cannot be used as asked: missing or damaged files, or a resume with
    other inputs or parameters.

    Examples:
        >>> import tempfile
        >>> import ruvector_attention as ra
        >>> try:
        ...     ra.open_store(tempfile.mkdtemp())
        ... except ra.StoreError as exc:
        ...     print("not a store:", "no manifest.json" in str(exc))
        not a store: True
    """


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            'a candidate store needs pyarrow: pip install "ruvector-attention[store]"'
        ) from exc
    return pa, pq


def array_digest(array: Any) -> str:
    """SHA-256 of an array's shape, dtype and values in C order (read in chunks of rows, so a
    memory map or a dask.array is never loaded whole)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(array.shape), np.dtype(array.dtype).str]).encode())
    rows = int(array.shape[0]) if array.ndim else 0
    row_items = int(np.prod(array.shape[1:], dtype=np.int64))
    row_bytes = max(1, row_items * np.dtype(array.dtype).itemsize)
    step = max(1, _HASH_CHUNK // row_bytes)
    if array.ndim == 0:
        h.update(np.ascontiguousarray(array).tobytes())
    for start in range(0, rows, step):
        part = array[start : start + step]
        if hasattr(part, "compute"):
            part = part.compute()
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def _positives_digest(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> str:
    order = np.lexsort((cols, rows))
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(rows[order]).tobytes())
    h.update(np.ascontiguousarray(cols[order]).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CandidateStore:
    """An opened store: its directory and manifest; read blocks with :meth:`blocks`.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> import ruvector_attention as ra
        >>> rng = np.random.default_rng(0)
        >>> corpus = rng.standard_normal((50, 8)).astype(np.float32)
        >>> run = os.path.join(tempfile.mkdtemp(), "run")
        >>> store = ra.mine_candidates(corpus[:6], corpus, run, candidates=5, exclude_self=True)
        >>> store.queries, store.candidates, len(store.manifest["blocks"]["done"])
        (6, 5, 1)
    """

    path: str
    manifest: dict[str, Any]

    @property
    def queries(self) -> int:
        return int(self.manifest["inputs"]["queries"]["shape"][0])

    @property
    def candidates(self) -> int:
        return int(self.manifest["parameters"]["candidates"])

    @property
    def finished(self) -> bool:
        blocks = self.manifest["blocks"]
        return bool(len(blocks["done"]) == blocks["total"])

    def block_path(self, block: int) -> str:
        return os.path.join(self.path, f"block-{block:06d}.parquet")

    def blocks(self) -> Iterator[dict[str, Any]]:
        """Each finished block in query order, as a dict of NumPy arrays: ``query`` (B,),
        ``candidates`` / ``scores`` / ``positive_similarity`` (B, C) padded with -1 / NaN,
        ``count`` (B,) candidates held, ``positives`` (B lists), ``positive_score`` (B,),
        ``complete`` (B,)."""
        _, pq = _pyarrow()
        digests = self.manifest["blocks"]["digests"]
        for block in sorted(int(b) for b in self.manifest["blocks"]["done"]):
            path = self.block_path(block)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: block {block} is listed but unreadable: {exc}"
                ) from exc
            if hashlib.sha256(data).hexdigest() != digests[str(block)]:
                raise StoreError(
                    f"{path} does not match the digest in the manifest (changed or damaged)"
                )
            try:
                table = pq.read_table(io.BytesIO(data))
                arrays = _block_arrays(table, self.candidates)
            except Exception as exc:  # pyarrow's errors (ArrowInvalid, KeyError of a column)
                raise StoreError(f"{path} is not a block of this store: {exc}") from exc
            yield arrays


def _block_arrays(table: Any, width: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "query": table.column("query").to_numpy(),
        "positive_score": table.column("positive_score").to_numpy(),
        "positives": [np.asarray(p, np.int64) for p in table.column("positives").to_pylist()],
        "complete": table.column("complete").to_numpy(zero_copy_only=False),
    }
    for name, fill, dtype in (
        ("candidates", -1, np.int64),
        ("scores", np.nan, np.float64),
        ("positive_similarity", np.nan, np.float64),
    ):
        column = table.column(name).combine_chunks()
        lengths = np.diff(column.offsets.to_numpy())
        values = column.values.to_numpy(zero_copy_only=False)
        padded = np.full((len(lengths), width), fill, dtype)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        cols = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        padded[rows, cols] = values
        out[name] = padded
        out["count"] = lengths.astype(np.int64)
    return out


def open_store(path: str) -> CandidateStore:
    """Opens a store written by :func:`mine_candidates` (finished or not); its manifest is
    checked whole (a damaged one raises :class:`StoreError`).

    Examples:
        >>> import numpy as np, tempfile, os
        >>> import ruvector_attention as ra
        >>> corpus = np.random.default_rng(1).standard_normal((30, 4)).astype(np.float32)
        >>> run = os.path.join(tempfile.mkdtemp(), "run")
        >>> _ = ra.mine_candidates(corpus[:3], corpus, run, candidates=4)
        >>> store = ra.open_store(run)
        >>> store.finished, store.queries
        (True, 3)
    """
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise StoreError(f"{path} is not a candidate store (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{manifest_path} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{manifest_path} is not a candidate store manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise StoreError(
            f"{manifest_path} has format version {manifest.get('version')}; this package reads "
            f"version {FORMAT_VERSION}"
        )
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise StoreError(f"{manifest_path} is damaged: {problem}")
    return CandidateStore(path, manifest)


def _manifest_problem(manifest: dict[str, Any]) -> Optional[str]:
    """What makes a manifest unusable (a key missing, a value of the wrong kind), or None."""

    def count(value: object, minimum: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    parameters, inputs, blocks = (manifest.get(k) for k in ("parameters", "inputs", "blocks"))
    if not (isinstance(parameters, dict) and isinstance(inputs, dict) and isinstance(blocks, dict)):
        return "parameters, inputs and blocks must be objects"
    if not count(parameters.get("candidates"), 1) or not count(parameters.get("query_block"), 1):
        return "parameters.candidates and parameters.query_block must be integers >= 1"
    queries = inputs.get("queries")
    shape = queries.get("shape") if isinstance(queries, dict) else None
    if not (isinstance(shape, list) and len(shape) == 2 and all(count(v, 0) for v in shape)):
        return "inputs.queries.shape must be two integers >= 0"
    total, done, digests = blocks.get("total"), blocks.get("done"), blocks.get("digests")
    if total != -(-shape[0] // parameters["query_block"]):
        return f"blocks.total must be {-(-shape[0] // parameters['query_block'])}, got {total!r}"
    if not isinstance(done, list) or not all(count(b, 0) and b < total for b in done):
        return "blocks.done must list block numbers below blocks.total"
    if len(set(done)) != len(done):
        return "blocks.done lists a block twice"
    if not isinstance(digests, dict) or not all(
        isinstance(digests.get(str(b)), str) and len(digests[str(b)]) == 64 for b in done
    ):
        return "blocks.digests must hold a SHA-256 for every block done"
    return None


def mine_candidates(
    queries: object,
    corpus: object,
    out: str,
    *,
    positives: object = None,
    candidates: int = 100,
    exclude_self: bool = False,
    query_block: int = 4096,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> CandidateStore:
    """Mines every query's best ``candidates`` corpus rows into a store at ``out`` (see the
    module for the layout). ``corpus`` is anything :func:`mine_hard_negatives` takes (a NumPy
    array or memory map, a dask.array, ...); ``positives`` as there.

    Args:
        out: the store's directory. It must not exist (or be empty), unless ``resume`` (continue
            the run it holds) or ``overwrite`` (replace it).
        candidates: rows kept per query (>= 1).
        query_block: queries per block: the unit written at once and redone by a resume.
        resume: continue an interrupted run with the same inputs and parameters.
        overwrite: replace whatever ``out`` holds.
        progress: a progress bar over the blocks (tqdm, when installed).

    Raises:
        StoreError: ``out`` holds something and neither ``resume`` nor ``overwrite`` is given,
            or a resume whose inputs or parameters differ from the store's (named).

    Examples:
        >>> import numpy as np, tempfile, os
        >>> import ruvector_attention as ra
        >>> corpus = np.random.default_rng(2).standard_normal((40, 8)).astype(np.float32)
        >>> run = os.path.join(tempfile.mkdtemp(), "run")
        >>> store = ra.mine_candidates(corpus[:5], corpus, run, positives=np.arange(5),
        ...                            candidates=6, query_block=2)
        >>> store.manifest["blocks"]["total"], sorted(os.listdir(run))[:2]
        (3, ['block-000000.parquet', 'block-000001.parquet'])
        >>> block = next(store.blocks())
        >>> block["candidates"].shape, bool((block["candidates"] != block["query"][:, None]).all())
        ((2, 6), True)
    """
    q = float_matrix(queries, "queries", min_rows=0)
    if not _is_dask_array(corpus):
        corpus = from_interchange(corpus, "corpus")
    shape = getattr(corpus, "shape", None)
    if shape is None or len(shape) != 2 or (shape[1] != q.shape[1] and shape[0] > 0):
        raise ArgumentError(f"corpus must be (N, {q.shape[1]}), got shape {shape}")
    n_corpus = int(shape[0])
    candidates = check.positive_int("candidates", candidates)
    query_block = check.positive_int("query_block", query_block)
    exclude_self = check.boolean("exclude_self", exclude_self)
    if resume and overwrite:
        raise ArgumentError("resume and overwrite exclude each other")
    pos_rows, pos_cols = _positive_pairs(positives, q.shape[0], n_corpus)
    pa, pq = _pyarrow()

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "package_version": _package_version(),
        "parameters": {
            "candidates": candidates,
            "exclude_self": exclude_self,
            "query_block": query_block,
        },
        "inputs": {
            "queries": _describe(q, array_digest(q)),
            "corpus": _describe(corpus, array_digest(corpus)),
            "positives": {
                "pairs": int(pos_rows.size),
                "sha256": _positives_digest(pos_rows, pos_cols),
            },
        },
        "blocks": {"total": -(-q.shape[0] // query_block), "done": [], "digests": {}},
    }
    manifest = _start(out, manifest, resume=resume, overwrite=overwrite)
    store = CandidateStore(out, manifest)
    by_query = group_by_query(pos_rows, pos_cols, q.shape[0])
    done = set(manifest["blocks"]["done"])
    todo = [b for b in range(manifest["blocks"]["total"]) if b not in done]
    one = lambda _: 1  # noqa: E731
    bar = progress_bar(
        todo, progress, total=len(todo), size=one, unit="block", desc="mining candidates"
    )
    for block in bar:
        start, stop = block * query_block, min((block + 1) * query_block, q.shape[0])
        block_rows = candidate_block(
            q, corpus, np.arange(start, stop), by_query, candidates, exclude_self, n_corpus
        )
        table = _table(pa, block_rows)
        buffer = io.BytesIO()
        # Fixed writer options: a block's bytes depend on its data (and the pyarrow version) only.
        pq.write_table(table, buffer, compression="zstd", row_group_size=max(1, stop - start))
        data = buffer.getvalue()
        write_atomically(store.block_path(block), data)
        manifest["blocks"]["done"].append(block)
        manifest["blocks"]["digests"][str(block)] = hashlib.sha256(data).hexdigest()
        _write_manifest(out, manifest)
    return store


def _package_version() -> str:
    from . import __version__

    return str(__version__)


def _describe(array: Any, digest: str) -> dict[str, Any]:
    return {
        "shape": [int(s) for s in array.shape],
        "dtype": np.dtype(array.dtype).str,
        "sha256": digest,
    }


def _write_manifest(out: str, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    write_atomically(os.path.join(out, MANIFEST), text.encode())


def holds_a_run(out: str) -> bool:
    """Whether the directory ``out`` holds anything besides the temporary files a killed write
    leaves (which a start removes): what decides between a fresh start, a resume and a refusal."""
    return os.path.isdir(out) and any(not is_leftover(name) for name in os.listdir(out))


def _start(out: str, fresh: dict[str, Any], *, resume: bool, overwrite: bool) -> dict[str, Any]:
    """The manifest to continue from: the existing one on resume (checked against ``fresh``),
    else ``fresh`` written into an empty directory. Temporary files of writes a killed run left
    behind do not count, and are removed."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise StoreError(f"{out} exists and is not a directory")
    exists = holds_a_run(out)
    for name in filter(is_leftover, os.listdir(out) if os.path.isdir(out) else []):
        os.unlink(os.path.join(out, name))
    if resume:
        if not exists:
            raise StoreError(f"{out} holds no run to resume")
        old = open_store(out).manifest
        for section in ("parameters", "inputs"):
            for key, value in fresh[section].items():
                if old[section].get(key) != value:
                    raise StoreError(
                        f"cannot resume {out}: {section[:-1]} {key!r} differs from the stored "
                        f"run's ({old[section].get(key)!r} there, {value!r} now)"
                    )
        store = CandidateStore(out, old)
        old["blocks"]["done"] = [
            b for b in old["blocks"]["done"] if os.path.exists(store.block_path(b))
        ]
        return old
    if exists:
        if not overwrite:
            raise StoreError(f"{out} is not empty: pass resume=True or overwrite=True")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    _write_manifest(out, fresh)
    return fresh


def _table(pa: Any, block: dict[str, Any]) -> Any:
    """A block (as :func:`candidate_block` returns it) as the store's Parquet table."""
    counts = block["count"]
    keep = np.arange(block["candidates"].shape[1])[None, :] < counts[:, None]

    def lists(values: npt.NDArray[Any], lengths: npt.NDArray[np.int64], kind: Any) -> Any:
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, kind))

    positives = block["positives"]
    pos_lengths = np.array([len(p) for p in positives], np.int64)
    return pa.table(
        {
            "query": pa.array(block["query"]),
            "candidates": lists(block["candidates"][keep], counts, pa.int64()),
            "scores": lists(block["scores"][keep], counts, pa.float64()),
            "positive_similarity": lists(block["positive_similarity"][keep], counts, pa.float64()),
            "positives": lists(
                np.concatenate([np.zeros(0, np.int64), *positives]), pos_lengths, pa.int64()
            ),
            "positive_score": pa.array(block["positive_score"], pa.float64()),
            "complete": pa.array(block["complete"], pa.bool_()),
        }
    )
