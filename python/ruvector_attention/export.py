"""Trainer-ready files from a store's selection: texts joined to the mined ids.

``export_negatives(store, "sentence-transformers", "train.parquet", queries_text=...,
corpus_text=...)`` joins the texts of the queries, their positives and their selected negatives
(see :func:`~ruvector_attention.save_selection`) and writes one of:

- ``"sentence-transformers"``: Parquet, one row per (query, positive) with the columns
  ``anchor``, ``positive``, ``negative_1`` ... ``negative_k`` (rows whose query has fewer than k
  negatives are left out, and counted). Load with::

      from datasets import load_dataset
      train = load_dataset("parquet", data_files="train.parquet", split="train")
      # sentence_transformers' MultipleNegativesRankingLoss takes these columns as they are

- ``"triplet"``: Parquet, one row per (query, positive, negative): ``anchor``, ``positive``,
  ``negative``. Loaded the same way.
- ``"flagembedding"``: JSON Lines ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``,
  FlagEmbedding's fine-tuning format. Load with::

      import json
      rows = [json.loads(line) for line in open("train.jsonl")]
      # or: FlagEmbedding's --train_data train.jsonl

- ``"tevatron"``: JSON Lines ``{"query_id", "query", "positive_passages", "negative_passages"}``,
  each passage ``{"docid", "title", "text"}``, Tevatron's training format. Load with::

      from datasets import load_dataset
      train = load_dataset("json", data_files="train.jsonl", split="train")

Texts come from a column (``text_column``, default ``"text"``) of a Parquet or JSON Lines file per
side; row ``i`` of the embeddings is the row whose ``id_column`` (default ``"id"``) is ``i``, or,
when the file has no such column, its ``i``-th row. A needed id that the file lacks is an error
naming it. Queries without positives are left out of every format but FlagEmbedding's.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from ._atomic_file import write_atomically
from .candidate_store import CandidateStore, StoreError, _pyarrow, open_store
from .errors import ArgumentError
from .select import SELECTION_FILE

__all__ = ["FORMATS", "export_negatives"]

FORMATS = ("sentence-transformers", "triplet", "flagembedding", "tevatron")


def export_negatives(
    store: Any,
    format: str,
    out: str,
    *,
    queries_text: str,
    corpus_text: str,
    text_column: str = "text",
    id_column: str = "id",
    overwrite: bool = False,
) -> dict[str, int]:
    """Writes the store's selection with texts as ``format`` to ``out`` (atomically); returns
    counts: ``rows`` written, ``queries`` exported, ``queries_skipped`` (no positive, or fewer
    than k negatives for the sentence-transformers format).

    Raises:
        StoreError: the store has no saved selection.
        ArgumentError: an unknown format, an existing ``out`` without ``overwrite``, a text file
            without ``text_column``, or an id it lacks.

    Examples:
        >>> import json, os, tempfile
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> folder = tempfile.mkdtemp()
        >>> corpus = np.random.default_rng(5).standard_normal((20, 8)).astype(np.float32)
        >>> store = ra.mine_candidates(corpus[:2], corpus, os.path.join(folder, "run"),
        ...                            positives=np.arange(2), candidates=5)
        >>> _ = ra.save_selection(store, ra.select_negatives(store, k=2), plot=False)
        >>> for side, n in (("q", 2), ("c", 20)):
        ...     with open(os.path.join(folder, f"{side}.jsonl"), "w") as f:
        ...         _ = f.writelines(json.dumps({"id": i, "text": f"{side}{i}"}) + chr(10)
        ...                       for i in range(n))
        >>> out = os.path.join(folder, "train.jsonl")
        >>> ra.export_negatives(store, "flagembedding", out,
        ...                     queries_text=os.path.join(folder, "q.jsonl"),
        ...                     corpus_text=os.path.join(folder, "c.jsonl"))["rows"]
        2
        >>> with open(out) as f:
        ...     json.loads(f.readline())["pos"]
        ['c0']
    """
    if format not in FORMATS:
        raise ArgumentError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if os.path.exists(out) and not overwrite:
        raise ArgumentError(f"{out} exists: pass overwrite=True to replace it")
    # Read from disk even when given an opened store: its selection may be newer than the object.
    store = open_store(store.path if isinstance(store, CandidateStore) else os.fspath(store))
    pa, pq = _pyarrow()
    selection_path = os.path.join(store.path, SELECTION_FILE)
    if not os.path.exists(selection_path):
        raise StoreError(f"{store.path} has no selection: run select first")
    k = int(store.manifest["selection"]["parameters"]["k"])
    negatives = pq.read_table(selection_path).column("negatives").to_pylist()
    positives: list[list[int]] = []
    for block in store.blocks():
        positives.extend(p.tolist() for p in block["positives"])
    q_ids = range(len(negatives))
    c_ids = {c for lst in negatives for c in lst} | {c for lst in positives for c in lst}
    q_text = _texts(queries_text, "queries_text", text_column, id_column, set(q_ids))
    c_text = _texts(corpus_text, "corpus_text", text_column, id_column, c_ids)
    counts = {"rows": 0, "queries": 0, "queries_skipped": 0}
    if format in ("sentence-transformers", "triplet"):
        columns: dict[str, list[str]] = {"anchor": [], "positive": []}
        names = [f"negative_{j + 1}" for j in range(k)] if format != "triplet" else ["negative"]
        for name in names:
            columns[name] = []
        for q, (pos, neg) in enumerate(zip(positives, negatives)):
            if not pos or (format == "sentence-transformers" and len(neg) < k) or not neg:
                counts["queries_skipped"] += 1
                continue
            counts["queries"] += 1
            for p in pos:
                if format == "triplet":
                    for n in neg:
                        columns["anchor"].append(q_text[q])
                        columns["positive"].append(c_text[p])
                        columns["negative"].append(c_text[n])
                else:
                    columns["anchor"].append(q_text[q])
                    columns["positive"].append(c_text[p])
                    for name, n in zip(names, neg):
                        columns[name].append(c_text[n])
        counts["rows"] = len(columns["anchor"])
        buffer = io.BytesIO()
        pq.write_table(pa.table({n: pa.array(v, pa.string()) for n, v in columns.items()}), buffer)
        write_atomically(out, buffer.getvalue())
        return counts
    lines = []
    for q, (pos, neg) in enumerate(zip(positives, negatives)):
        if format == "tevatron" and not pos:
            counts["queries_skipped"] += 1
            continue
        if format == "flagembedding":
            record: dict[str, Any] = {
                "query": q_text[q],
                "pos": [c_text[p] for p in pos],
                "neg": [c_text[n] for n in neg],
            }
        else:
            record = {
                "query_id": str(q),
                "query": q_text[q],
                "positive_passages": [_passage(p, c_text) for p in pos],
                "negative_passages": [_passage(n, c_text) for n in neg],
            }
        lines.append(json.dumps(record, ensure_ascii=False))
        counts["queries"] += 1
    counts["rows"] = len(lines)
    write_atomically(out, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    return counts


def _passage(docid: int, texts: dict[int, str]) -> dict[str, str]:
    return {"docid": str(docid), "title": "", "text": texts[docid]}


def _texts(
    path: str, what: str, text_column: str, id_column: str, needed: set[int]
) -> dict[int, str]:
    """id -> text for the needed ids, from a Parquet or JSON Lines file."""
    _, pq = _pyarrow()
    try:
        if path.endswith((".jsonl", ".json", ".ndjson")):
            import pyarrow.json as pj

            table = pj.read_json(path)
        else:
            table = pq.read_table(path)
    except OSError as exc:
        raise ArgumentError(f"{what}: cannot read {path}: {exc}") from exc
    except Exception as exc:  # pyarrow's parse errors (ArrowInvalid) are not OSErrors
        raise ArgumentError(f"{what}: {path} is not a Parquet or JSON Lines file: {exc}") from exc
    if text_column not in table.column_names:
        raise ArgumentError(
            f"{what}: {path} has no column {text_column!r} "
            f"(columns: {', '.join(table.column_names)})"
        )
    texts = table.column(text_column).to_pylist()
    if id_column in table.column_names:
        ids = table.column(id_column).to_pylist()
    else:
        ids = list(range(len(texts)))
    lookup = {}
    for i, t in zip(ids, texts):
        try:
            key = int(i)
        except (TypeError, ValueError):
            raise ArgumentError(f"{what}: {path} has a non-integer {id_column} {i!r}") from None
        lookup[key] = "" if t is None else str(t)
    missing = sorted(needed - lookup.keys())
    if missing:
        raise ArgumentError(
            f"{what}: {path} has no text for id {missing[0]} ({len(missing)} needed ids missing)"
        )
    return lookup
