//! Small vector operations shared by the loss kernels, dispatched to the best SIMD path.
//!
//! None calls `mul_add` and the reductions use sixteen fixed accumulators, so every path gives
//! the same bits (see `simd`).

use crate::dispatch_simd;
use crate::simd::{pairwise_sum, LANES};

/// Norms below this are clamped (the crate's epsilon); the clamped norm is a constant, so its
/// derivative is zero there.
pub const NORM_EPS: f32 = 1e-8;

/// Dot product with sixteen independent accumulators: vectorisable without reordering any one
/// accumulator's additions.
#[inline(always)]
fn dot_generic(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut xs = x.chunks_exact(LANES);
    let mut ys = y.chunks_exact(LANES);
    for (xb, yb) in (&mut xs).zip(&mut ys) {
        for ((a, &u), &v) in acc.iter_mut().zip(xb).zip(yb) {
            *a += u * v;
        }
    }
    for ((a, &u), &v) in acc.iter_mut().zip(xs.remainder()).zip(ys.remainder()) {
        *a += u * v;
    }
    pairwise_sum(acc)
}

dispatch_simd!(pub fn dot(x: &[f32], y: &[f32]) -> f32 => dot_generic);

/// Squared Euclidean distance `|x - y|^2`, accumulated like `dot`.
#[inline(always)]
fn squared_distance_generic(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut xs = x.chunks_exact(LANES);
    let mut ys = y.chunks_exact(LANES);
    for (xb, yb) in (&mut xs).zip(&mut ys) {
        for ((a, &u), &v) in acc.iter_mut().zip(xb).zip(yb) {
            let d = u - v;
            *a += d * d;
        }
    }
    for ((a, &u), &v) in acc.iter_mut().zip(xs.remainder()).zip(ys.remainder()) {
        let d = u - v;
        *a += d * d;
    }
    pairwise_sum(acc)
}

dispatch_simd!(pub fn squared_distance(x: &[f32], y: &[f32]) -> f32 => squared_distance_generic);

/// `|x|` clamped below at `NORM_EPS`.
pub fn clamped_norm(x: &[f32]) -> f32 {
    dot(x, x).sqrt().max(NORM_EPS)
}

/// `out += c * x`.
#[inline(always)]
fn axpy_generic(out: &mut [f32], c: f32, x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += c * v;
    }
}

dispatch_simd!(pub fn axpy(out: &mut [f32], c: f32, x: &[f32]) => axpy_generic);

/// `out = c1 * x + c2 * y`.
#[inline(always)]
fn combine_generic(out: &mut [f32], c1: f32, x: &[f32], c2: f32, y: &[f32]) {
    for ((o, &u), &v) in out.iter_mut().zip(x).zip(y) {
        *o = c1 * u + c2 * v;
    }
}

dispatch_simd!(pub fn combine(out: &mut [f32], c1: f32, x: &[f32], c2: f32, y: &[f32]) => combine_generic);

/// `out = c * x`.
#[inline(always)]
fn scale_into_generic(out: &mut [f32], c: f32, x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = c * v;
    }
}

dispatch_simd!(pub fn scale_into(out: &mut [f32], c: f32, x: &[f32]) => scale_into_generic);

/// Gradient of `s(x, y) = x.y / (nx * ny)` with respect to `x`, times `c`, written (`out = ...`):
/// `c * (y / (nx * ny) - s * x / nx^2)`, the second term only where `|x|` was not clamped.
pub fn write_cosine_grad(out: &mut [f32], c: f32, x: &[f32], nx: f32, y: &[f32], ny: f32, s: f32) {
    let second = if nx > NORM_EPS {
        -c * s / (nx * nx)
    } else {
        0.0
    };
    combine(out, c / (nx * ny), y, second, x);
}

/// Chain rule through `x_hat = x / max(|x|, eps)`: given `g = dL/dx_hat`, writes `dL/dx` in place:
/// `(g - (g . x_hat) x_hat) / |x|`, or `g / eps` where the norm was clamped (then x_hat is a
/// constant multiple of x).
pub fn backprop_normalisation(g: &mut [f32], x_hat: &[f32], norm: f32) {
    if norm > NORM_EPS {
        let along = dot(g, x_hat);
        axpy(g, -along, x_hat);
    }
    let inv = 1.0 / norm;
    for v in g.iter_mut() {
        *v *= inv;
    }
}
