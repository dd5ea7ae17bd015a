//! Binding of the mining kernel. The Python layer (`ruvector_attention/mining.py`) checks shapes,
//! dtypes and labels with user-facing messages and owns the random generator's state.

use numpy::ndarray::{Array2, ArrayD};
use numpy::{PyArray, PyArray1, PyArrayDyn};
use pyo3::prelude::*;
use ruvector_kernels::cancel::NEVER;
use ruvector_kernels::mining::{self, MineInputs, Strategy};

use crate::arrays::{matrix_dims, readonly, readonly_i64, slice, slice_i64};
use crate::call::{run, Cost};
use crate::errors::{internal_error, shape_error, KernelErr};

/// A miner's strategy and its settings, built once per Python miner (the strategy crosses the
/// boundary as this typed value, not as a name and a list of numbers on every call).
#[pyclass(frozen, module = "ruvector_attention._native")]
pub struct MinerConfig(Strategy);

#[pymethods]
impl MinerConfig {
    #[staticmethod]
    fn hardest() -> Self {
        Self(Strategy::Hardest)
    }

    #[staticmethod]
    fn semi_hard(margin: f32) -> Self {
        Self(Strategy::SemiHard { margin })
    }

    #[staticmethod]
    fn softmax(temperature: f32) -> Self {
        Self(Strategy::Softmax { temperature })
    }

    #[staticmethod]
    fn wu(cutoff: f32, nonzero_loss_cutoff: f32) -> Self {
        Self(Strategy::Wu {
            cutoff,
            nonzero_loss_cutoff,
        })
    }

    #[staticmethod]
    fn random() -> Self {
        Self(Strategy::Random)
    }

    fn __repr__(&self) -> String {
        format!("MinerConfig({:?})", self.0)
    }
}

/// `B x k` candidate indices (int64, -1 padded) for the miner's strategy. `labels` is
/// `(anchor_labels, candidate_labels)` or None.
#[pyfunction]
#[pyo3(signature = (anchors, positives, candidates, k, *, config, labels=None, key, call))]
#[allow(clippy::too_many_arguments)]
pub fn mine<'py>(
    py: Python<'py>,
    anchors: &Bound<'py, PyAny>,
    positives: Option<&Bound<'py, PyAny>>,
    candidates: &Bound<'py, PyAny>,
    k: usize,
    config: &MinerConfig,
    labels: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    key: u64,
    call: u64,
) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let strategy = config.0;
    let a = readonly(anchors, "anchors")?;
    let p = positives.map(|p| readonly(p, "positives")).transpose()?;
    let c = readonly(candidates, "candidates")?;
    let (batch, dim) = matrix_dims(&a, "anchors")?;
    let (pool, _) = matrix_dims(&c, "candidates")?;
    let labels = labels
        .map(|(la, lc)| {
            Ok::<_, PyErr>((
                readonly_i64(&la, "anchor_labels")?,
                readonly_i64(&lc, "candidate_labels")?,
            ))
        })
        .transpose()?;
    let labels = labels
        .as_ref()
        .map(|(la, lc)| {
            Ok::<_, PyErr>((
                slice_i64(la, "anchor_labels")?,
                slice_i64(lc, "candidate_labels")?,
            ))
        })
        .transpose()?;
    let inputs = MineInputs {
        anchors: slice(&a)?,
        positives: p.as_ref().map(slice).transpose()?,
        candidates: slice(&c)?,
        batch,
        pool,
        dim,
        labels,
        key,
        call,
        cancel: &NEVER,
    };
    // `k` is checked against the batch by the Python layer (`mining.py`); a product beyond the
    // address space can only come from a direct call, and is an allocation that fails.
    let len = batch.saturating_mul(k);
    let mut out = ruvector_kernels::alloc::filled(len, -1i64).map_err(KernelErr)?;
    // One GEMM of anchors against candidates, then a pass over the scores.
    let cost = Cost {
        flops: 2 * batch * pool * dim,
        bytes: 4 * (batch + pool) * dim,
    };
    {
        let out = &mut out[..];
        run(py, cost, move |cancel| {
            mining::mine(&MineInputs { cancel, ..inputs }, strategy, k, out)
        })?;
    }
    let array: ArrayD<i64> = Array2::from_shape_vec((batch, k), out)
        .map_err(|err| internal_error(format!("internal: output shape: {err}")))?
        .into_dyn();
    Ok(PyArray::from_owned_array(py, array))
}

/// The corpus miner's seeded draws: one uniform number in [0, 1) per (query, corpus row) pair
/// (see `ruvector_kernels::mining::corpus_key`), as a fresh float64 array.
#[pyfunction]
#[pyo3(signature = (seed, queries, rows, /))]
pub fn corpus_keys<'py>(
    py: Python<'py>,
    seed: u64,
    queries: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let q = readonly_i64(queries, "queries")?;
    let r = readonly_i64(rows, "rows")?;
    let (q, r) = (slice_i64(&q, "queries")?, slice_i64(&r, "rows")?);
    if q.len() != r.len() {
        return Err(shape_error(format!(
            "queries and rows must have the same length, got {} and {}",
            q.len(),
            r.len()
        )));
    }
    let mut out = vec![0.0f64; q.len()];
    mining::corpus_keys(seed, q, r, &mut out);
    Ok(PyArray::from_vec(py, out))
}

/// `(queries, rows, dim)` of the corpus miner's two matrices, which must share their columns.
fn queries_and_rows(
    queries: &numpy::PyReadonlyArrayDyn<'_, f32>,
    rows: &numpy::PyReadonlyArrayDyn<'_, f32>,
) -> PyResult<(usize, usize, usize)> {
    let (n_queries, dim) = matrix_dims(queries, "queries")?;
    let (n_rows, row_dim) = matrix_dims(rows, "rows")?;
    if row_dim != dim {
        return Err(shape_error(format!(
            "rows must have {dim} columns like queries, got {row_dim}"
        )));
    }
    Ok((n_queries, n_rows, dim))
}

/// The exact score of corpus mining for each (query, row) pair (see
/// `ruvector_kernels::mining::exact_cosines`), as a fresh float64 array.
#[pyfunction]
#[pyo3(signature = (queries, rows, query_index, row_index, /))]
pub fn exact_cosines<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    query_index: &Bound<'py, PyAny>,
    row_index: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (q, r) = (readonly(queries, "queries")?, readonly(rows, "rows")?);
    let (_, _, dim) = queries_and_rows(&q, &r)?;
    let qi = readonly_i64(query_index, "query_index")?;
    let ri = readonly_i64(row_index, "row_index")?;
    let (qi, ri) = (slice_i64(&qi, "query_index")?, slice_i64(&ri, "row_index")?);
    let (q, r) = (slice(&q)?, slice(&r)?);
    let mut out = ruvector_kernels::alloc::filled(ri.len(), 0.0f64).map_err(KernelErr)?;
    let cost = Cost {
        flops: 2 * ri.len() * dim,
        bytes: 8 * ri.len() * dim,
    };
    {
        let out = &mut out[..];
        run(py, cost, move |_| {
            mining::exact_cosines(q, r, dim, qi, ri, out)
        })?;
    }
    Ok(PyArray::from_vec(py, out))
}

/// The bound on the float32 preselection's score error at this dimension (see
/// `ruvector_kernels::mining::preselection_error`).
#[pyfunction]
#[pyo3(signature = (dim, /))]
pub fn preselection_error(dim: usize) -> f64 {
    mining::preselection_error(dim)
}

/// Per query its listed rows (Q, k), its count above the ceiling (Q,) and, with a draw, its
/// drawn rows (Q, size).
type ListsAndCounts<'py> = (
    Bound<'py, PyArrayDyn<i64>>,
    Bound<'py, PyArray1<u64>>,
    Option<Bound<'py, PyArrayDyn<i64>>>,
);

/// The draw's settings as Python passes them: `(seed, query_ids, floors, first_row, size)`.
type DrawArgs<'py> = (u64, Bound<'py, PyAny>, Bound<'py, PyAny>, u64, usize);

/// The corpus miner's preselection (see `ruvector_kernels::mining::hardest_within`): per query
/// the `k` best HARDEST keys at most its ceiling among the rows it does not exclude, and the
/// count of its other rows above the ceiling. `ceilings`: float32 (Q,) or None; `excluded`:
/// `(offsets, columns)` int64 arrays, each query's sorted chunk rows, or None; `draw`: random
/// sampling's settings (int64 query ids and float32 floors per query) or None.
#[pyfunction]
#[pyo3(signature = (queries, rows, k, ceilings, excluded, draw, /))]
#[allow(clippy::too_many_arguments)]
pub fn hardest_within<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    k: usize,
    ceilings: Option<&Bound<'py, PyAny>>,
    excluded: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    draw: Option<DrawArgs<'py>>,
) -> PyResult<ListsAndCounts<'py>> {
    let (a, c) = (readonly(queries, "queries")?, readonly(rows, "rows")?);
    let (batch, pool, dim) = queries_and_rows(&a, &c)?;
    let ceilings = ceilings.map(|x| readonly(x, "ceilings")).transpose()?;
    let ceilings = ceilings.as_ref().map(slice).transpose()?;
    let excluded = excluded
        .map(|(o, c)| Ok::<_, PyErr>((readonly_i64(&o, "offsets")?, readonly_i64(&c, "columns")?)))
        .transpose()?;
    // The kernel reads offsets as usize and columns as u32; negative or huge values are refused
    // here by name rather than wrapped.
    let excluded = excluded
        .as_ref()
        .map(|(o, c)| {
            let (o, c) = (slice_i64(o, "offsets")?, slice_i64(c, "columns")?);
            let offsets = o
                .iter()
                .map(|&v| usize::try_from(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| shape_error("offsets must be non-negative"))?;
            let columns = c
                .iter()
                .map(|&v| u32::try_from(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| shape_error("columns must be in 0..2**32"))?;
            Ok::<_, PyErr>((offsets, columns))
        })
        .transpose()?;
    let draw_arrays = draw
        .as_ref()
        .map(|(_, ids, floors, _, _)| {
            Ok::<_, PyErr>((readonly_i64(ids, "query_ids")?, readonly(floors, "floors")?))
        })
        .transpose()?;
    let draw_slices = draw_arrays
        .as_ref()
        .map(|(ids, floors)| Ok::<_, PyErr>((slice_i64(ids, "query_ids")?, slice(floors)?)))
        .transpose()?;
    let draw_size = draw.as_ref().map_or(0, |d| d.4);
    let limits = mining::Limits {
        ceilings,
        excluded: excluded.as_ref().map(|(o, c)| (o.as_slice(), c.as_slice())),
        draw: match (&draw, draw_slices) {
            (Some((seed, _, _, first_row, size)), Some((query_ids, floors))) => {
                Some(mining::Draw {
                    seed: *seed,
                    query_ids,
                    floors,
                    first_row: *first_row,
                    size: *size,
                })
            }
            _ => None,
        },
    };
    let inputs = MineInputs {
        anchors: slice(&a)?,
        positives: None,
        candidates: slice(&c)?,
        batch,
        pool,
        dim,
        labels: None,
        key: 0,
        call: 0,
        cancel: &NEVER,
    };
    let mut out =
        ruvector_kernels::alloc::filled(batch.saturating_mul(k), -1i64).map_err(KernelErr)?;
    let mut over = vec![0u64; batch];
    let mut drawn = ruvector_kernels::alloc::filled(batch.saturating_mul(draw_size), -1i64)
        .map_err(KernelErr)?;
    let cost = Cost {
        flops: 2 * batch * pool * dim,
        bytes: 4 * (batch + pool) * dim,
    };
    {
        let (out, over, drawn, limits) = (&mut out[..], &mut over[..], &mut drawn[..], &limits);
        run(py, cost, move |cancel| {
            let inputs = MineInputs { cancel, ..inputs };
            mining::hardest_within(&inputs, limits, k, out, over, drawn)
        })?;
    }
    let as_matrix = |data: Vec<i64>, cols: usize| {
        Array2::from_shape_vec((batch, cols), data)
            .map(|a| a.into_dyn())
            .map_err(|err| internal_error(format!("internal: output shape: {err}")))
    };
    let lists = PyArray::from_owned_array(py, as_matrix(out, k)?);
    let drawn = match draw {
        Some(_) => Some(PyArray::from_owned_array(py, as_matrix(drawn, draw_size)?)),
        None => None,
    };
    Ok((lists, PyArray::from_vec(py, over), drawn))
}
