"""Spectral regularisation: graph-Laplacian smoothness, and the crate's variance penalty."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native
from . import _validate as check
from ._arrays import FloatArray, as_float32, float_matrix, is_scipy_sparse
from ._loss_common import one_sample
from .errors import ArgumentError, ShapeError

__all__ = ["Graph", "SpectralRegularization"]

_CsrArrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]


def _graph_weights(values: npt.NDArray[Any], name: str) -> FloatArray:
    """Graph weights as float32. They may be bool, int or float (an adjacency matrix is often 0/1
    integers); every form of graph follows the same rule: each weight must be finite in float32
    (a NaN or an overflowing weight would make every value NaN or inf)."""
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    with np.errstate(over="ignore"):
        weights = np.ascontiguousarray(values, dtype=np.float32)
    return _finite_weights(weights, name, values)


def _finite_weights(
    weights: FloatArray, name: str, original: npt.NDArray[Any] | None = None
) -> FloatArray:
    bad = ~np.isfinite(weights)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        position = where[0] if len(where) == 1 else where
        raise ArgumentError(
            f"{name} weights must be finite numbers within float32's range; "
            f"entry {position} is {(weights if original is None else original)[where]!r}"
        )
    return weights


class Graph:
    """An undirected weighted graph, checked and converted once, for repeated Laplacian calls.

    ``SpectralRegularization.laplacian`` accepts dense matrices, ``scipy.sparse`` matrices and edge
    lists directly, but then converts and checks them on every call (for a scipy matrix that
    includes the symmetry check). Build a ``Graph`` once when the graph does not change.

    Args:
        graph: a dense symmetric (N, N) matrix, a ``scipy.sparse`` matrix, or an integer (E, 2)
            edge list (each undirected edge once).
        num_nodes: N, the number of nodes (rows of the signal).
        weights: (E,) edge weights, for an edge list only (default 1).

    Examples:
        >>> g = Graph([[0, 1], [1, 2]], num_nodes=3)
        >>> g.num_nodes, g.num_edges
        (3, 2)
    """

    __slots__ = ("_csr", "_n")

    def __init__(self, graph: object, num_nodes: int, *, weights: object = None) -> None:
        self._n = check.positive_int("num_nodes", num_nodes)
        self._csr = _csr_of(graph, self._n, weights)
        for arr in self._csr:
            arr.flags.writeable = False

    @classmethod
    def from_edges(cls, edges: object, num_nodes: int, *, weights: object = None) -> Graph:
        """A graph from an integer (E, 2) edge list (each undirected edge once).

        Examples:
            >>> Graph.from_edges([[0, 1], [1, 0]], num_nodes=2).num_edges  # listed twice: 2 edges
            2
        """
        n = check.positive_int("num_nodes", num_nodes)
        return cls._of_csr(_edges_csr(edges, n, weights), n)

    @classmethod
    def from_adjacency(cls, matrix: object) -> Graph:
        """A graph from a dense symmetric (N, N) weight matrix (bool, int or float).

        Examples:
            >>> Graph.from_adjacency([[0, 1], [1, 0]]).num_edges
            1
        """
        csr = _adjacency_csr(matrix)
        return cls._of_csr(csr, int(csr[0].shape[0]) - 1)

    @classmethod
    def _of_csr(cls, csr: _CsrArrays, n: int) -> Graph:
        graph = cls.__new__(cls)
        graph._n = n
        graph._csr = csr
        for arr in csr:
            arr.flags.writeable = False
        return graph

    @property
    def num_nodes(self) -> int:
        return self._n

    @property
    def num_edges(self) -> int:
        """Undirected edges (self-loops count once)."""
        indptr, indices, _ = self._csr
        rows = np.repeat(np.arange(self._n), np.diff(indptr))
        return int(np.count_nonzero(indices > rows) + np.count_nonzero(indices == rows))

    def csr(self) -> _CsrArrays:
        """The symmetric CSR arrays ``(indptr, indices, weights)`` (read-only)."""
        return self._csr

    def __repr__(self) -> str:
        return f"Graph(num_nodes={self._n}, num_edges={self.num_edges})"


def _csr_of(graph: object, n: int, weights: object) -> _CsrArrays:
    """The symmetric CSR arrays of ``graph`` for a signal of ``n`` nodes."""
    if isinstance(graph, Graph):
        if weights is not None:
            raise ArgumentError("weights= is only for edge lists; a Graph holds its weights")
        if graph.num_nodes != n:
            raise ShapeError(f"graph has {graph.num_nodes} nodes but X has {n} rows")
        return graph.csr()
    if is_scipy_sparse(graph):
        if weights is not None:
            raise ArgumentError(
                "weights= is only for edge lists; a sparse matrix holds its weights"
            )
        matrix: Any = graph
        if matrix.shape != (n, n):
            raise ShapeError(f"graph must be ({n}, {n}) for X with {n} rows, got {matrix.shape}")
        # A copy: summing duplicates and sorting indices must never rewrite the caller's matrix.
        csr = matrix.tocsr(copy=True)
        csr.sum_duplicates()
        weights = _graph_weights(csr.data, "graph")  # finite first: NaN != NaN is not asymmetry
        if (csr != csr.T).nnz != 0:
            raise ArgumentError(
                "graph must be symmetric (W == W.T); got a sparse matrix that is not"
            )
        return (
            np.ascontiguousarray(csr.indptr, dtype=np.int64),
            np.ascontiguousarray(csr.indices, dtype=np.int64),
            weights,
        )
    try:
        arr = np.asarray(graph)
    except Exception as exc:
        raise TypeError(f"graph must be an array or a scipy.sparse matrix: {exc}") from exc
    is_edge_list = arr.ndim == 2 and arr.dtype.kind in "iu" and arr.shape[1] == 2
    if is_edge_list and arr.shape == (n, n) and weights is None:
        # A 2 x 2 integer array for 2 nodes reads as both (with weights= it is an edge list).
        raise ArgumentError(
            "graph is a 2 x 2 integer array for 2 nodes: it could be an adjacency matrix or an "
            "edge list of 2 edges; say which with Graph.from_adjacency(...) or "
            "Graph.from_edges(..., num_nodes=2)"
        )
    if is_edge_list:
        return _edges_csr(arr, n, weights)
    if weights is not None:
        raise ArgumentError("weights= is only for edge lists; a dense matrix holds its weights")
    if arr.ndim != 2 or arr.shape != (n, n):
        raise ShapeError(
            f"graph must be a dense ({n}, {n}) matrix, an integer (E, 2) edge list or a "
            f"scipy.sparse matrix; got an array of shape {arr.shape} and dtype {arr.dtype}"
        )
    return _adjacency_csr(arr)


def _edges_csr(edges: object, n: int, weights: object) -> _CsrArrays:
    arr = np.asarray(edges)
    if arr.ndim != 2 or arr.shape[1] != 2 or (arr.size and arr.dtype.kind not in "iu"):
        raise ShapeError(
            f"edges must be an integer (E, 2) array, got shape {arr.shape} and dtype {arr.dtype}"
        )
    pairs = np.ascontiguousarray(arr, dtype=np.int64)
    w = None
    if weights is not None:
        w = _finite_weights(as_float32(weights, "weights"), "edge")
        if w.shape != (pairs.shape[0],):
            raise ShapeError(f"weights must be ({pairs.shape[0]},), one per edge, got {w.shape}")
    return _native.csr_from_edges(pairs, w, n)


def _adjacency_csr(matrix: object) -> _CsrArrays:
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ShapeError(f"an adjacency matrix must be square (N, N), got shape {arr.shape}")
    return _native.csr_from_dense(_graph_weights(arr, "graph"))


class SpectralRegularization:
    """Graph-Laplacian smoothness of a signal, and the crate's variance-uniformity penalty.

    ``laplacian(X, graph)`` is ``weight * tr(X^T L X) = weight * sum over edges {i, j} of
    w_ij |x_i - x_j|^2`` with ``L = Deg - W``; its gradient is ``2 * weight * L X``. ``graph`` is
    a dense symmetric (N, N) matrix (float or bool), a ``scipy.sparse`` matrix, an integer
    (E, 2) edge list (each undirected edge once) with optional ``weights=(E,)``, or a
    :class:`Graph` prepared once from any of these (faster when the graph is reused).

    ``variance_penalty(embeddings)`` is the crate's own regulariser (not spectral, despite the
    class's name, which is the crate's): ``weight`` times the variance across dimensions of the
    per-dimension variances; ``variance_penalty_with_gradients`` gives its true gradient (the crate
    returns zeros). The crate's names for it, ``compute_batch`` and ``compute``, are in
    ``ruvector_attention.training``.

    Args:
        weight: finite, >= 0.

    Examples:
        >>> import numpy as np
        >>> reg = SpectralRegularization(weight=1.0)
        >>> x = np.array([[0.0], [1.0], [3.0]], np.float32)
        >>> reg.laplacian(x, np.array([[0, 1], [1, 2]]))  # 1^2 + 2^2
        5.0
    """

    def __init__(self, weight: float = 0.01) -> None:
        self._weight = check.float32_non_negative("weight", weight)

    @property
    def weight(self) -> float:
        return self._weight

    def __repr__(self) -> str:
        return f"SpectralRegularization(weight={self._weight!r})"

    # -- graph Laplacian ------------------------------------------------------------------------

    def laplacian(self, X: object, graph: object, *, weights: object = None) -> float:
        """``weight * tr(X^T L X)`` for X (N, D) on ``graph``."""
        x = float_matrix(X, "X")
        indptr, indices, w = _csr_of(graph, x.shape[0], weights)
        value, _ = _native.laplacian(x, indptr, indices, w, weight=self._weight, with_grad=False)
        return value

    def laplacian_with_gradients(
        self, X: object, graph: object, *, weights: object = None
    ) -> tuple[float, FloatArray]:
        """``(value, 2 * weight * L X)``."""
        x = float_matrix(X, "X")
        indptr, indices, w = _csr_of(graph, x.shape[0], weights)
        value, grad = _native.laplacian(x, indptr, indices, w, weight=self._weight, with_grad=True)
        assert grad is not None
        return value, grad

    # -- the crate's variance penalty -----------------------------------------------------------

    def variance_penalty(self, embeddings: object) -> float:
        """``weight`` times the variance across dimensions of the per-dimension variances of
        embeddings (N, D)."""
        value, _ = _native.variance_penalty(
            float_matrix(embeddings, "embeddings"), weight=self._weight, with_grad=False
        )
        return value

    def variance_penalty_with_gradients(self, embeddings: object) -> tuple[float, FloatArray]:
        """The penalty and its gradient with respect to every embedding (N, D)."""
        value, grad = _native.variance_penalty(
            float_matrix(embeddings, "embeddings"), weight=self._weight, with_grad=True
        )
        assert grad is not None
        return value, grad


def _stack(anchor: object, positive: object, negatives: object) -> FloatArray:
    a, p, n = one_sample(anchor, positive, negatives)
    return np.concatenate([a, p, n[0]], axis=0)
