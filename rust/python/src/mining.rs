//! Binding of the mining kernel. The Python layer (`ruvector_attention/mining.py`) checks shapes,
//! dtypes and labels with user-facing messages and owns the random generator's state.

use numpy::ndarray::{Array2, ArrayD};
use numpy::{PyArray, PyArrayDyn};
use pyo3::prelude::*;
use ruvector_kernels::cancel::NEVER;
use ruvector_kernels::mining::{self, MineInputs, Strategy};

use crate::arrays::{matrix_dims, readonly, readonly_i64, slice};
use crate::errors::{run_interruptible, to_pyerr, type_error, value_error};

/// `B x k` candidate indices (int64, -1 padded) for the given strategy.
#[pyfunction]
#[pyo3(signature = (
    anchors, positives, candidates, k, *, strategy, margin, temperature, cutoff,
    nonzero_loss_cutoff, anchor_labels=None, candidate_labels=None, key, call
))]
#[allow(clippy::too_many_arguments)]
pub fn mine<'py>(
    py: Python<'py>,
    anchors: &Bound<'py, PyAny>,
    positives: Option<&Bound<'py, PyAny>>,
    candidates: &Bound<'py, PyAny>,
    k: usize,
    strategy: &str,
    margin: f32,
    temperature: f32,
    cutoff: f32,
    nonzero_loss_cutoff: f32,
    anchor_labels: Option<&Bound<'py, PyAny>>,
    candidate_labels: Option<&Bound<'py, PyAny>>,
    key: u64,
    call: u64,
) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let strategy = match strategy {
        "hardest" => Strategy::Hardest,
        "semi_hard" => Strategy::SemiHard { margin },
        "softmax" => Strategy::Softmax { temperature },
        "wu" => Strategy::Wu {
            cutoff,
            nonzero_loss_cutoff,
        },
        "random" => Strategy::Random,
        other => return Err(value_error(format!("unknown strategy {other:?}"))),
    };
    let a = readonly(anchors, "anchors")?;
    let p = positives.map(|p| readonly(p, "positives")).transpose()?;
    let c = readonly(candidates, "candidates")?;
    let (batch, dim) = matrix_dims(py, &a, "anchors")?;
    let (pool, _) = matrix_dims(py, &c, "candidates")?;
    let la = anchor_labels
        .map(|l| readonly_i64(l, "anchor_labels"))
        .transpose()?;
    let lc = candidate_labels
        .map(|l| readonly_i64(l, "candidate_labels"))
        .transpose()?;
    let labels = match (&la, &lc) {
        (Some(la), Some(lc)) => Some((
            la.as_slice()
                .map_err(|_| type_error("anchor_labels must be contiguous"))?,
            lc.as_slice()
                .map_err(|_| type_error("candidate_labels must be contiguous"))?,
        )),
        (None, None) => None,
        _ => {
            return Err(value_error(
                "pass both anchor_labels and candidate_labels, or neither",
            ))
        }
    };
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
    let len = batch.checked_mul(k).ok_or_else(|| {
        value_error(format!(
            "k = {k} is too large: a {batch} x {k} result exceeds the address space"
        ))
    })?;
    let mut out = ruvector_kernels::alloc::filled(len, -1i64).map_err(|e| to_pyerr(py, e))?;
    let work = batch * pool * dim;
    {
        let out = &mut out[..];
        run_interruptible(py, work, move |cancel| {
            mining::mine(&MineInputs { cancel, ..inputs }, strategy, k, out)
        })?;
    }
    let array: ArrayD<i64> = Array2::from_shape_vec((batch, k), out)
        .map_err(|err| value_error(format!("internal: output shape: {err}")))?
        .into_dyn();
    Ok(PyArray::from_owned_array(py, array))
}
