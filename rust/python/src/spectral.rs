//! Bindings of the spectral regularisers and of the graph converters they use.

use numpy::{PyArray1, PyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use ruvector_kernels::loss::spectral::{self, Csr, CsrOwned};

use crate::arrays::{readonly, readonly_i64, slice, slice_i64, Buffer};
use crate::call::{run, Cost};
use crate::errors::shape_error;

type Graph<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
);

fn to_python<'py>(py: Python<'py>, csr: CsrOwned) -> Graph<'py> {
    (
        PyArray1::from_vec(py, csr.indptr),
        PyArray1::from_vec(py, csr.indices),
        PyArray1::from_vec(py, csr.weights),
    )
}

/// Symmetric CSR arrays `(indptr, indices, weights)` of an undirected edge list `(E, 2)`.
#[pyfunction]
#[pyo3(signature = (edges, weights, n))]
pub fn csr_from_edges<'py>(
    py: Python<'py>,
    edges: &Bound<'py, PyAny>,
    weights: Option<&Bound<'py, PyAny>>,
    n: usize,
) -> PyResult<Graph<'py>> {
    let e = readonly_i64(edges, "graph")?;
    let w = weights.map(|w| readonly(w, "weights")).transpose()?;
    let e_s = slice_i64(&e, "graph")?;
    let w_s = w.as_ref().map(slice).transpose()?;
    // A sort of the 2E directed edges dominates.
    let cost = Cost::per_element(e_s.len(), 32, 32);
    let csr = run(py, cost, move |_| spectral::csr_from_edges(e_s, w_s, n))?;
    Ok(to_python(py, csr))
}

/// CSR arrays of a dense symmetric weight matrix `(n, n)` (raises if it is not symmetric).
#[pyfunction]
pub fn csr_from_dense<'py>(py: Python<'py>, graph: &Bound<'py, PyAny>) -> PyResult<Graph<'py>> {
    let g = readonly(graph, "graph")?;
    let n = match g.shape() {
        &[rows, cols] if rows == cols => rows,
        other => {
            return Err(shape_error(format!(
                "graph must be a square (N, N) matrix, got shape {other:?}"
            )))
        }
    };
    let g_s = slice(&g)?;
    let cost = Cost::per_element(g_s.len(), 2, 4);
    let csr = run(py, cost, move |_| spectral::csr_from_dense(g_s, n))?;
    Ok(to_python(py, csr))
}

/// `weight * tr(X^T L X)` for the graph in CSR form; with `with_grad`, also `2 weight L X`.
#[pyfunction]
#[pyo3(signature = (x, indptr, indices, weights, *, weight, with_grad))]
#[allow(clippy::too_many_arguments)]
pub fn laplacian<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    weight: f64,
    with_grad: bool,
) -> PyResult<(f64, Option<Bound<'py, PyArrayDyn<f32>>>)> {
    let xs = readonly(x, "X")?;
    let (n, dim) = match xs.shape() {
        &[n, dim] => (n, dim),
        other => return Err(shape_error(format!("X must be 2-D, got shape {other:?}"))),
    };
    let ip = readonly_i64(indptr, "indptr")?;
    let ix = readonly_i64(indices, "indices")?;
    let w = readonly(weights, "weights")?;
    let mut grad = with_grad.then(|| Buffer::output(&[n, dim])).transpose()?;
    let value = {
        let graph = Csr {
            n,
            indptr: slice_i64(&ip, "indptr")?,
            indices: slice_i64(&ix, "indices")?,
            weights: slice(&w)?,
        };
        let x_s = slice(&xs)?;
        let g = grad.as_mut().map(Buffer::as_mut_slice);
        // One axpy per stored edge, rows read through the index.
        let cost = Cost {
            flops: 3 * graph.indices.len() * dim,
            bytes: 4 * (graph.indices.len() * dim + 2 * x_s.len()),
        };
        // The kernel runs to the end (it takes no stop token); its outputs are fresh.
        run(py, cost, move |_| {
            spectral::laplacian(x_s, dim, &graph, weight, g)
        })?
    };
    Ok((value, grad.map(|g| g.into_py(py)).transpose()?))
}

/// The crate's variance-uniformity penalty of `embeddings (N, D)` and, if asked, its gradient.
#[pyfunction]
#[pyo3(signature = (embeddings, *, weight, with_grad))]
pub fn variance_penalty<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    weight: f64,
    with_grad: bool,
) -> PyResult<(f64, Option<Bound<'py, PyArrayDyn<f32>>>)> {
    let xs = readonly(embeddings, "embeddings")?;
    let (n, dim) = match xs.shape() {
        &[n, dim] => (n, dim),
        other => {
            return Err(shape_error(format!(
                "embeddings must be 2-D, got shape {other:?}"
            )))
        }
    };
    let mut grad = with_grad.then(|| Buffer::output(&[n, dim])).transpose()?;
    let value = {
        let x_s = slice(&xs)?;
        let g = grad.as_mut().map(Buffer::as_mut_slice);
        let cost = Cost::per_element(x_s.len(), 6, 12);
        run(py, cost, move |_| {
            spectral::variance_penalty(x_s, n, dim, weight, g)
        })?
    };
    Ok((value, grad.map(|g| g.into_py(py)).transpose()?))
}
