//! Global L2 norm of a list of gradient arrays, and in-place clipping (PyTorch `clip_grad_norm_`).
//!
//! The sum of squares is accumulated in f64 over fixed chunks with a fixed lane pattern, and the
//! chunk sums are added in order: the norm is the same bits for any thread count or SIMD path.

use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::parallel::{for_each_task, map_tasks, CHUNK};
use crate::simd::{pairwise_sum, LANES};

#[inline(always)]
fn sum_squares_generic(x: &[f32]) -> f64 {
    // Sixteen independent f64 accumulators: the compiler may vectorise across them without
    // reordering any one accumulator's additions, so the result never depends on the path.
    let mut acc = [0.0f64; LANES];
    let mut blocks = x.chunks_exact(LANES);
    for block in &mut blocks {
        for (a, &v) in acc.iter_mut().zip(block) {
            let v = f64::from(v);
            *a += v * v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(blocks.remainder()) {
        let v = f64::from(v);
        *a += v * v;
    }
    pairwise_sum(acc)
}

dispatch_simd!(fn sum_squares(x: &[f32]) -> f64 => sum_squares_generic);

#[inline(always)]
fn scale_generic(x: &mut [f32], factor: f32) {
    for v in x.iter_mut() {
        *v *= factor;
    }
}

dispatch_simd!(fn scale(x: &mut [f32], factor: f32) => scale_generic);

/// The L2 norm of all arrays together, as if they were concatenated.
pub fn global_norm(arrays: &[&[f32]]) -> f64 {
    let total: usize = arrays.iter().map(|a| a.len()).sum();
    let tasks: Vec<&[f32]> = arrays.iter().flat_map(|a| a.chunks(CHUNK)).collect();
    let partials = map_tasks(tasks, total, sum_squares);
    // Summed from +0.0: `Sum` for f64 starts at -0.0, so an empty gradient's norm was -0.0.
    partials.iter().fold(0.0f64, |sum, &p| sum + p).sqrt()
}

/// Scales every array in place by `max_norm / (norm + 1e-6)` when the global norm exceeds
/// `max_norm`, and returns the norm before clipping.
///
/// A non-finite norm leaves the gradients untouched (scaling by 0 or NaN would destroy them and
/// hide the cause); with `error_if_nonfinite` it is an error instead, raised before any write.
pub fn clip_grad_norm(
    arrays: &mut [&mut [f32]],
    max_norm: f64,
    error_if_nonfinite: bool,
) -> KernelResult<f64> {
    if !max_norm.is_finite() || max_norm < 0.0 {
        return Err(KernelError::invalid(format!(
            "max_norm must be a finite number >= 0, got {max_norm}"
        )));
    }
    let norm = {
        let views: Vec<&[f32]> = arrays.iter().map(|a| &**a).collect();
        global_norm(&views)
    };
    if !norm.is_finite() {
        if error_if_nonfinite {
            return Err(KernelError::invalid(format!(
                "the total norm of the gradients is {norm}; gradients were left unchanged"
            )));
        }
        return Ok(norm);
    }
    if norm > max_norm {
        let factor = (max_norm / (norm + 1e-6)) as f32;
        let total: usize = arrays.iter().map(|a| a.len()).sum();
        let tasks: Vec<&mut [f32]> = arrays
            .iter_mut()
            .flat_map(|a| a.chunks_mut(CHUNK))
            .collect();
        for_each_task(tasks, total, |chunk| scale(chunk, factor));
    }
    Ok(norm)
}
