"""The candidate store and selection from it: against a float64 brute force, against mining
directly, across crashes (kill -9, then resume), and with inputs that do not match."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
import ruvector_attention as ra

pytest.importorskip("pyarrow")


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def brute_force(
    queries,
    corpus,
    positives,
    *,
    exclude_self=False,
    k=10,
    range_min=0,
    range_max=None,
    min_score=None,
    max_score=None,
    absolute_margin=None,
    relative_margin=None,
    max_positive_similarity=None,
    sampling="top",
    seed=None,
):
    """mine_hard_negatives' definitions (and max_positive_similarity) in float64, row by row."""
    uq, uc = _unit(queries), _unit(corpus)
    sims = uq @ uc.T
    seed_key = int(np.random.SeedSequence(seed).generate_state(2, np.uint32).view(np.uint64)[0])
    out = []
    for i in range(len(queries)):
        pos = np.asarray(positives[i], np.int64) if positives is not None else np.zeros(0, int)
        excluded = set(pos.tolist()) | ({i} if exclude_self else set())
        ranking = [c for c in np.lexsort((np.arange(len(corpus)), -sims[i])) if c not in excluded]
        end = len(ranking) if range_max is None else range_max
        pos_score = sims[i, pos].min() if pos.size else np.nan
        passing = []
        for c in ranking[range_min:end]:
            s = sims[i, c]
            if min_score is not None and s < min_score:
                continue
            if max_score is not None and s > max_score:
                continue
            if pos.size and absolute_margin is not None and s > pos_score - absolute_margin:
                continue
            if pos.size and relative_margin is not None and s > pos_score * (1 - relative_margin):
                continue
            if (
                max_positive_similarity is not None
                and pos.size
                and (uc[c] @ uc[pos].T).max() >= max_positive_similarity
            ):
                continue
            passing.append(c)
        passing = np.array(passing, np.int64)
        if sampling == "random":
            keys = reference.corpus_keys(seed_key, np.full(len(passing), i, np.int64), passing)
            passing = passing[np.lexsort((passing, -keys))]
        out.append(passing[:k])
    return out


def _data(rng, n=400, d=16, q=30, positives_per_query=2):
    corpus = rng.standard_normal((n, d)).astype(np.float32)
    queries = corpus[:q] + 0.3 * rng.standard_normal((q, d)).astype(np.float32)
    # Each query's first positive is the row it was made from (a high positive score, so the
    # margins leave candidates); the others are random rows.
    positives = [
        np.concatenate([[i], rng.choice(n, positives_per_query - 1, replace=False)])
        for i in range(q)
    ]
    return queries, corpus, positives


def _settings(rng):
    s = {"k": int(rng.integers(1, 12)), "range_min": int(rng.integers(0, 6))}
    if rng.random() < 0.5:
        s["range_max"] = s["range_min"] + int(rng.integers(0, 40))
    if rng.random() < 0.3:
        s["min_score"] = float(rng.uniform(-0.5, 0.2))
    if rng.random() < 0.3:
        s["max_score"] = float(rng.uniform(0.0, 0.6))
    if rng.random() < 0.4:
        s["absolute_margin"] = float(rng.uniform(0, 0.2))
    if rng.random() < 0.4:
        s["relative_margin"] = float(rng.uniform(0, 0.5))
    if rng.random() < 0.4:
        s["max_positive_similarity"] = float(rng.uniform(0.1, 0.5))
    return s


def _as_lists(indices):
    return [row[row >= 0] for row in indices]


def test_select_equals_a_float64_brute_force_across_filter_settings(rng, tmp_path):
    queries, corpus, positives = _data(rng)
    store = ra.mine_candidates(
        queries,
        corpus,
        str(tmp_path / "run"),
        positives=positives,
        candidates=len(corpus),
        query_block=7,
        exclude_self=True,
    )
    for trial in range(40):
        s = _settings(rng)
        if trial % 2:
            s.update(sampling="random", seed=trial)
        chosen = ra.select_negatives(store, **s)
        want = brute_force(queries, corpus, positives, exclude_self=True, **s)
        assert not chosen.shortfall.any()  # a complete store is never short
        for i, (got, ref) in enumerate(zip(_as_lists(chosen.indices), want)):
            np.testing.assert_array_equal(got, ref, err_msg=f"query {i}, {s}")


def test_a_cut_store_reports_what_it_cannot_provide_and_is_right_otherwise(rng, tmp_path):
    queries, corpus, positives = _data(rng)
    store = ra.mine_candidates(
        queries, corpus, str(tmp_path / "run"), positives=positives, candidates=25, query_block=8
    )
    seen_short = 0
    for _ in range(40):
        s = _settings(rng)
        chosen = ra.select_negatives(store, **s)
        want = brute_force(queries, corpus, positives, **s)
        for i, (got, ref) in enumerate(zip(_as_lists(chosen.indices), want)):
            short = int(chosen.shortfall[i])
            seen_short += short > 0
            if short == 0:
                np.testing.assert_array_equal(got, ref, err_msg=f"query {i}, {s}")
            else:  # what it returns is the true answer's start; the rest is counted, not hidden
                np.testing.assert_array_equal(got, ref[: len(got)])
                assert len(got) + short == s["k"] and len(ref) <= s["k"]
    assert seen_short  # the settings reached past the store's 25 candidates somewhere
    with pytest.raises(ra.ArgumentError, match="range_max must be at most 25"):
        ra.select_negatives(store, sampling="random", seed=0, range_max=30)


def test_select_equals_mining_directly(rng, tmp_path):
    queries, corpus, positives = _data(rng, n=600, positives_per_query=1)
    store = ra.mine_candidates(
        queries, corpus, str(tmp_path / "run"), positives=positives, candidates=60
    )
    for s in (
        dict(k=10, range_min=3, relative_margin=0.05),
        dict(k=5, absolute_margin=0.1, min_score=-0.2),
        dict(k=8, range_min=2, range_max=50, sampling="random", seed=7),
    ):
        chosen = ra.select_negatives(store, **s)
        direct = ra.mine_hard_negatives(queries, corpus, positives=positives, **s)
        assert not chosen.shortfall.any()
        np.testing.assert_array_equal(chosen.indices, direct.indices)
        np.testing.assert_allclose(chosen.scores, direct.scores, rtol=1e-6, equal_nan=True)


def test_the_audit_adds_up(rng, tmp_path):
    queries, corpus, positives = _data(rng)
    store = ra.mine_candidates(
        queries, corpus, str(tmp_path / "run"), positives=positives, candidates=30
    )
    chosen = ra.select_negatives(
        store,
        k=4,
        range_min=2,
        range_max=40,
        max_score=0.5,
        relative_margin=0.1,
        max_positive_similarity=0.3,
    )
    a = chosen.audit
    assert a["candidates_seen"] == 30 * len(queries)
    assert sum(a["removed"].values()) + a["not_drawn"] + a["selected"] == a["candidates_seen"]
    assert a["selected"] == int((chosen.indices >= 0).sum())
    assert all(a["removed"][f] > 0 for f in ("rank_window", "max_score", "max_positive_similarity"))
    assert a["queries_short"] == int((chosen.shortfall > 0).sum())
    assert sum(a["negative_scores_before"]) == a["candidates_seen"]
    assert sum(a["negative_scores_after"]) == a["selected"]
    assert sum(a["positive_scores"]) == len(queries)
    path = ra.save_selection(store, chosen)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["selection"]["audit"] == json.loads(json.dumps(a))
    assert os.path.exists(path) and (tmp_path / "run" / "audit.png").stat().st_size > 1000


def test_existing_output_resume_and_overwrite(rng, tmp_path):
    queries, corpus, positives = _data(rng, q=12)
    out = str(tmp_path / "run")
    ra.mine_candidates(queries, corpus, out, positives=positives, candidates=10, query_block=5)
    with pytest.raises(ra.StoreError, match="not empty"):
        ra.mine_candidates(queries, corpus, out, positives=positives, candidates=10, query_block=5)
    changed = corpus.copy()
    changed[3, 0] += 1
    with pytest.raises(ra.StoreError, match="input 'corpus' differs"):
        ra.mine_candidates(
            queries, changed, out, positives=positives, candidates=10, query_block=5, resume=True
        )
    with pytest.raises(ra.StoreError, match="parameter 'candidates' differs"):
        ra.mine_candidates(
            queries, corpus, out, positives=positives, candidates=11, query_block=5, resume=True
        )
    with pytest.raises(ra.StoreError, match="input 'positives' differs"):
        ra.mine_candidates(
            queries, corpus, out, positives=None, candidates=10, query_block=5, resume=True
        )
    store = ra.mine_candidates(
        queries, changed, out, positives=positives, candidates=10, query_block=5, overwrite=True
    )
    assert store.finished and store.manifest["inputs"]["corpus"]["sha256"] == (
        ra.candidate_store.array_digest(changed)
    )


def test_a_damaged_block_is_named(rng, tmp_path):
    queries, corpus, positives = _data(rng, q=12)
    store = ra.mine_candidates(
        queries, corpus, str(tmp_path / "run"), positives=positives, candidates=10, query_block=5
    )
    block = tmp_path / "run" / "block-000001.parquet"
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0xFF
    block.write_bytes(bytes(data))
    with pytest.raises(ra.StoreError, match=r"block-000001\.parquet does not match the digest"):
        ra.select_negatives(store, k=3)
    with pytest.raises(ra.StoreError, match="not a candidate store"):
        ra.select_negatives(str(tmp_path))


_WRITER = r"""
import sys, numpy as np, ruvector_attention as ra
data = np.load(sys.argv[1])
ra.mine_candidates(data["queries"], data["corpus"], sys.argv[2], positives=list(data["positives"]),
                   candidates=20, query_block=4, resume=sys.argv[3] == "resume")
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_same_store(rng, tmp_path):
    queries, corpus, _ = _data(rng, n=20_000, d=32, q=120)
    positives = rng.integers(0, len(corpus), size=(len(queries), 2))
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, queries=queries, corpus=corpus, positives=positives)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    reference = str(tmp_path / "reference")
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), str(inputs), reference, "fresh"], check=True)
    duration = time.perf_counter() - start
    ref_store = ra.open_store(reference)
    kills = 0
    for trial in range(10):
        out = str(tmp_path / f"run{trial}")
        mode = "fresh"
        for _ in range(3):  # killed, resumed and killed again, then finished
            child = subprocess.Popen([sys.executable, str(script), str(inputs), out, mode])
            time.sleep(float(rng.uniform(0.0, duration)))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                kills += 1
            child.wait()
            mode = "resume" if os.path.exists(os.path.join(out, "manifest.json")) else "fresh"
            if mode == "fresh" and os.path.exists(out):
                os.rmdir(out) if not os.listdir(out) else None
        subprocess.run([sys.executable, str(script), str(inputs), out, mode], check=True)
        store = ra.open_store(out)
        assert store.finished
        assert store.manifest["blocks"]["digests"] == ref_store.manifest["blocks"]["digests"]
        for block in range(store.manifest["blocks"]["total"]):
            with (
                open(store.block_path(block), "rb") as a,
                open(ref_store.block_path(block), "rb") as b,
            ):
                assert a.read() == b.read()
    assert kills >= 10


def _teacher(corpus, queries, calls):
    """A deterministic teacher: the cosine in a fixed random projection of the rows."""
    projection = np.random.default_rng(99).standard_normal((corpus.shape[1], 6))
    c, q = _unit(corpus @ projection), _unit(queries @ projection)

    def rescore(query_ids, candidate_ids):
        calls.append(len(query_ids))
        return np.einsum("ij,ij->i", q[query_ids], c[candidate_ids])

    return rescore, q @ c.T


def test_the_rescoring_hook_applies_its_margin_in_batches_across_queries(rng, tmp_path):
    queries, corpus, positives = _data(rng)
    store = ra.mine_candidates(queries, corpus, str(tmp_path / "run"), positives=positives,
                               candidates=len(corpus))  # fmt: skip
    calls = []
    rescore, teacher = _teacher(corpus, queries, calls)
    chosen = ra.select_negatives(store, k=6, range_min=1, relative_margin=0.2, rescore=rescore,
                                 rescore_margin=0.05, rescore_batch=1000)  # fmt: skip
    assert max(calls) == 1000 and len(calls) > 5  # batches of pairs from many queries
    base = brute_force(queries, corpus, positives, k=len(corpus), range_min=1,
                       relative_margin=0.2)  # fmt: skip
    for i, row in enumerate(_as_lists(chosen.indices)):
        cap = teacher[i, positives[i]].min() - 0.05
        want = [c for c in base[i] if teacher[i, c] <= cap][:6]
        np.testing.assert_array_equal(row, want)
        np.testing.assert_allclose(chosen.rescore_scores[i, : len(row)], teacher[i, row])
    assert chosen.audit["removed"]["rescore_margin"] > 0
    path = ra.save_selection(store, chosen, plot=False)
    import pyarrow.parquet as pq

    saved = pq.read_table(path).column("rescore_scores").to_pylist()
    assert saved[0] == chosen.rescore_scores[0][~np.isnan(chosen.rescore_scores[0])].tolist()


@pytest.mark.parametrize(
    "teacher, error, match",
    [
        (lambda q, c: np.zeros(len(q) + 1), ra.ShapeError, "one score per pair"),
        (lambda q, c: np.where(c == c.max(), np.nan, 0.0), ra.ArgumentError, "must be finite"),
        (lambda q, c: 1 / 0, ZeroDivisionError, "division by zero"),
    ],
)
def test_a_teacher_that_fails_is_named(rng, tmp_path, teacher, error, match):
    queries, corpus, positives = _data(rng, q=8)
    store = ra.mine_candidates(queries, corpus, str(tmp_path / "run"), positives=positives,
                               candidates=20)  # fmt: skip
    with pytest.raises(error, match=match):
        ra.select_negatives(store, k=3, rescore=teacher)
    with pytest.raises(ra.ArgumentError, match="give both"):
        ra.select_negatives(store, k=3, rescore_margin=0.1)


def test_mining_with_the_near_duplicate_filter_and_a_teacher_equals_brute_force(rng):
    # Near-duplicates of each positive are planted among the hardest candidates, so the filter
    # empties the first list and the miner must look further (its lists grow until settled).
    queries, corpus, positives = _data(rng, n=500, positives_per_query=1)
    for i in range(len(queries)):
        for j in range(40):
            corpus[300 + (i * 40 + j) % 200] = corpus[i] + 0.05 * rng.standard_normal(16)
    for s in (
        dict(k=5, max_positive_similarity=0.9),
        dict(k=4, range_min=2, max_positive_similarity=0.8, relative_margin=0.01),
        dict(k=6, range_max=120, max_positive_similarity=0.85, sampling="random", seed=3),
    ):
        got = ra.mine_hard_negatives(queries, corpus, positives=positives, **s)
        want = brute_force(queries, corpus, positives, **s)
        for i, (row, ref) in enumerate(zip(_as_lists(got.indices), want)):
            np.testing.assert_array_equal(row, ref, err_msg=f"query {i}, {s}")
        uq, uc = _unit(queries), _unit(corpus)
        found = got.indices >= 0
        sims = np.einsum("ij,ij->i", uq[np.nonzero(found)[0]], uc[got.indices[found]])
        np.testing.assert_allclose(got.scores[found], sims, rtol=1e-6)
    calls = []
    rescore, teacher = _teacher(corpus, queries, calls)
    got = ra.mine_hard_negatives(queries, corpus, positives=positives, k=5,
                                 max_positive_similarity=0.9, rescore=rescore,
                                 rescore_margin=0.02)  # fmt: skip
    base = brute_force(queries, corpus, positives, k=len(corpus), max_positive_similarity=0.9)
    for i, row in enumerate(_as_lists(got.indices)):
        cap = teacher[i, positives[i]].min() - 0.02
        np.testing.assert_array_equal(row, [c for c in base[i] if teacher[i, c] <= cap][:5])
        np.testing.assert_allclose(got.rescore_scores[i, : len(row)], teacher[i, row])
    with pytest.raises(ra.ArgumentError, match="needs range_max"):
        ra.mine_hard_negatives(queries, corpus, positives=positives,
                               max_positive_similarity=0.9, sampling="random")  # fmt: skip


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_damaged_manifest_is_a_store_error_never_another_exception(tmp_path_factory, data):
    # Start from a real manifest and replace one part of it at a random depth (or the whole).
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    queries, corpus, positives = _data(rng, n=60, q=9)
    store = ra.mine_candidates(queries, corpus, str(root / "run"), positives=positives,
                               candidates=5, query_block=4)  # fmt: skip
    manifest = json.loads(json.dumps(store.manifest))
    target = manifest
    path = data.draw(st.lists(st.sampled_from(["parameters", "inputs", "blocks", "queries",
                                               "shape", "done", "digests", "candidates",
                                               "query_block", "total"]), max_size=3))  # fmt: skip
    for key in path[:-1]:
        if isinstance(target, dict) and isinstance(target.get(key), dict):
            target = target[key]
    if path and isinstance(target, dict):
        target[path[-1]] = data.draw(_json_values)
    else:
        manifest = data.draw(_json_values)
    (root / "run" / "manifest.json").write_text(json.dumps(manifest))
    try:
        opened = ra.open_store(str(root / "run"))
        chosen = ra.select_negatives(opened, k=2)
    except ra.StoreError:
        return
    assert chosen.indices.shape == (opened.queries, 2)


def test_a_block_of_another_shape_with_a_matching_digest_is_named(rng, tmp_path):
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    queries, corpus, positives = _data(rng, q=8)
    store = ra.mine_candidates(queries, corpus, str(tmp_path / "run"), positives=positives,
                               candidates=10, query_block=4)  # fmt: skip
    pq.write_table(pa.table({"query": [0, 1]}), store.block_path(1))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    with open(store.block_path(1), "rb") as f:
        data = f.read()
    manifest["blocks"]["digests"]["1"] = hashlib.sha256(data).hexdigest()
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ra.StoreError, match=r"block-000001\.parquet is not a block of this store"):
        ra.select_negatives(str(tmp_path / "run"), k=2)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    ids=st.lists(st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)), max_size=20),
)
def test_the_seeded_draw_is_the_documented_function(seed, ids):
    # One owner (the kernels' mining/rng.rs) for the corpus miner's draw; its numbers are those
    # of the formula written out in NumPy, so seeded results stay what they were.
    queries = np.array([q for q, _ in ids], np.int64)
    rows = np.array([r for _, r in ids], np.int64)
    got = ra._native.corpus_keys(seed, queries, rows)
    np.testing.assert_array_equal(got, reference.corpus_keys(seed, queries, rows))
    assert ((got >= 0) & (got < 1)).all()


def test_the_progress_bars_count_to_their_totals(rng, tmp_path, capsys):
    pytest.importorskip("tqdm")
    corpus = rng.standard_normal((3000, 8)).astype(np.float32)
    ra.mine_hard_negatives(corpus[:5], corpus, k=3, progress=True, chunk_rows=1000)
    ra.mine_candidates(corpus[:5], corpus, str(tmp_path / "run"), candidates=4, query_block=2,
                       progress=True)  # fmt: skip
    err = capsys.readouterr().err
    assert "3000/3000" in err and "mining candidates" in err and "3/3" in err


def test_a_writer_killed_before_its_first_manifest_leaves_a_startable_store(rng, tmp_path):
    # A kill -9 while the first manifest is written leaves only its temporary file (the
    # writer's cleanup never runs): the store must still start fresh, and a resume with a
    # manifest must clear a killed block write's temporary file, not refuse the directory.
    queries, corpus, positives = _data(rng)
    out = tmp_path / "run"
    out.mkdir()
    (out / ".manifest.json.k1ll3d.tmp").write_bytes(b'{"format": ')
    store = ra.mine_candidates(queries, corpus, str(out), positives=positives, candidates=8)
    assert store.finished
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
    # Only a leftover: nothing to resume (said so), and not "not empty" for a fresh start.
    other = tmp_path / "other"
    other.mkdir()
    (other / ".manifest.json.k1ll3d.tmp").write_bytes(b"")
    with pytest.raises(ra.StoreError, match="holds no run to resume"):
        ra.mine_candidates(queries, corpus, str(other), positives=positives, candidates=8,
                           resume=True)  # fmt: skip
    # A block write killed mid-way in a store with a manifest: resume clears its leftover.
    (out / ".block-00000.parquet.x.tmp").write_bytes(b"PAR")
    resumed = ra.mine_candidates(queries, corpus, str(out), positives=positives, candidates=8,
                                 resume=True)  # fmt: skip
    assert resumed.finished
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
