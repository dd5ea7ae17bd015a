"""`mine --out DIR`, `select` and `export` run as subprocesses: the store, the selection and
every export format read back (with `datasets` where it is installed), texts joined by id."""

import json
import subprocess
import sys

import numpy as np
import pytest

import ruvector_attention as ra
from frameworks import require

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

BASE = [sys.executable, "-m", "ruvector_attention"]


def run(*args, cwd):
    return subprocess.run([*BASE, *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def dataset(tmp_path, rng):
    corpus = rng.standard_normal((300, 12)).astype(np.float32)
    queries = corpus[:25] + 0.2 * rng.standard_normal((25, 12)).astype(np.float32)
    positives = np.stack([np.arange(25), np.full(25, -1)], axis=1)
    positives[::5, 1] = np.arange(100, 105)  # some queries have two positives
    for name, arr in (("q", queries), ("c", corpus), ("p", positives)):
        np.save(tmp_path / f"{name}.npy", arr)
    # Texts in shuffled order, joined by their id column.
    for side, n in (("queries", 25), ("corpus", 300)):
        order = rng.permutation(n)
        table = pa.table({"id": order, "text": [f"{side} text {i}" for i in order]})
        pq.write_table(table, tmp_path / f"{side}.parquet")
    return queries, corpus, positives


def _mine_store(tmp_path, *extra):
    return run("mine", "--no-progress", "--queries", "q.npy", "--corpus", "c.npy",
               "--positives", "p.npy", "--out", "run", "--candidates", 40,
               "--query-block", 6, *extra, cwd=tmp_path)  # fmt: skip


def test_mine_select_and_the_api_agree(tmp_path, dataset):
    queries, corpus, positives = dataset
    done = _mine_store(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "25 queries x up to 40 candidates in 5 blocks" in done.stdout
    done = run("select", "run", "--k", 4, "--range-min", 1, "--relative-margin", 0.05,
               "--max-positive-similarity", 0.6, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    pos = [row[row >= 0] for row in positives]
    store = ra.mine_candidates(queries, corpus, str(tmp_path / "api"), positives=pos,
                               candidates=40, query_block=6)  # fmt: skip
    for block in range(5):  # the command's store is the API's, byte for byte
        with open(store.block_path(block), "rb") as a:
            assert a.read() == (tmp_path / "run" / f"block-{block:06d}.parquet").read_bytes()
    want = ra.select_negatives(store, k=4, range_min=1, relative_margin=0.05,
                               max_positive_similarity=0.6)  # fmt: skip
    got = pq.read_table(tmp_path / "run" / "selection.parquet")
    assert got.column("negatives").to_pylist() == [r[r >= 0].tolist() for r in want.indices]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    audit = manifest["selection"]["audit"]
    assert sum(audit["removed"].values()) + audit["not_drawn"] + audit["selected"] == 25 * 40
    assert (tmp_path / "run" / "audit.png").exists()
    # A finished run resumed redoes nothing and changes nothing.
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").glob("block-*")}
    done = _mine_store(tmp_path, "--resume")
    assert done.returncode == 0 and "(resumed: 5 blocks were done)" in done.stdout
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "run").glob("block-*")}


def test_a_resume_with_other_inputs_is_refused_by_name(tmp_path, dataset):
    assert _mine_store(tmp_path).returncode == 0
    np.save(tmp_path / "p.npy", np.arange(25))
    done = _mine_store(tmp_path, "--resume")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "input 'positives' differs" in done.stderr
    done = _mine_store(tmp_path)
    assert done.returncode == 2 and "is not empty: add --resume or --overwrite" in done.stderr


def test_a_run_killed_before_its_first_manifest_starts_fresh(tmp_path, dataset):
    # Only the temporary file of a killed first manifest write: the command starts the store
    # (and clears it), as the API does; with --resume it says there is no run.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".manifest.json.k1ll3d.tmp").write_bytes(b"{")
    done = _mine_store(tmp_path, "--resume")
    assert done.returncode == 2 and "holds no run to --resume" in done.stderr
    done = _mine_store(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "run").glob(".*.tmp"))


def _exported(tmp_path, fmt, out):
    done = run("export", "run", "--format", fmt, "--queries-text", "queries.parquet",
               "--corpus-text", "corpus.parquet", "--out", out, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tmp_path / out


def test_every_export_format_holds_the_right_texts(tmp_path, dataset):
    _, _, positives = dataset
    assert _mine_store(tmp_path).returncode == 0
    assert run("select", "run", "--k", 3, "--no-plot", cwd=tmp_path).returncode == 0
    negatives = pq.read_table(tmp_path / "run" / "selection.parquet").column("negatives")
    negatives = negatives.to_pylist()
    pos = [row[row >= 0].tolist() for row in positives]

    def text(side, i):
        return f"{side} text {i}"

    st = pq.read_table(_exported(tmp_path, "sentence-transformers", "st.parquet")).to_pylist()
    expected = [
        {"anchor": text("queries", q), "positive": text("corpus", p),
         **{f"negative_{j + 1}": text("corpus", n) for j, n in enumerate(negatives[q])}}
        for q in range(25) for p in pos[q]
    ]  # fmt: skip
    assert st == expected and len(st) == 30  # one row per (query, positive)
    triplets = pq.read_table(_exported(tmp_path, "triplet", "tri.parquet")).to_pylist()
    assert len(triplets) == 30 * 3 and triplets[0] == {
        "anchor": text("queries", 0), "positive": text("corpus", 0),
        "negative": text("corpus", negatives[0][0]),
    }  # fmt: skip
    flag = [
        json.loads(x)
        for x in _exported(tmp_path, "flagembedding", "f.jsonl").read_text().splitlines()
    ]
    assert flag[7] == {
        "query": text("queries", 7),
        "pos": [text("corpus", 7)],
        "neg": [text("corpus", n) for n in negatives[7]],
    }
    tev = [
        json.loads(x) for x in _exported(tmp_path, "tevatron", "t.jsonl").read_text().splitlines()
    ]
    assert tev[5]["query_id"] == "5" and tev[5]["query"] == text("queries", 5)
    assert [p["docid"] for p in tev[5]["positive_passages"]] == ["5", "101"]
    assert [p["text"] for p in tev[5]["negative_passages"]] == [
        text("corpus", n) for n in negatives[5]
    ]
    # An existing output is left alone without --overwrite.
    done = run("export", "run", "--format", "tevatron", "--queries-text", "queries.parquet",
               "--corpus-text", "corpus.parquet", "--out", "t.jsonl", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "exists" in done.stderr


@pytest.mark.datasets
def test_sentence_transformers_files_load_with_datasets(tmp_path, dataset):
    datasets = require("datasets", "datasets")
    assert _mine_store(tmp_path).returncode == 0
    assert run("select", "run", "--k", 2, "--no-plot", cwd=tmp_path).returncode == 0
    path = _exported(tmp_path, "sentence-transformers", "st.parquet")
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert loaded.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert len(loaded) == 30
    tev = datasets.load_dataset("json", data_files=str(_exported(tmp_path, "tevatron", "t.jsonl")),
                                split="train")  # fmt: skip
    assert tev[0]["positive_passages"][0]["docid"] == "0"


@pytest.mark.parametrize(
    "args, message",
    [
        (["select", "nowhere"], "is not a directory"),
        (["select", ".", "--k", "3"], "is not a candidate store"),
        (["export", "run", "--format", "tevatron", "--queries-text", "missing.parquet",
          "--corpus-text", "corpus.parquet", "--out", "t.jsonl"], "file not found"),
        (["export", "run", "--format", "tevatron", "--queries-text", "queries.parquet",
          "--corpus-text", "corpus.parquet", "--out", "t.jsonl", "--text-column", "body"],
         "has no column 'body'"),
        (["export", "run", "--format", "tevatron", "--queries-text", "queries.parquet",
          "--corpus-text", "short.parquet", "--out", "t.jsonl"], "has no text for id"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2(tmp_path, dataset, args, message):
    assert _mine_store(tmp_path).returncode == 0
    assert run("select", "run", "--k", 2, "--no-plot", cwd=tmp_path).returncode == 0
    pq.write_table(pa.table({"id": [0, 1], "text": ["a", "b"]}), tmp_path / "short.parquet")
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
