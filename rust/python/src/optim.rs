//! Bindings of the optimizer kernels. State arrays are owned by the Python optimizer objects and
//! passed in on every call, so the kernels stay stateless.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyList;
use ruvector_kernels::{norm, optim};

use crate::arrays::{
    is_aligned, readonly, readonly_list, readwrite, readwrite_list, slice, slice_mut, CallLists,
};
use crate::call::{run_in_place, Cost};

/// SGD step over lists of arrays (see `ruvector_kernels::optim::sgd_step`).
#[pyfunction]
#[pyo3(signature = (params, grads, momentum_buffers, *, lr, momentum, weight_decay, nesterov))]
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    py: Python<'_>,
    params: &Bound<'_, PyList>,
    grads: &Bound<'_, PyList>,
    momentum_buffers: &Bound<'_, PyList>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
) -> PyResult<()> {
    // The Python layer passes one gradient (and buffer) per parameter array: it owns the counts.
    let n = params.len();
    let with_momentum = momentum != 0.0;
    // Writers first, then readers: the borrow tracker then reports any overlap as a clash.
    let all: CallLists = &[
        (params, "params"),
        (momentum_buffers, "momentum_buffer"),
        (grads, "grads"),
    ];
    let mut p = readwrite_list(params, "params", all)?;
    let mut b = if with_momentum {
        readwrite_list(momentum_buffers, "momentum_buffer", all)?
    } else {
        Vec::new()
    };
    let g = readonly_list(grads, "grads", all)?;
    let mut slots = Vec::with_capacity(n);
    let mut b_iter = b.iter_mut();
    for (p, g) in p.iter_mut().zip(&g) {
        let momentum_buffer: &mut [f32] = match b_iter.next() {
            Some(b) => slice_mut(b)?,
            None => &mut [],
        };
        slots.push(optim::SgdSlot {
            param: slice_mut(p)?,
            grad: slice(g)?,
            momentum_buffer,
        });
    }
    let hyper = optim::SgdHyper {
        lr,
        momentum,
        weight_decay,
        nesterov,
    };
    // Reads the parameter and gradient, writes the parameter (and reads and writes the buffer).
    let elements = slots.iter().map(|s| s.param.len()).sum();
    let bytes = if with_momentum { 20 } else { 12 };
    run_in_place(py, Cost::per_element(elements, 4, bytes), move || {
        optim::sgd_step(slots, &hyper)
    })
}

/// Adam's settings that stay the same from step to step (AdamW: `decoupled`), prepared once per
/// optimizer and reused by every step; the step number and the learning rate change per step.
#[pyclass(frozen, module = "ruvector_attention._native")]
pub struct AdamPlan {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
}

impl AdamPlan {
    fn hyper(&self, step: u64, lr: f64) -> optim::AdamHyper {
        optim::AdamHyper {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            step,
        }
    }
}

#[pymethods]
impl AdamPlan {
    #[new]
    #[pyo3(signature = (*, beta1, beta2, eps, weight_decay, decoupled))]
    fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64, decoupled: bool) -> Self {
        Self {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        }
    }

    /// One step over lists of arrays (see `ruvector_kernels::optim::adam_step`).
    #[pyo3(signature = (params, grads, exp_avg, exp_avg_sq, *, step, lr))]
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyList>,
        grads: &Bound<'_, PyList>,
        exp_avg: &Bound<'_, PyList>,
        exp_avg_sq: &Bound<'_, PyList>,
        step: u64,
        lr: f64,
    ) -> PyResult<()> {
        adam_lists(
            py,
            params,
            grads,
            exp_avg,
            exp_avg_sq,
            &self.hyper(step, lr),
        )
    }

    /// The step of one parameter array, for small steps where building and walking lists costs
    /// more than the update itself. Returns False, having done nothing, when `grad` is not a
    /// float32 C-contiguous aligned array of `param`'s shape (the Python layer then converts it
    /// and calls `step`); any other problem raises as `step` does.
    #[pyo3(signature = (param, grad, exp_avg, exp_avg_sq, step, lr, /))]
    #[allow(clippy::too_many_arguments)]
    fn try_step_one(
        &self,
        py: Python<'_>,
        param: &Bound<'_, PyAny>,
        grad: &Bound<'_, PyAny>,
        exp_avg: &Bound<'_, PyAny>,
        exp_avg_sq: &Bound<'_, PyAny>,
        step: u64,
        lr: f64,
    ) -> PyResult<bool> {
        let hyper = self.hyper(step, lr);
        // Every array float32, C-contiguous and aligned, and the gradient shaped like the parameter.
        let arrays = [param, grad, exp_avg, exp_avg_sq].map(|a| a.cast::<PyArrayDyn<f32>>().ok());
        let [Some(p), Some(g), Some(m), Some(v)] = arrays else {
            return Ok(false);
        };
        let plain = |a: &Bound<'_, PyArrayDyn<f32>>| a.is_c_contiguous() && is_aligned(a);
        if !(plain(p) && plain(g) && plain(m) && plain(v)) || g.shape() != p.shape() {
            return Ok(false);
        }
        let borrowed = (
            p.try_readwrite(),
            m.try_readwrite(),
            v.try_readwrite(),
            g.try_readonly(),
        );
        let (Ok(mut pw), Ok(mut mw), Ok(mut vw), Ok(gr)) = borrowed else {
            // Read-only, shared or in use: the general path raises the explaining error.
            drop(borrowed);
            let [params, grads, m, v] =
                [param, grad, exp_avg, exp_avg_sq].map(|a| PyList::new(py, [a]));
            adam_lists(py, &params?, &grads?, &m?, &v?, &hyper)?;
            return Ok(true);
        };
        let slot = optim::AdamSlot {
            param: slice_mut(&mut pw)?,
            grad: slice(&gr)?,
            exp_avg: slice_mut(&mut mw)?,
            exp_avg_sq: slice_mut(&mut vw)?,
        };
        run_adam(py, vec![slot], &hyper)?;
        Ok(true)
    }
}

/// The Adam step over lists (the general path).
fn adam_lists(
    py: Python<'_>,
    params: &Bound<'_, PyList>,
    grads: &Bound<'_, PyList>,
    exp_avg: &Bound<'_, PyList>,
    exp_avg_sq: &Bound<'_, PyList>,
    hyper: &optim::AdamHyper,
) -> PyResult<()> {
    let n = params.len();
    let all: CallLists = &[
        (params, "params"),
        (exp_avg, "exp_avg"),
        (exp_avg_sq, "exp_avg_sq"),
        (grads, "grads"),
    ];
    let mut p = readwrite_list(params, "params", all)?;
    let mut m = readwrite_list(exp_avg, "exp_avg", all)?;
    let mut v = readwrite_list(exp_avg_sq, "exp_avg_sq", all)?;
    let g = readonly_list(grads, "grads", all)?;
    let mut slots = Vec::with_capacity(n);
    for (((p, g), m), v) in p.iter_mut().zip(&g).zip(m.iter_mut()).zip(v.iter_mut()) {
        slots.push(optim::AdamSlot {
            param: slice_mut(p)?,
            grad: slice(g)?,
            exp_avg: slice_mut(m)?,
            exp_avg_sq: slice_mut(v)?,
        });
    }
    run_adam(py, slots, hyper)
}

fn run_adam(
    py: Python<'_>,
    slots: Vec<optim::AdamSlot<'_>>,
    hyper: &optim::AdamHyper,
) -> PyResult<()> {
    // Reads four arrays and writes three.
    let elements = slots.iter().map(|s| s.param.len()).sum();
    run_in_place(py, Cost::per_element(elements, 12, 28), move || {
        optim::adam_step(slots, hyper)
    })
}

/// In-place global-norm clipping of a list of gradient arrays; returns the norm before clipping.
#[pyfunction]
#[pyo3(signature = (grads, max_norm, *, error_if_nonfinite))]
pub fn clip_grad_norm(
    py: Python<'_>,
    grads: &Bound<'_, PyList>,
    max_norm: f64,
    error_if_nonfinite: bool,
) -> PyResult<f64> {
    let all: CallLists = &[(grads, "grads")];
    let mut g = readwrite_list(grads, "grads", all)?;
    let mut slices = Vec::with_capacity(g.len());
    for arr in g.iter_mut() {
        slices.push(slice_mut(arr)?);
    }
    // One pass for the norm, one more to scale when it is above max_norm.
    let elements = slices.iter().map(|s| s.len()).sum();
    run_in_place(py, Cost::per_element(elements, 4, 12), move || {
        norm::clip_grad_norm(&mut slices, max_norm, error_if_nonfinite)
    })
}

/// AdamW's memory traffic with no arithmetic: the bandwidth bound, for benchmarks.
#[pyfunction]
pub fn stream_probe(
    py: Python<'_>,
    p: &Bound<'_, PyAny>,
    g: &Bound<'_, PyAny>,
    m: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let mut p = readwrite(p, "p", &[])?;
    let mut m = readwrite(m, "m", &[])?;
    let mut v = readwrite(v, "v", &[])?;
    let g = readonly(g, "g")?;
    let (p, m, v, g) = (
        slice_mut(&mut p)?,
        slice_mut(&mut m)?,
        slice_mut(&mut v)?,
        slice(&g)?,
    );
    let cost = Cost::per_element(p.len(), 0, 28);
    run_in_place(py, cost, move || optim::stream_probe(p, g, m, v))
}
