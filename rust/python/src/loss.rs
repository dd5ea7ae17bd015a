//! Bindings of the loss kernels. The Python layer (`ruvector_attention/_loss_common.py` and the
//! loss classes) checks shapes and dtypes with user-facing messages; the kernels check lengths.
//!
//! Each function returns per-row (or per-term) losses as float64, which the Python layer reduces,
//! and, when `grad_scale` is given, fresh float32 gradient arrays already multiplied by it (the
//! reduction's factor: 1/B for a mean).

use numpy::{PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use ruvector_kernels::cancel::NEVER;
use ruvector_kernels::loss::info_nce_pooled::{info_nce_pooled as pooled, PooledInputs};
use ruvector_kernels::loss::local_contrastive::{
    local_contrastive as margin_kernel, MarginInputs, Negatives,
};
use ruvector_kernels::loss::{
    info_nce_per_anchor as per_anchor, GradScale, LossGrads, PerAnchorDims, PerAnchorInputs,
};

use crate::arrays::{matrix_dims, readonly, slice, Buffer};
use crate::call::{run, Cost};
use crate::errors::shape_error;

type Array<'py> = Bound<'py, PyArrayDyn<f32>>;
type Grads<'py> = Option<(Array<'py>, Array<'py>, Option<Array<'py>>)>;
type Losses<'py> = Bound<'py, PyArrayDyn<f64>>;

/// The gradient outputs of one loss call: allocated before the kernel runs (so `MemoryError`
/// comes before any work), written by it, then handed to NumPy without a copy.
struct GradOutputs {
    anchors: Buffer,
    positives: Buffer,
    negatives: Option<Buffer>,
    scale: f32,
    /// Per-item upstream weights (an autograd engine's gradient of unreduced losses).
    weights: Option<Vec<f32>>,
}

impl GradOutputs {
    /// Outputs shaped like the inputs when gradients are asked for (`scale` given). Their
    /// contents are unspecified until the kernel writes every element (see `Buffer`).
    fn new(
        scale: Option<f64>,
        weights: Option<Vec<f32>>,
        a: &PyReadonlyArrayDyn<'_, f32>,
        p: &PyReadonlyArrayDyn<'_, f32>,
        n: Option<&PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<Option<Self>> {
        let Some(scale) = scale else {
            return Ok(None);
        };
        Ok(Some(Self {
            anchors: Buffer::output(a.shape())?,
            positives: Buffer::output(p.shape())?,
            negatives: n.map(|n| Buffer::output(n.shape())).transpose()?,
            scale: scale as f32,
            weights,
        }))
    }

    /// The kernels' view of the outputs.
    fn as_loss_grads(&mut self) -> LossGrads<'_> {
        LossGrads {
            anchors: self.anchors.as_mut_slice(),
            positives: self.positives.as_mut_slice(),
            negatives: self.negatives.as_mut().map(Buffer::as_mut_slice),
            scale: GradScale {
                scale: self.scale,
                weights: self.weights.as_deref(),
            },
        }
    }

    fn into_py(this: Option<Self>, py: Python<'_>) -> PyResult<Grads<'_>> {
        this.map(|g| {
            Ok((
                g.anchors.into_py(py)?,
                g.positives.into_py(py)?,
                g.negatives.map(|n| n.into_py(py)).transpose()?,
            ))
        })
        .transpose()
    }
}

/// The outputs of one loss call: per-row (or per-term) losses and, when asked, gradients.
struct LossCall {
    losses: Vec<f64>,
    grads: Option<GradOutputs>,
}

impl LossCall {
    fn new(
        terms: usize,
        grad_scale: Option<f64>,
        grad_weights: Option<&Bound<'_, PyAny>>,
        a: &PyReadonlyArrayDyn<'_, f32>,
        p: &PyReadonlyArrayDyn<'_, f32>,
        n: Option<&PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<Self> {
        // One weight per loss item (the kernel checks the count); a copy of B or B x N floats.
        let weights = grad_weights
            .map(|w| -> PyResult<Vec<f32>> { Ok(slice(&readonly(w, "grad_weights")?)?.to_vec()) })
            .transpose()?;
        Ok(Self {
            losses: vec![0.0f64; terms],
            grads: GradOutputs::new(grad_scale, weights, a, p, n)?,
        })
    }

    /// What the kernel writes: the losses and the gradients' view.
    fn outputs(&mut self) -> (&mut [f64], Option<LossGrads<'_>>) {
        let grads = self.grads.as_mut().map(GradOutputs::as_loss_grads);
        (&mut self.losses, grads)
    }

    /// `(losses shaped `shape`, gradients)` as NumPy arrays.
    fn into_py<'py>(self, py: Python<'py>, shape: &[usize]) -> PyResult<(Losses<'py>, Grads<'py>)> {
        Ok((
            Buffer::from_f64(py, self.losses, shape)?,
            GradOutputs::into_py(self.grads, py)?,
        ))
    }
}

type Input<'py> = PyReadonlyArrayDyn<'py, f32>;

/// Anchors (B x D), positives and negatives borrowed for reading, with B and D.
fn borrow_inputs<'py>(
    anchors: &Bound<'py, PyAny>,
    positives: &Bound<'py, PyAny>,
    negatives: &Bound<'py, PyAny>,
) -> PyResult<(Input<'py>, Input<'py>, Input<'py>, usize, usize)> {
    let a = readonly(anchors, "anchors")?;
    let (batch, dim) = matrix_dims(&a, "anchors")?;
    Ok((
        a,
        readonly(positives, "positives")?,
        readonly(negatives, "negatives")?,
        batch,
        dim,
    ))
}

/// InfoNCE with negatives per anchor (`negatives` is B x N x D).
#[pyfunction]
#[pyo3(signature = (anchors, positives, negatives, *, temperature, grad_scale=None, grad_weights=None))]
pub fn info_nce_per_anchor<'py>(
    py: Python<'py>,
    anchors: &Bound<'py, PyAny>,
    positives: &Bound<'py, PyAny>,
    negatives: &Bound<'py, PyAny>,
    temperature: f64,
    grad_scale: Option<f64>,
    grad_weights: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Losses<'py>, Grads<'py>)> {
    let (a, p, ng, batch, dim) = borrow_inputs(anchors, positives, negatives)?;
    let count = match ng.shape() {
        &[_, count, _] => count,
        other => {
            return Err(shape_error(format!(
                "negatives must be 3-D here, got shape {other:?}"
            )))
        }
    };
    let dims = PerAnchorDims {
        batch,
        negatives: count,
        dim,
    };
    let mut call = LossCall::new(batch, grad_scale, grad_weights, &a, &p, Some(&ng))?;
    let (a_s, p_s, n_s) = (slice(&a)?, slice(&p)?, slice(&ng)?);
    // One dot product per (anchor, positive or negative) and their norms; the gradients walk
    // every row again, twice the work.
    let passes = if call.grads.is_some() { 3 } else { 1 };
    let cost = Cost {
        flops: 4 * batch * (count + 1) * dim * passes,
        bytes: 4 * (a_s.len() + p_s.len() + n_s.len()) * passes,
    };
    let (out, g) = call.outputs();
    run(py, cost, move |cancel| {
        let inputs = PerAnchorInputs {
            anchors: a_s,
            positives: p_s,
            negatives: n_s,
            dims,
            cancel,
        };
        per_anchor(&inputs, temperature, out, g)
    })?;
    call.into_py(py, &[batch])
}

/// InfoNCE against a shared pool (`negatives` N x D) or in-batch (`negatives` None).
#[pyfunction]
#[pyo3(signature = (anchors, positives, negatives, *, temperature, grad_scale=None, grad_weights=None))]
pub fn info_nce_pooled<'py>(
    py: Python<'py>,
    anchors: &Bound<'py, PyAny>,
    positives: &Bound<'py, PyAny>,
    negatives: Option<&Bound<'py, PyAny>>,
    temperature: f64,
    grad_scale: Option<f64>,
    grad_weights: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Losses<'py>, Grads<'py>)> {
    let a = readonly(anchors, "anchors")?;
    let p = readonly(positives, "positives")?;
    let pool = negatives.map(|n| readonly(n, "negatives")).transpose()?;
    let (batch, dim) = matrix_dims(&a, "anchors")?;
    let pool_size = match &pool {
        Some(pool) => matrix_dims(pool, "negatives")?.0,
        None => batch,
    };
    let mut call = LossCall::new(batch, grad_scale, grad_weights, &a, &p, pool.as_ref())?;
    {
        let pool_slice = pool.as_ref().map(slice).transpose()?;
        let inputs = PooledInputs {
            anchors: slice(&a)?,
            positives: slice(&p)?,
            pool: pool_slice,
            batch,
            pool_size,
            dim,
            cancel: &NEVER,
        };
        // One GEMM of the similarities, two more for the gradients.
        let gemms = if call.grads.is_some() { 3 } else { 1 };
        let cost = Cost {
            flops: 2 * batch * pool_size * dim * gemms,
            bytes: 4 * (2 * batch + pool_size) * dim * gemms,
        };
        let (out, g) = call.outputs();
        run(py, cost, move |cancel| {
            pooled(&PooledInputs { cancel, ..inputs }, temperature, out, g)
        })?;
    }
    call.into_py(py, &[batch])
}

/// Local contrastive (margin) loss: returns every term (B x N) and, if asked, gradients.
/// `negatives` is B x N x D (per anchor) or N x D (shared).
#[pyfunction]
#[pyo3(signature = (anchors, positives, negatives, *, margin, grad_scale=None, grad_weights=None))]
pub fn local_contrastive<'py>(
    py: Python<'py>,
    anchors: &Bound<'py, PyAny>,
    positives: &Bound<'py, PyAny>,
    negatives: &Bound<'py, PyAny>,
    margin: f64,
    grad_scale: Option<f64>,
    grad_weights: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Losses<'py>, Grads<'py>)> {
    let (a, p, ng, batch, dim) = borrow_inputs(anchors, positives, negatives)?;
    let (count, shared) = match ng.shape() {
        &[_, count, _] => (count, false),
        &[count, _] => (count, true),
        other => {
            return Err(shape_error(format!(
                "negatives must be 2-D or 3-D, got shape {other:?}"
            )))
        }
    };
    let mut call = LossCall::new(batch * count, grad_scale, grad_weights, &a, &p, Some(&ng))?;
    {
        let n_s = slice(&ng)?;
        let inputs = MarginInputs {
            anchors: slice(&a)?,
            positives: slice(&p)?,
            negatives: if shared {
                Negatives::Shared(n_s)
            } else {
                Negatives::PerAnchor(n_s)
            },
            batch,
            count,
            dim,
            cancel: &NEVER,
        };
        // One squared distance per term; the gradients add two axpys per active term.
        let passes = if call.grads.is_some() { 3 } else { 1 };
        let cost = Cost {
            flops: 3 * batch * count * dim * passes,
            bytes: 4 * (2 * batch * dim + n_s.len()) * passes,
        };
        let (out, g) = call.outputs();
        run(py, cost, move |cancel| {
            margin_kernel(&MarginInputs { cancel, ..inputs }, margin, out, g)
        })?;
    }
    call.into_py(py, &[batch, count])
}
