"""HardNegativeMiner and InBatchMiner: exact picks against float64 brute force, the semi-hard
definition and fill rule, label filtering, sampling probabilities (chi-square), seeded
reproducibility across thread counts, degenerate inputs, every argument error, Hypothesis."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import reference as ref
import ruvector_attention as ra
import ruvector_attention.training as training
from ruvector_attention import HardNegativeMiner, InBatchMiner, MiningStrategy, ShapeError
from threads import with_thread_counts

ALL = [
    lambda seed=0: HardNegativeMiner.hardest(seed=seed),
    lambda seed=0: HardNegativeMiner.semi_hard(0.5, seed=seed),
    lambda seed=0: HardNegativeMiner.distance_weighted(0.2, seed=seed),
    lambda seed=0: HardNegativeMiner.distance_weighted(weighting="wu", seed=seed),
    lambda seed=0: HardNegativeMiner.random(seed=seed),
]
IDS = ["hardest", "semi_hard", "softmax", "wu", "random"]


def data(rng, b, n, d):
    a = rng.standard_normal((b, d)).astype(np.float32)
    p = (a + 0.3 * rng.standard_normal((b, d))).astype(np.float32)
    c = rng.standard_normal((n, d)).astype(np.float32)
    return a, p, c


@pytest.mark.parametrize("b, n, d, k", [(1, 1, 1, 1), (7, 50, 5, 3), (130, 5000, 33, 10)])
def test_hardest_equals_float64_ranking(rng, b, n, d, k):
    a, _, c = data(rng, b, n, d)
    got = HardNegativeMiner.hardest().mine_batch(a, None, c, k)
    assert got.dtype == np.int64 and got.shape == (b, k)
    np.testing.assert_array_equal(got, ref.ranked(ref.cosine_matrix(a, c), k))


def test_hardest_over_many_tiles_and_groups(rng):
    # 40,000 candidates: 20 tiles of 2048 in 8 groups per row block, merged.
    a, _, c = data(rng, 40, 40_000, 16)
    got = HardNegativeMiner.hardest().mine_batch(a, None, c, 25)
    np.testing.assert_array_equal(got, ref.ranked(ref.cosine_matrix(a, c), 25))


def test_hardest_ties_go_to_the_lower_index():
    a = np.array([[1.0, 0.0]], np.float32)
    c = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [3.0, 0.0]], np.float32)  # 1, 2, 3 tie
    got = HardNegativeMiner.hardest().mine_batch(a, None, c, 3)
    np.testing.assert_array_equal(got, [[1, 2, 3]])


@pytest.mark.parametrize("with_labels", [False, True])
def test_semi_hard_picks_satisfy_the_definition_and_the_fill_rule(rng, with_labels):
    b, n, d, k, margin = 60, 400, 4, 6, 0.6
    a, p, c = data(rng, b, n, d)
    kwargs, eligible = {}, None
    if with_labels:
        la, lc = rng.integers(0, 5, size=b), rng.integers(0, 5, size=n)
        kwargs = {"anchor_labels": la, "candidate_labels": lc}
        eligible = la[:, None] != lc[None, :]
    got = HardNegativeMiner.semi_hard(margin).mine_batch(a, p, c, k, **kwargs)
    expected, window, d_an, d_ap = ref.semi_hard(a, p, c, k, margin, eligible)
    # Skip rows where float32 rounding could move a candidate across the window's edges.
    edge = np.minimum(np.abs(d_an - d_ap[:, None]), np.abs(d_an - d_ap[:, None] - margin))
    clear = edge.min(axis=1) > 1e-4
    assert clear.sum() > b // 2
    np.testing.assert_array_equal(got[clear], expected[clear])
    # Both branches occur: rows with fewer than k in the window (filled) and rows with k.
    counts = window.sum(axis=1)
    assert (counts[clear] < k).any() and (counts[clear] >= k).any()
    for i in np.flatnonzero(clear):
        in_window = [j for j in got[i] if window[i, j]]
        assert list(got[i][: len(in_window)]) == in_window  # window picks come first
        assert len(set(got[i])) == k  # always min(k, N) distinct picks, never short


@pytest.mark.parametrize("far", [2.5e5, 1e20, 1e37, -3e38])
def test_one_far_candidate_changes_no_semi_hard_pick(rng, far):
    # The hostile report: B=6, N=200, D=16, margin 1.0; one appended row of 2.5e5 in every
    # coordinate (in no window) moved the centring mean and changed 6 of 6 anchors' picks.
    b, n, d, k, margin = 6, 200, 16, 5, 1.0
    a = rng.standard_normal((b, d)).astype(np.float32)
    p = (a + 1.4 * rng.standard_normal((b, d))).astype(np.float32)
    c = rng.standard_normal((n, d)).astype(np.float32)
    expected, window, d_an, d_ap = ref.semi_hard(a, p, c, k, margin)
    edge = np.minimum(np.abs(d_an - d_ap[:, None]), np.abs(d_an - d_ap[:, None] - margin))
    assert edge.min() > 1e-4  # no pick is a rounding call
    assert (window.sum(axis=1) > 0).sum() >= b // 2  # most picks come from windows
    miner = HardNegativeMiner.semi_hard(margin)
    np.testing.assert_array_equal(miner.mine_batch(a, p, c, k), expected)
    with_far = np.vstack([c, np.full((1, d), far, np.float32)])
    np.testing.assert_array_equal(miner.mine_batch(a, p, with_far, k), expected)


@pytest.mark.parametrize("temperature", [1e-30, 1e-37, 1.2e-38])
def test_softmax_at_the_smallest_temperatures_picks_the_most_similar_first(rng, temperature):
    # The report: rows of norm ~280 at temperature 1e-37 (accepted by the constructor) overflowed
    # the key to inf; the lowest index won the tie for 12 of 200 anchors (200 of 200 at 1e-30).
    a = (80 * rng.standard_normal((200, 12))).astype(np.float32)
    c = (80 * rng.standard_normal((300, 12))).astype(np.float32)
    assert 200 < np.linalg.norm(c, axis=1).mean() < 360
    cos = ref.cosine_matrix(a, c)
    top2 = np.sort(cos, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5  # the best is not a float32 rounding call
    assert clear.sum() > 150
    picks = HardNegativeMiner.distance_weighted(temperature, seed=1).mine_batch(a, None, c, 3)
    np.testing.assert_array_equal(picks[clear, 0], np.argmax(cos, axis=1)[clear])


def test_semi_hard_needs_positives(rng):
    a, _, c = data(rng, 3, 10, 4)
    with pytest.raises(ValueError, match="SEMI_HARD mining needs positives"):
        HardNegativeMiner.semi_hard().mine_batch(a, None, c, 2)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_no_same_label_candidate_is_ever_returned(rng, make):
    b, n, d, k = 50, 300, 6, 20
    a, p, c = data(rng, b, n, d)
    la = rng.integers(0, 3, size=b)
    lc = rng.integers(0, 3, size=n)
    got = make().mine_batch(a, p, c, k, anchor_labels=la, candidate_labels=lc)
    for i in range(b):
        picks = got[i][got[i] >= 0]
        assert np.all(lc[picks] != la[i])
        assert len(set(picks)) == len(picks)
    # A class holding almost every candidate: rows run out and are padded with -1.
    lc_all = np.zeros(n, dtype=np.int64)
    lc_all[:5] = 1
    got = make().mine_batch(
        a, p, c, k, anchor_labels=np.zeros(b, np.int64), candidate_labels=lc_all
    )
    assert np.all(got[:, 5:] == -1)
    for row in got:
        picks = row[row >= 0]
        assert set(picks) <= set(range(5))
        # Wu gives weight 0 (never drawn) beyond its distance cutoff; the others fill all five.
        assert len(picks) == 5 or miner_is_wu(make)


def miner_is_wu(make):
    return make().weighting == "wu" and make().strategy is MiningStrategy.DISTANCE_WEIGHTED


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_k_larger_than_the_pool_k_zero_and_empty_pools(rng, make):
    a, p, c = data(rng, 4, 3, 5)
    miner = make()
    got = miner.mine_batch(a, p, c, 5)
    assert got.shape == (4, 5)
    assert np.all(got[:, 3:] == -1)
    if not miner_is_wu(make):  # Wu never draws candidates beyond its cutoff
        assert np.all(np.sort(got[:, :3], axis=1) == [0, 1, 2])
    assert miner.mine_batch(a, p, c, 0).shape == (4, 0)
    empty = miner.mine_batch(a, p, np.zeros((0, 5), np.float32), 3)
    np.testing.assert_array_equal(empty, -np.ones((4, 3)))
    assert miner.mine_batch(a[:0], p[:0], c, 2).shape == (0, 2)
    # The crate form returns at most N indices, without padding.
    assert miner.mine(a[0], p[0], c, 10).shape[0] == (got[0] >= 0).sum()


@pytest.mark.parametrize("make", ALL[:4], ids=IDS[:4])
def test_nan_embeddings_are_never_selected(rng, make):
    a, p, c = data(rng, 5, 30, 4)
    c[[3, 7]] = np.nan
    got = make().mine_batch(a, p, c, 30)
    for row in got:
        picks = row[row >= 0]
        assert 3 not in picks and 7 not in picks
    a[2] = np.nan
    got = make().mine_batch(a, p, c, 4)
    assert np.all(got[2] == -1)  # nothing is comparable to a NaN anchor


def _counts(picks, n):
    return np.bincount(picks[picks >= 0], minlength=n)


def _assert_draws_follow(counts, probs):
    """Chi-square goodness of fit; also shows the test would reject a wrong distribution."""
    expected = probs / probs.sum() * counts.sum()
    p_value = stats.chisquare(counts, expected).pvalue
    assert p_value > 1e-3, p_value
    uniform = np.full_like(expected, counts.sum() / len(counts))
    if not np.allclose(expected, uniform, rtol=0.2):
        assert stats.chisquare(counts, uniform).pvalue < 1e-6


def _repeated_anchor(rng, rows, n, d):
    anchor = rng.standard_normal(d).astype(np.float32)
    cands = (rng.standard_normal((n, d)) + 0.8 * anchor).astype(np.float32)
    return np.tile(anchor, (rows, 1)), cands


def test_random_draws_uniformly_without_replacement(rng):
    a, c = _repeated_anchor(rng, 40_000, 12, 3)
    got = HardNegativeMiner.random(seed=5).mine_batch(a, None, c, 1)
    _assert_draws_follow(_counts(got, 12), np.ones(12))
    got = HardNegativeMiner.random(seed=6).mine_batch(a[:5000], None, c, 12)
    assert all(sorted(row) == list(range(12)) for row in got)  # k = N: a permutation


def test_softmax_distance_weighting_draws_with_the_specified_probabilities(rng):
    a, c = _repeated_anchor(rng, 40_000, 10, 4)
    t = 0.3
    probs = np.exp(ref.cosine_matrix(a[:1], c)[0] / t)
    got = HardNegativeMiner.distance_weighted(t, seed=11).mine_batch(a, None, c, 2)
    _assert_draws_follow(_counts(got[:, 0], 10), probs)
    # Second draw, without replacement: P(j second) = sum_i p_i p_j / (1 - p_i).
    p = probs / probs.sum()
    second = np.array(
        [sum(p[i] * p[j] / (1 - p[i]) for i in range(10) if i != j) for j in range(10)]
    )
    _assert_draws_follow(_counts(got[:, 1], 10), second)
    assert np.all(got[:, 0] != got[:, 1])


def test_wu_distance_weighting_draws_with_the_specified_probabilities(rng):
    a, c = _repeated_anchor(rng, 40_000, 12, 8)
    weights = ref.wu_weights(a[0], c)
    assert (weights > 0).sum() >= 6
    got = HardNegativeMiner.distance_weighted(weighting="wu", seed=12).mine_batch(a, None, c, 1)
    counts = _counts(got[:, 0], 12)
    assert np.all(counts[weights == 0] == 0)  # beyond the cutoff: never drawn
    _assert_draws_follow(counts[weights > 0], weights[weights > 0])


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_seed_reproduces_the_sequence_with_any_thread_count(rng, make):
    a, p, c = data(rng, 300, 3000, 16)

    def three_calls():
        miner = make(seed=42)
        return [miner.mine_batch(a, p, c, 7) for _ in range(3)]

    runs = with_thread_counts(three_calls)
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)
    if make in ALL[2:]:  # samplers: successive calls draw anew
        assert not np.array_equal(runs[0][0], runs[0][1])


@pytest.mark.parametrize("make", ALL[2:], ids=IDS[2:])
def test_state_dict_restores_the_generator(rng, make):
    a, p, c = data(rng, 20, 200, 8)
    miner = make(seed=3)
    miner.mine_batch(a, p, c, 5)
    state = miner.state_dict()
    expected = miner.mine_batch(a, p, c, 5)
    other = make(seed=99)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.mine_batch(a, p, c, 5), expected)
    # Unseeded miners draw from fresh entropy.
    assert not np.array_equal(
        make(seed=None).mine_batch(a, p, c, 5), make(seed=None).mine_batch(a, p, c, 5)
    )
    with pytest.raises(ValueError, match="missing 'key'"):
        other.load_state_dict({k: v for k, v in state.items() if k != "key"})


def test_one_anchor_form_mine(rng):
    a, p, c = data(rng, 1, 40, 6)
    miner = HardNegativeMiner.hardest()
    np.testing.assert_array_equal(miner.mine(a[0], p[0], c, k=4), miner.mine_batch(a, p, c, 4)[0])
    assert miner.mine(a[0], p[0], c, 4).dtype == np.int64
    crate = training.HardNegativeMiner.hardest()
    np.testing.assert_array_equal(
        crate.mine(a[0], p[0], c, num_negatives=4), miner.mine(a[0], p[0], c, 4)
    )


def test_strategy_enum_and_constructors():
    assert training.MiningStrategy.HARD_NEGATIVE is MiningStrategy.HARDEST
    assert not hasattr(MiningStrategy, "HARD_NEGATIVE")  # one name per strategy here
    assert (
        HardNegativeMiner(training.MiningStrategy.HARD_NEGATIVE).strategy is MiningStrategy.HARDEST
    )
    assert HardNegativeMiner.semi_hard(0.3).margin == 0.3
    assert HardNegativeMiner.distance_weighted(0.5).temperature == 0.5
    assert HardNegativeMiner.random().strategy is MiningStrategy.RANDOM
    assert HardNegativeMiner().strategy is MiningStrategy.HARDEST


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"strategy": "hardestt"}, ValueError, "strategy must be"),
        ({"margin": -0.1}, ValueError, "margin must be >= 0"),
        ({"temperature": 0.0}, ValueError, "temperature must be > 0"),
        ({"weighting": "cosine"}, ValueError, "weighting must be"),
        ({"cutoff": 1.5}, ValueError, "cutoff < nonzero_loss_cutoff < 2"),
        ({"nonzero_loss_cutoff": 2.5}, ValueError, "cutoff < nonzero_loss_cutoff < 2"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        HardNegativeMiner(**kwargs)


A = np.ones((2, 4), np.float32)
C = np.ones((3, 4), np.float32)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((np.ones(4, np.float32), None, C, 2), {}, ShapeError, "anchors must be 2-D"),
        ((np.ones((2, 0), np.float32), None, C[:, :0], 2), {}, ShapeError, "D >= 1"),
        ((A, None, np.ones((3, 5), np.float32), 2), {}, ShapeError, r"candidates must be \(N, 4\)"),
        ((A, C, C, 2), {}, ShapeError, "positives must have the shape"),
        ((A, None, C, -1), {}, ValueError, "k must be >= 0"),
        ((A, None, C, 1.5), {}, TypeError, "k must be an int"),
        ((A.astype(int), None, C, 1), {}, TypeError, "anchors must contain real"),
        ((A, None, C.astype(np.complex64), 1), {}, TypeError, "candidates must contain real"),
        ((A, None, C, 1), {"anchor_labels": [0, 1]}, ValueError, "both anchor_labels and"),
        (
            (A, None, C, 1),
            {"anchor_labels": [0, 1], "candidate_labels": [0.5, 1, 2]},
            TypeError,
            "candidate_labels must hold integers",
        ),
        (
            (A, None, C, 1),
            {"anchor_labels": [0, 1, 2], "candidate_labels": [0, 1, 2]},
            ShapeError,
            r"anchor_labels must have shape \(2,\)",
        ),
        (
            (A, None, C, 1),
            {"anchor_labels": ["a", "b"], "candidate_labels": [0, 1, 2]},
            TypeError,
            "anchor_labels must hold integers",
        ),
    ],
)
def test_mine_batch_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        HardNegativeMiner.hardest().mine_batch(*args, **kwargs)


def test_in_batch_miner():
    assert list(InBatchMiner().get_negatives(2, 0, 5)) == [1, 3, 4]
    assert list(InBatchMiner(exclude_positive=False).get_negatives(2, 0, 5)) == [0, 1, 3, 4]
    crate = training.InBatchMiner()
    assert crate.include_positive() is crate and not crate.exclude_positive
    assert list(InBatchMiner(exclude_positive=False).get_negatives(1, 1, 3)) == [0, 2]
    assert InBatchMiner().get_negatives(0, 0, 1).shape == (0,)
    with pytest.raises(ValueError, match=r"anchor_idx must be < batch_size \(3\)"):
        InBatchMiner().get_negatives(3, 0, 3)
    with pytest.raises(ValueError, match="positive_idx must be >= 0"):
        InBatchMiner().get_negatives(0, -1, 3)
    with pytest.raises(TypeError, match="exclude_positive must be a bool"):
        InBatchMiner(exclude_positive=1)  # type: ignore[arg-type]


@given(
    b=st.integers(0, 6),
    n=st.integers(0, 40),
    d=st.integers(1, 9),
    k=st.integers(0, 45),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shape_hardest_matches_the_reference(b, n, d, k, seed):
    a, _, c = data(np.random.default_rng(seed), b, n, d)
    got = HardNegativeMiner.hardest().mine_batch(a, None, c, k)
    assert got.shape == (b, k)
    if b and n:
        # Exact ties in float64 (D = 1 gives cosines of +-1) are not ties after float32
        # rounding, so compare the chosen scores, not the order among near-equal ones.
        cos = ref.cosine_matrix(a, c)
        expected = ref.ranked(cos, k)
        assert np.array_equal(got >= 0, expected >= 0)
        for i in range(b):
            ours = cos[i, got[i][got[i] >= 0]]
            theirs = cos[i, expected[i][expected[i] >= 0]]
            np.testing.assert_allclose(ours, theirs, atol=1e-6)
            assert len(set(got[i][got[i] >= 0])) == len(ours)


def test_huge_k_is_a_clear_value_error_not_a_panic(rng):
    a = rng.standard_normal((2, 4)).astype(np.float32)
    miner = ra.HardNegativeMiner.hardest()
    for k in (2**64 - 1, 2**63):
        with pytest.raises(ValueError, match=r"k"):
            miner.mine_batch(a, None, a, k)


def test_a_common_offset_does_not_change_semi_hard_picks(rng):
    # The report's layout: d(a, p) = 1.707, margin 0.5, candidates around each anchor at
    # distances 1 to 3, everything shifted by 1000 (norms ~5.7k at D = 32).
    b, per_anchor, d, margin, k = 64, 16, 32, 0.5, 6

    def around(centres, radii):
        u = rng.standard_normal(centres.shape)
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        return centres + radii[..., None] * u

    a = rng.standard_normal((b, d))
    p = around(a, np.full(b, 1.707))
    c = around(np.repeat(a, per_anchor, axis=0), rng.uniform(1.0, 3.0, b * per_anchor))
    a, p, c = (x.astype(np.float32) for x in (a, p, c))
    shift = np.float32(1000.0)
    picks = ra.HardNegativeMiner.semi_hard(margin=margin).mine_batch(
        a + shift, p + shift, c + shift, k
    )
    # Exact distances of the shifted float32 data, in float64.
    a64, p64, c64 = (x.astype(np.float64) + 1000.0 for x in (a, p, c))
    d_ap = np.linalg.norm(a64 - p64, axis=1)
    d_an = np.linalg.norm(a64[:, None, :] - c64[None, :, :], axis=2)
    window = (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + margin)
    edge = np.minimum(np.abs(d_an - d_ap[:, None]), np.abs(d_an - d_ap[:, None] - margin))
    expected = ref.ranked(np.where(window, -d_an, np.nan), k)
    checked = 0
    for i in range(b):
        m = min(k, int(window[i].sum()))
        assert window[i, picks[i, :m]].all(), (i, d_an[i, picks[i, :m]], d_ap[i])
        if edge[i].min() > 1e-3:  # away from rounding at the window's edges: the exact picks
            np.testing.assert_array_equal(picks[i, :m], expected[i, :m])
            checked += 1
    assert checked > b // 2


def test_random_mining_never_returns_candidates_with_nan(rng):
    a = rng.standard_normal((40, 8)).astype(np.float32)
    c = rng.standard_normal((30, 8)).astype(np.float32)
    bad = np.arange(0, 30, 3)
    c[bad, 2] = np.nan
    c[1, 0] = np.inf
    miner = ra.HardNegativeMiner.random(seed=1)
    picks = miner.mine_batch(a, None, c, 10)
    assert not np.isin(picks, np.append(bad, 1)).any()
    assert (picks >= 0).all()  # 19 clean candidates: 10 always found
    a[3, 0] = np.nan  # a NaN anchor has NaN similarity with everything
    assert (miner.mine_batch(a, None, c, 10)[3] == -1).all()


def test_a_miner_shared_by_two_threads_never_repeats_a_draw(rng):
    a = rng.standard_normal((4, 8)).astype(np.float32)
    c = rng.standard_normal((4000, 8)).astype(np.float32)  # large enough to release the GIL
    calls = 100
    shared = ra.HardNegativeMiner.random(seed=7)
    results: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        for _ in range(calls):
            picks = shared.mine_batch(a, None, c, 5).tobytes()
            with lock:
                results.append(picks)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sequential = ra.HardNegativeMiner.random(seed=7)
    expected = [sequential.mine_batch(a, None, c, 5).tobytes() for _ in range(2 * calls)]
    assert sorted(results) == sorted(expected)  # each call number drawn exactly once
    assert shared.state_dict()["calls"] == 2 * calls
