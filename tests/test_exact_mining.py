"""The corpus miner's exactness contract: ranked, filtered and reported by the exact float64
score (``reference.exact_cosine_matrix``), whatever the chunking, the filters that exclude
nothing, the thread count or the SIMD path; the float32 preselection only decides which rows
are rescored, within its proven error bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference as ref
import ruvector_attention as ra
from ruvector_attention import _native
from ruvector_attention._corpus_state import exact_scores, unit_rows


def near_duplicates(n, d, noise, q=40, seed=0, clusters=None):
    """Clusters of near-duplicate rows (relative noise ``noise``) and queries taken from them."""
    rng = np.random.default_rng(seed)
    clusters = clusters or max(2, n // 5)
    centres = rng.standard_normal((clusters, d))
    corpus = centres[rng.integers(0, clusters, n)]
    corpus = (corpus * (1 + noise * rng.standard_normal((n, d)))).astype(np.float32)
    queries = (corpus[:q] * (1 + noise * rng.standard_normal((q, d)))).astype(np.float32)
    positives = [np.array([i]) for i in range(q)]
    return queries, corpus, positives


def expected_top(queries, corpus, positives, **kwargs):
    sims = ref.exact_cosine_matrix(queries, corpus)
    return ref.corpus_negatives(queries, corpus, positives, sims=sims, **kwargs), sims


def assert_same(a, b):
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.scores.tobytes() == b.scores.tobytes()


def _clamped_norm(x):
    return max(math.sqrt(math.fsum(x * x)), float(np.float32(1e-8)))


def _inverse_norms32(x):
    """float32 ``1 / max(sqrt(x . x), eps)`` per row (the fused key's reciprocal norms)."""
    norms = np.sqrt((x * x).sum(axis=1, dtype=np.float32))
    return np.float32(1) / np.maximum(norms, np.float32(1e-8))


# -- the score itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 15, 16, 17, 100, 768])
def test_the_exact_score_is_the_contracts_lane_ordered_sum_to_the_bit(d):
    rng = np.random.default_rng(d)
    q = rng.standard_normal((5, d)).astype(np.float32)
    c = (rng.standard_normal((8, d)) * 10.0 ** rng.integers(-15, 15, (8, 1))).astype(np.float32)
    qi, ci = (
        a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(5), np.arange(8), indexing="ij")
    )
    got = exact_scores(q, c, qi, ci).reshape(5, 8)
    expected = ref.exact_cosine_matrix(q, c)
    assert got.tobytes() == expected.tobytes()
    # And within float64 round-off of the correctly rounded cosine (math.fsum).
    for i, j in [(0, 0), (4, 7), (2, 3)]:
        a, b = q[i].astype(np.float64), c[j].astype(np.float64)
        true = math.fsum(a * b) / _clamped_norm(a) / _clamped_norm(b)
        assert abs(got[i, j] - true) <= 4 * d * 2.0**-53 + 1e-300


_BIG = float(np.float32(1e30))


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(np.float32, (3, 33), elements=st.floats(-_BIG, _BIG, width=32)),
    hnp.arrays(np.float32, (4, 33), elements=st.floats(-_BIG, _BIG, width=32)),
)
def test_the_float32_preselection_is_within_the_proven_bound(q, c):
    # Both preselection forms of `preselection_error`: the float32 dot of the float32 unit rows,
    # and the fused key dp * (1/|a|) * (1/|c|) with float32 norms (emulated here in float32).
    exact = ref.exact_cosine_matrix(q, c)
    e = _native.preselection_error(q.shape[1])
    uq = unit_rows(q)
    with np.errstate(all="ignore"):
        gemm = uq @ unit_rows(c).T
        # The kernel rescales a row by a power of two where its squares could overflow
        # (largest element above 2^40; conditioning.rs), into [1, 2).
        big = np.abs(c).max(axis=1)
        scale = np.where(big > 2.0**40, np.exp2(-np.floor(np.log2(np.maximum(big, 1.0)))), 1.0)
        cs = c * scale.astype(np.float32)[:, None]
        fused = (uq @ cs.T) * _inverse_norms32(uq)[:, None] * _inverse_norms32(cs)[None, :]
    finite = ~np.isnan(exact)
    assert (np.abs(gemm - exact)[finite] <= e).all()
    # A query below the norm clamp: its exact scores are its cosines times s = |q| / eps < 1,
    # and the fused key (which renormalises the clamped row) is the cosine: within e after
    # scaling by s, so the keys' order still bounds the exact scores (see _corpus_state).
    norm = np.linalg.norm(q.astype(np.float64), axis=1, keepdims=True)
    s = np.minimum(norm / float(np.float32(1e-8)), 1.0)
    assert (np.abs(s * fused - exact)[finite] <= e).all()


# -- the answer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [1e-6, 1e-4, 1e-2])
def test_near_duplicates_give_the_exact_answer_whatever_the_chunking(noise):
    queries, corpus, positives = near_duplicates(600, 24, noise)
    expected, sims = expected_top(queries, corpus, positives, k=6)
    results = [
        ra.mine_hard_negatives(queries, corpus, positives=positives, k=6, chunk_rows=rows)
        for rows in (1, 7, None)
    ]
    # Filters that exclude nothing change nothing.
    results.append(ra.mine_hard_negatives(queries, corpus, positives=positives, k=6, max_score=2.0))
    results.append(
        ra.mine_hard_negatives(queries, corpus, positives=positives, k=6, min_score=-2.0)
    )
    for got in results:
        np.testing.assert_array_equal(got.indices, expected)
        rows = np.arange(len(queries))[:, None]
        np.testing.assert_array_equal(got.scores, sims[rows, expected].astype(np.float32))
        assert_same(got, results[0])
        assert (got.rescored >= 6).all()


def test_the_six_row_report_is_one_answer():
    # The report: [2] by default, [5] with chunk_rows=1, max_score=2.0 or a Dask array in
    # chunks (3, -1): rows 2 and 5 near-duplicates whose float32 and float64 orders differ.
    rng = np.random.default_rng(7)
    base = rng.standard_normal(64)
    corpus = rng.standard_normal((6, 64))
    corpus[2] = base
    corpus[5] = base * (1 + 1e-6 * rng.standard_normal(64))
    corpus = corpus.astype(np.float32)
    for trial in range(200):  # a query whose float32 and exact orders of rows 2 and 5 differ
        query = (base + 1e-3 * np.random.default_rng(trial).standard_normal(64)).astype(np.float32)[
            None
        ]
        exact = ref.exact_cosine_matrix(query, corpus)[0]
        approx = (unit_rows(query) @ unit_rows(corpus).T)[0]
        if (exact[2] > exact[5]) != (approx[2] > approx[5]) and exact[2] != exact[5]:
            break
    else:
        pytest.skip("no query separating the two orders was found")
    want = 2 if (exact[2], -2) > (exact[5], -5) else 5
    for kwargs in ({}, {"chunk_rows": 1}, {"chunk_rows": 3}, {"max_score": 2.0}):
        got = ra.mine_hard_negatives(query, corpus, k=1, **kwargs)
        assert got.indices[0, 0] == want, kwargs


@pytest.mark.parametrize("seed", range(6))
def test_every_filter_combination_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    queries, corpus, positives = near_duplicates(400, 16, [1e-6, 1e-3, 1e-2][seed % 3], seed=seed)
    kwargs = {"k": int(rng.integers(1, 8)), "range_min": int(rng.integers(0, 5))}
    if rng.random() < 0.5:
        kwargs["range_max"] = kwargs["range_min"] + int(rng.integers(0, 60))
    sims = ref.exact_cosine_matrix(queries, corpus)
    top = np.sort(sims, axis=1)[:, -3]
    if rng.random() < 0.7:  # a cap at a score that really occurs: the band is crowded there
        kwargs["max_score"] = float(np.median(top))
    if rng.random() < 0.5:
        kwargs["min_score"] = float(np.median(top)) - 0.5
    if rng.random() < 0.5:
        kwargs["absolute_margin"] = float(rng.choice([0.0, 1e-6, 0.01]))
    if rng.random() < 0.5:
        kwargs["relative_margin"] = float(rng.choice([0.0, 1e-6, 0.05]))
    expected = ref.corpus_negatives(queries, corpus, positives, sims=sims, **kwargs)
    for rows in (1, 7, None):
        got = ra.mine_hard_negatives(
            queries, corpus, positives=positives, chunk_rows=rows, **kwargs
        )
        np.testing.assert_array_equal(got.indices, expected, err_msg=f"{kwargs} chunk_rows={rows}")
    # Random sampling draws from exactly the eligible candidates, the same draw whatever the
    # chunking.
    draws = [
        ra.mine_hard_negatives(
            queries,
            corpus,
            positives=positives,
            chunk_rows=rows,
            sampling="random",
            seed=3,
            **kwargs,
        )
        for rows in (7, None)
    ]
    eligible = ref.corpus_negatives(
        queries, corpus, positives, sims=sims, sampling="random", **kwargs
    )
    assert_same(draws[0], draws[1])
    for picks, allowed in zip(draws[0].indices, eligible):
        picks = picks[picks >= 0]
        assert set(picks) <= set(allowed.tolist())
        assert len(picks) == min(kwargs["k"], len(allowed))


def test_exact_ties_go_to_the_lower_row_and_equal_rows_stay_exact():
    rng = np.random.default_rng(3)
    row = rng.standard_normal(32).astype(np.float32)
    corpus = np.tile(row, (300, 1))  # all rows equal: the band holds everything
    corpus[::7] = rng.standard_normal((len(corpus[::7]), 32))
    queries = (row + 0.1 * rng.standard_normal((5, 32))).astype(np.float32)
    positives = [np.array([1])] * 5
    expected, _ = expected_top(queries, corpus, positives, k=10, range_min=3)
    for rows in (1, 7, None):
        got = ra.mine_hard_negatives(queries, corpus, positives=positives, k=10, range_min=3,
                                     chunk_rows=rows)  # fmt: skip
        np.testing.assert_array_equal(got.indices, expected)
        np.testing.assert_array_equal(got.indices[:, :3], [[5, 6, 8]] * 5)
    # The work is visible: every row was rescored (the band held them all).
    assert (got.rescored >= 250).all()


def test_an_all_zero_query_ranks_every_row_at_zero_by_row():
    # Every exact score of an all-zero query is 0: the ranking is the row order, settled in one
    # pass (its preselection is exact), in the capped path too.
    rng = np.random.default_rng(8)
    corpus = rng.standard_normal((3000, 12)).astype(np.float32)
    corpus[2, 0] = np.nan
    queries = np.zeros((3, 12), np.float32)
    queries[1] = rng.standard_normal(12)
    positives = [np.array([0]), np.array([5]), np.array([1])]
    for kwargs in ({}, {"max_score": 0.5}, {"range_min": 2, "range_max": 40, "max_score": 0.0}):
        expected, _ = expected_top(queries, corpus, positives, k=5, **kwargs)
        got = ra.mine_hard_negatives(
            queries, corpus, positives=positives, k=5, chunk_rows=1000, **kwargs
        )
        np.testing.assert_array_equal(got.indices, expected, err_msg=str(kwargs))
        if kwargs.get("max_score") != 0.0:  # (a cap at 0 puts every row in its band)
            assert got.rescored[[0, 2]].max() < 100, kwargs  # no list grew to the corpus


def test_zero_and_nan_rows():
    rng = np.random.default_rng(4)
    corpus = rng.standard_normal((60, 8)).astype(np.float32)
    corpus[3] = 0.0
    corpus[4, 2] = np.nan
    corpus[5, 1] = np.inf
    queries = corpus[10:14] + np.float32(0.01)
    expected, _ = expected_top(queries, corpus, [[]] * 4, k=60)
    got = ra.mine_hard_negatives(queries, corpus, k=60, chunk_rows=7)
    np.testing.assert_array_equal(got.indices, expected)
    assert not np.isin(got.indices, [4, 5]).any()  # NaN scores are never candidates
    assert (got.indices == 3).any(axis=1).all()  # a zero row scores 0, a candidate like others
    assert (got.indices[:, -2:] == -1).all()


@pytest.mark.parametrize("path", ["baseline", "avx2", "avx512"])
def test_every_simd_path_and_thread_count_gives_the_same_bits(path):
    from ruvector_attention._native import _testing

    order = ["baseline", "avx2", "avx512"]
    if order.index(path) > order.index(_testing.best_simd_path()):
        pytest.skip(f"this CPU has no {path} path")
    queries, corpus, positives = near_duplicates(2000, 40, 1e-5, q=30)
    expected, _ = expected_top(queries, corpus, positives, k=5, range_min=2)
    before = ra.get_num_threads()
    try:
        _testing.force_simd_path(path)
        for threads in (1, 2):
            ra.set_num_threads(threads)
            got = ra.mine_hard_negatives(queries, corpus, positives=positives, k=5, range_min=2)
            np.testing.assert_array_equal(got.indices, expected)
    finally:
        _testing.force_simd_path(_testing.best_simd_path())
        ra.set_num_threads(before)


def test_a_crowded_band_grows_the_lists_until_certain():
    # 150 rows within 1e-7 of each other: their order is below float32 resolution, so the
    # first lists cannot certify it; the engine mines those queries again with longer lists.
    rng = np.random.default_rng(5)
    base = rng.standard_normal(48)
    corpus = (base * (1 + 1e-7 * rng.standard_normal((150, 48)))).astype(np.float32)
    corpus = np.concatenate([corpus, rng.standard_normal((2000, 48)).astype(np.float32)])
    queries = (base + 0.3 * rng.standard_normal((6, 48))).astype(np.float32)
    expected, _ = expected_top(queries, corpus, [[]] * 6, k=20)
    got = ra.mine_hard_negatives(queries, corpus, k=20, chunk_rows=500)
    np.testing.assert_array_equal(got.indices, expected)
    assert got.rescored.min() > 20 + 16  # more than one list of k + margin per chunk


def test_float16_and_float64_corpora_follow_the_float32_rows():
    queries, corpus, positives = near_duplicates(500, 16, 1e-3)
    for stored in (corpus.astype(np.float16), corpus.astype(np.float64) + 1e-12):
        expected, _ = expected_top(queries, stored.astype(np.float32), positives, k=4)
        got = ra.mine_hard_negatives(queries, stored, positives=positives, k=4, chunk_rows=33)
        np.testing.assert_array_equal(got.indices, expected)


def test_the_controlled_path_reports_its_work_and_stays_exact():
    queries, corpus, positives = near_duplicates(800, 16, 1e-5)
    got = ra.mine_hard_negatives(
        queries, corpus, positives=positives, k=5, max_positive_similarity=0.999999
    )
    assert got.rescored is not None and (got.rescored >= 5).all()
    sims = ref.exact_cosine_matrix(queries, corpus)
    # Against brute force: the top 5 by exact score whose exact score to the positive is
    # below the threshold.
    for i, row in enumerate(got.indices):
        p = positives[i][0]
        ok = [j for j in np.lexsort((np.arange(len(corpus)), -sims[i])) if j != p]
        pos_sim = ref.exact_cosine_matrix(corpus[ok], corpus[[p]])[:, 0]
        expected = np.asarray(ok)[pos_sim < 0.999999][:5]
        np.testing.assert_array_equal(row, expected)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 120),
    d=st.integers(1, 20),
    noise=st.sampled_from([0.0, 1e-7, 1e-5, 1e-3, 0.3]),
    clusters=st.integers(1, 6),
    k=st.integers(1, 9),
    range_min=st.integers(0, 6),
    span=st.one_of(st.none(), st.integers(0, 40)),
    cap=st.one_of(st.none(), st.floats(-1, 1)),
    margin=st.one_of(st.none(), st.sampled_from([0.0, 1e-6, 0.05])),
    chunk_rows=st.sampled_from([1, 3, 7, None]),
    with_positives=st.booleans(),
    sampling=st.sampled_from(["top", "random"]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_the_engine_against_brute_force(
    n, d, noise, clusters, k, range_min, span, cap, margin, chunk_rows, with_positives, sampling,
    seed,
):  # fmt: skip
    # Small corpora of near-duplicate clusters (noise 0: exact duplicates, ties everywhere),
    # random windows, caps and margins: the answer is the brute force's, whatever the chunking.
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    corpus = centres[rng.integers(0, clusters, n)] * (1 + noise * rng.standard_normal((n, d)))
    corpus = corpus.astype(np.float32)
    q = min(n, 6)
    queries = (corpus[:q] * (1 + noise * rng.standard_normal((q, d)))).astype(np.float32)
    positives = [np.array([i]) if with_positives else np.zeros(0, np.int64) for i in range(q)]
    kwargs = {"k": k, "range_min": range_min, "max_score": cap, "relative_margin": margin}
    if span is not None:
        kwargs["range_max"] = range_min + span
    sims = ref.exact_cosine_matrix(queries, corpus)
    got = ra.mine_hard_negatives(
        queries, corpus, positives=positives, chunk_rows=chunk_rows, sampling=sampling, seed=1,
        **kwargs,
    )  # fmt: skip
    if sampling == "top":
        expected = ref.corpus_negatives(queries, corpus, positives, sims=sims, **kwargs)
        np.testing.assert_array_equal(got.indices, expected)
    else:
        eligible = ref.corpus_negatives(
            queries, corpus, positives, sims=sims, sampling="random", **kwargs
        )
        for picks, allowed in zip(got.indices, eligible):
            picks = picks[picks >= 0]
            assert set(picks.tolist()) <= set(allowed.tolist())
            assert len(set(picks.tolist())) == len(picks) == min(k, len(allowed))


def test_an_open_draw_whose_rows_fail_the_cap_grows_until_certain():
    # 400 rows within 1e-7 of each other around the cap: about half pass it exactly. The draw's
    # first list (k + range_min + 4 by draw) cannot hold k passing rows for certain; the engine
    # draws again with longer lists, and every pick passes the cap exactly.
    rng = np.random.default_rng(9)
    base = rng.standard_normal(32)
    corpus = (base * (1 + 1e-7 * rng.standard_normal((400, 32)))).astype(np.float32)
    corpus = np.concatenate([corpus, rng.standard_normal((3000, 32)).astype(np.float32)])
    queries = (base + 0.5 * rng.standard_normal((4, 32))).astype(np.float32)
    sims = ref.exact_cosine_matrix(queries, corpus)
    caps = np.median(sims[:, :400], axis=1)
    for i in range(4):
        kwargs = {"k": 8, "range_min": 2, "min_score": float(caps[i]) - 1e-6,
                  "max_score": float(caps[i])}  # fmt: skip
        allowed = ref.corpus_negatives(
            queries[i : i + 1], corpus, [[]], sims=sims[i : i + 1], sampling="random", **kwargs
        )[0]
        for rows in (7, None):
            got = ra.mine_hard_negatives(
                queries[i : i + 1], corpus, sampling="random", seed=2, chunk_rows=rows, **kwargs
            )
            picks = got.indices[0][got.indices[0] >= 0]
            assert set(picks.tolist()) <= set(allowed.tolist())
            assert len(picks) == min(8, len(allowed))
            if rows is None:  # one chunk: a first pass rescores 6 listed + 14 drawn rows
                assert got.rescored[0] > 20, got.rescored
