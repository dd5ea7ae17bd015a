"""SpectralRegularization: the Laplacian on dense, scipy.sparse and edge-list graphs against a
float64 dense reference and finite differences; the crate's variance penalty and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import ruvector_attention as ra
import ruvector_attention.training as training
from ruvector_attention import ShapeError, SpectralRegularization
from threads import with_thread_counts


def random_graph(rng, n, e, weighted=True):
    """An undirected edge list (each edge once, no duplicates) and its dense weight matrix."""
    pairs = set()
    while len(pairs) < e:
        i, j = rng.integers(0, n, size=2)
        if i != j:
            pairs.add((min(i, j), max(i, j)))
    edges = np.array(sorted(pairs), dtype=np.int64)
    w = rng.uniform(0.1, 2.0, size=e).astype(np.float32) if weighted else np.ones(e, np.float32)
    dense = np.zeros((n, n), np.float32)
    dense[edges[:, 0], edges[:, 1]] = w
    dense[edges[:, 1], edges[:, 0]] = w
    return edges, w, dense


def test_dense_sparse_and_edge_list_agree_with_float64(rng):
    n, d = 40, 7
    x = rng.standard_normal((n, d)).astype(np.float32)
    edges, w, dense = random_graph(rng, n, 90)
    reg = SpectralRegularization(weight=0.3)
    expected_value, expected_grad = ref.laplacian_dense(x, dense)
    results = [
        reg.laplacian_with_gradients(x, dense),
        reg.laplacian_with_gradients(x, sp.csr_matrix(dense)),
        reg.laplacian_with_gradients(x, sp.coo_matrix(dense)),
        reg.laplacian_with_gradients(x, edges, weights=w),
        reg.laplacian_with_gradients(x, edges[:, ::-1].copy(), weights=w),  # either direction
    ]
    scale = float(np.abs(x).max() * dense.sum(axis=1).max())
    for value, grad in results:
        assert isinstance(value, float)
        assert value == pytest.approx(0.3 * expected_value, rel=1e-5)
        assert grad.shape == x.shape and grad.dtype == np.float32
        ref.assert_f32_close(grad, 0.3 * expected_grad, scale=0.6 * scale, ulps=16)
    assert reg.laplacian(x, dense) == pytest.approx(results[0][0], rel=1e-6)


def test_value_is_the_sum_over_edges_of_weighted_squared_differences():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]], np.float32)
    edges = np.array([[0, 1], [1, 2]])
    reg = SpectralRegularization(weight=1.0)
    assert reg.laplacian(x, edges) == 25.0 + 16.0
    assert reg.laplacian(x, edges, weights=np.array([2.0, 0.5])) == 50.0 + 8.0


def test_gradient_matches_finite_differences(rng):
    n, d = 12, 3
    x = rng.standard_normal((n, d)).astype(np.float32)
    edges, w, dense = random_graph(rng, n, 25)
    reg = SpectralRegularization(weight=0.7)
    _, grad = reg.laplacian_with_gradients(x, edges, weights=w)
    fd = ref.numeric_grad(lambda y: 0.7 * ref.laplacian_dense(y, dense)[0], x)
    ref.assert_f32_close(grad, fd, scale=np.abs(fd).max(), ulps=16)


@pytest.mark.parametrize("with_grad", [False, True])
def test_a_value_beyond_float32_is_returned_exactly(rng, with_grad):
    # The report: [[1e19], [-1e19]] on one edge returned inf, where 4e38 fits a Python float.
    reg = SpectralRegularization(weight=1.0)
    x = np.array([[1e19], [-1e19]], np.float32)
    graph = np.array([[0, 1]])
    exact = (2 * float(x[0, 0])) ** 2
    if with_grad:
        value, grad = reg.laplacian_with_gradients(x, graph)
        np.testing.assert_array_equal(grad, [[4 * x[0, 0]], [-4 * x[0, 0]]])
    else:
        value = reg.laplacian(x, graph)
    assert value == pytest.approx(exact, rel=1e-12)
    # Larger graphs too, with ordinary rows beside the huge ones (their share is kept).
    n, d = 30, 5
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:3] *= np.float32(3e19)
    edges, w, dense = random_graph(rng, n, 60)
    expected, _ = ref.laplacian_dense(x, dense)
    assert expected > 3.4e38
    assert reg.laplacian(x, edges, weights=w) == pytest.approx(expected, rel=1e-12)


def test_a_common_offset_cancels_exactly(rng):
    # Differences are taken first, so a large shared offset does not swamp the result.
    x = rng.standard_normal((20, 4)).astype(np.float32)
    edges, _, dense = random_graph(rng, 20, 30, weighted=False)
    reg = SpectralRegularization(weight=1.0)
    shifted = (x + 1000.0).astype(np.float32)
    v_shift, _ = reg.laplacian_with_gradients(shifted, edges)
    expected, _ = ref.laplacian_dense(shifted, dense)
    assert v_shift == pytest.approx(expected, rel=1e-6)


def test_self_loops_and_bool_or_int_adjacency(rng):
    x = rng.standard_normal((5, 2)).astype(np.float32)
    adjacency = np.zeros((5, 5), bool)
    adjacency[0, 1] = adjacency[1, 0] = adjacency[2, 2] = True
    reg = SpectralRegularization(weight=1.0)
    expected = float(np.sum((x[0].astype(np.float64) - x[1]) ** 2))
    assert reg.laplacian(x, adjacency) == pytest.approx(expected, rel=1e-6)
    assert reg.laplacian(x, sp.csr_matrix(adjacency.astype(np.int32))) == pytest.approx(
        expected, rel=1e-6
    )
    assert reg.laplacian(x, np.array([[0, 1], [2, 2]])) == pytest.approx(expected, rel=1e-6)


def test_graph_errors(rng):
    x = rng.standard_normal((4, 2)).astype(np.float32)
    reg = SpectralRegularization()
    asym = np.zeros((4, 4), np.float32)
    asym[0, 1] = 1.0
    with pytest.raises(ValueError, match=r"symmetric: W\[0, 1\] = 1 but W\[1, 0\] = 0"):
        reg.laplacian(x, asym)
    with pytest.raises(ValueError, match="symmetric"):
        reg.laplacian(x, sp.csr_matrix(asym))
    with pytest.raises(ShapeError, match=r"graph must be \(4, 4\)"):
        reg.laplacian(x, sp.csr_matrix(np.zeros((3, 3))))
    with pytest.raises(ShapeError, match=r"dense \(4, 4\) matrix"):
        reg.laplacian(x, np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"node index 4 is outside 0\.\.4"):
        reg.laplacian(x, np.array([[0, 4]]))
    with pytest.raises(ValueError, match="node index -1"):
        reg.laplacian(x, np.array([[0, -1]]))
    with pytest.raises(ShapeError, match=r"weights must be \(2,\)"):
        reg.laplacian(x, np.array([[0, 1], [1, 2]]), weights=np.ones(3))
    with pytest.raises(ValueError, match="weights= is only for edge lists"):
        reg.laplacian(x, np.eye(4, dtype=np.float32), weights=np.ones(4))
    with pytest.raises(ValueError, match="weights= is only for edge lists"):
        reg.laplacian(x, sp.eye(4), weights=np.ones(4))
    with pytest.raises(TypeError, match="graph must hold real numbers"):
        reg.laplacian(x, np.eye(4, dtype=np.complex64))
    with pytest.raises(TypeError, match="weights must contain real floating-point"):
        reg.laplacian(x, np.array([[0, 1]]), weights=np.array([1]))
    with pytest.raises(ShapeError, match="X must be a non-empty 2-D"):
        reg.laplacian(np.zeros((0, 2), np.float32), np.zeros((0, 0), np.float32))
    with pytest.raises(ShapeError, match="X must be a non-empty 2-D"):
        reg.laplacian(np.zeros(4, np.float32), np.eye(4, dtype=np.float32))
    with pytest.raises(TypeError, match="X must contain real floating-point"):
        reg.laplacian(np.ones((4, 2), np.int64), np.eye(4, dtype=np.float32))


def test_weight_validation():
    assert SpectralRegularization().weight == 0.01
    for bad in [-1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="weight"):
            SpectralRegularization(bad)


def test_nan_in_the_signal_propagates(rng):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    x[2, 1] = np.nan
    edges = np.array([[0, 1], [1, 2], [3, 4]])
    value, grad = SpectralRegularization(1.0).laplacian_with_gradients(x, edges)
    assert np.isnan(value)
    assert np.isnan(grad[1]).any() and np.isnan(grad[2]).any()
    assert np.isfinite(grad[[0, 3, 4, 5]]).all()  # nodes not connected to node 2


def test_threads_do_not_change_results(rng):
    n, d = 5000, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    edges = rng.integers(0, n, size=(40000, 2))
    reg = SpectralRegularization(0.5)
    (v1, g1), (v2, g2) = with_thread_counts(lambda: reg.laplacian_with_gradients(x, edges))
    assert v1 == v2
    np.testing.assert_array_equal(g1, g2)
    # Duplicate edges add up, like a multigraph's weights; compare with scipy's sum.
    w = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    sym = (w + w.T).tocsr()
    assert reg.laplacian(x, sym) == pytest.approx(v1, rel=1e-5)


# -- the crate's variance penalty --------------------------------------------------------------


def test_variance_penalty_matches_float64_and_its_gradient_finite_differences(rng):
    x = (rng.standard_normal((9, 5)) * [1, 2, 3, 0.5, 1]).astype(np.float32)
    reg = SpectralRegularization(weight=0.2)
    assert reg.variance_penalty(x) == pytest.approx(ref.variance_penalty(x, 0.2), rel=1e-5)
    value, grad = reg.variance_penalty_with_gradients(x)
    assert value == pytest.approx(ref.variance_penalty(x, 0.2), rel=1e-5)
    fd = ref.numeric_grad(lambda y: ref.variance_penalty(y, 0.2), x)
    ref.assert_f32_close(grad, fd, scale=np.abs(fd).max(), ulps=16)
    assert np.abs(grad).max() > 0  # the crate's gradient is all zeros


def test_the_crates_compute_applies_the_penalty_to_the_stack(rng):
    a, p = rng.standard_normal((2, 4)).astype(np.float32)
    neg = rng.standard_normal((3, 4)).astype(np.float32)
    reg = training.SpectralRegularization(1.0)
    stack = np.vstack([a, p, neg])
    assert reg.compute_batch(stack) == reg.variance_penalty(stack)
    assert reg.compute(a, p, neg) == pytest.approx(ref.variance_penalty(stack, 1.0), rel=1e-5)
    value, grad = reg.compute_with_gradients(a, p, neg)
    fd = ref.numeric_grad(lambda y: ref.variance_penalty(np.vstack([y, p, neg]), 1.0), a)
    assert value == pytest.approx(ref.variance_penalty(stack, 1.0), rel=1e-5)
    ref.assert_f32_close(grad, fd, scale=np.abs(fd).max(), ulps=16)


def test_variance_penalty_errors():
    reg = SpectralRegularization()
    with pytest.raises(ShapeError, match="embeddings must be a non-empty 2-D"):
        reg.variance_penalty(np.zeros((0, 3), np.float32))
    with pytest.raises(ShapeError, match="embeddings must be a non-empty 2-D"):
        reg.variance_penalty(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="embeddings must contain real floating-point"):
        reg.variance_penalty(np.ones((2, 2), bool))


@given(
    n=st.integers(1, 30),
    d=st.integers(1, 20),
    e=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_graph_matches_the_dense_reference(n, d, e, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    edges = rng.integers(0, n, size=(e, 2))
    w = rng.uniform(0, 3, size=e).astype(np.float32)
    dense = np.zeros((n, n))
    np.add.at(dense, (edges[:, 0], edges[:, 1]), w)
    np.add.at(dense, (edges[:, 1], edges[:, 0]), w)
    np.fill_diagonal(dense, 0.0)  # self-loops contribute nothing to L
    value, grad = SpectralRegularization(1.0).laplacian_with_gradients(x, edges, weights=w)
    expected, expected_grad = ref.laplacian_dense(x, dense)
    scale = float(np.abs(x).max() * (dense.sum(axis=1).max() + 1))
    ref.assert_f32_close(value, expected, scale=scale * scale * n, ulps=16)
    ref.assert_f32_close(grad, expected_grad, scale=2 * scale, ulps=16)


def test_a_prepared_graph_gives_the_same_results_and_checks_its_size(rng):
    n, d = 30, 4
    x = rng.standard_normal((n, d)).astype(np.float32)
    edges, w, dense = random_graph(rng, n, 50)
    reg = SpectralRegularization(0.4)
    expected = reg.laplacian_with_gradients(x, edges, weights=w)
    for source, kw in [(edges, {"weights": w}), (dense, {}), (sp.csr_matrix(dense), {})]:
        graph = ra.Graph(source, n, **kw)
        assert graph.num_nodes == n and graph.num_edges == 50
        value, grad = reg.laplacian_with_gradients(x, graph)
        assert value == pytest.approx(expected[0], rel=1e-6)
        np.testing.assert_allclose(grad, expected[1], rtol=1e-5, atol=1e-6)
    indptr, _, _ = graph.csr()
    with pytest.raises(ValueError, match="read-only"):
        indptr[0] = 1
    with pytest.raises(ShapeError, match="graph has 30 nodes but X has 29 rows"):
        reg.laplacian(x[:29], graph)
    with pytest.raises(ValueError, match="a Graph holds its weights"):
        reg.laplacian(x, graph, weights=w)
    with pytest.raises(ValueError, match="num_nodes must be >= 1"):
        ra.Graph(edges, 0)
    with pytest.raises(ValueError, match="node index"):
        ra.Graph(edges, 5)
    assert repr(ra.Graph.from_edges(np.array([[0, 0], [0, 1]]), 2)) == (
        "Graph(num_nodes=2, num_edges=2)"
    )


def test_variance_penalty_propagates_nan(rng):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    x[2, 1] = np.nan
    value, grad = SpectralRegularization(1.0).variance_penalty_with_gradients(x)
    assert np.isnan(value)
    assert np.isnan(grad[:, 1]).all()


def test_a_two_by_two_integer_graph_is_never_guessed():
    x = np.array([[0.0, 0.0], [1.0, 3.0]], np.float32)  # |x0 - x1|^2 = 10
    reg = ra.SpectralRegularization(1.0)
    for graph in (np.array([[0, 1], [1, 0]]), np.eye(2, dtype=int)):
        with pytest.raises(ValueError, match="adjacency matrix or an edge list"):
            reg.laplacian(x, graph)
    assert reg.laplacian(x, ra.Graph.from_adjacency(np.array([[0, 1], [1, 0]]))) == 10.0
    assert reg.laplacian(x, np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)) == 10.0
    assert reg.laplacian(x, ra.Graph.from_adjacency(np.eye(2, dtype=int))) == 0.0
    # As an edge list the same array lists the one edge twice.
    assert reg.laplacian(x, ra.Graph.from_edges(np.array([[0, 1], [1, 0]]), 2)) == 20.0


def test_a_non_canonical_sparse_graph_is_left_as_it_was():
    data = np.array([1.0, 1.0, 1.0, 1.0])
    indices = np.array([1, 1, 0, 0])
    indptr = np.array([0, 2, 4])
    x = np.array([[0.0], [1.0]], np.float32)
    for shape_ok in (True, False):
        m = sp.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(2, 2))
        assert m.nnz == 4 and not m.has_canonical_format
        if shape_ok:
            value = ra.SpectralRegularization(1.0).laplacian(x, m)
            assert value == pytest.approx(2.0)  # duplicates summed: weight 2 on |x0 - x1|^2 = 1
        else:
            with pytest.raises(ShapeError):
                ra.SpectralRegularization(1.0).laplacian(np.zeros((3, 1), np.float32), m)
        assert m.nnz == 4 and list(m.indices) == [1, 1, 0, 0] and list(m.data) == list(data)


def test_nan_graph_weights_are_refused_alike_in_every_form():
    x = np.ones((3, 2), np.float32)
    w = np.array([[0, 1, 0], [1, 0, np.nan], [0, np.nan, 0]])
    reg = ra.SpectralRegularization(1.0)
    for graph in (w, sp.csr_matrix(w), ra.Graph):
        with pytest.raises(ValueError, match="must be finite"):
            if graph is ra.Graph:
                ra.Graph.from_adjacency(w)
            else:
                reg.laplacian(x, graph)
    with pytest.raises(ValueError, match="must be finite"):
        reg.laplacian(x, np.array([[0, 1], [1, 2]]), weights=np.array([1.0, np.inf]))
