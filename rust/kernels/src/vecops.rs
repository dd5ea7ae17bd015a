//! Small vector operations shared by the loss kernels, dispatched to the best SIMD path.
//!
//! None calls `mul_add` and the reductions use sixteen fixed accumulators, so every path gives
//! the same bits (see `simd`).

use crate::dispatch_simd;
use crate::simd::{pairwise_sum, LANES};

/// Norms below this are clamped (the crate's epsilon); the clamped norm is a constant, so its
/// derivative is zero there.
pub const NORM_EPS: f32 = 1e-8;

/// `sum_i term(x_i, y_i)` with sixteen independent accumulators (element `i` in lane `i mod 16`,
/// the lanes then added pairwise): vectorisable without reordering any one accumulator's
/// additions, so every path gives the same bits. `T` is the accumulator: float32 for the
/// kernels' own sums, float64 for the exact score of corpus mining (`mining/exact.rs`).
#[inline(always)]
pub(crate) fn lane_sum<T: Copy + Default + std::ops::AddAssign>(
    x: &[f32],
    y: &[f32],
    term: impl Fn(f32, f32) -> T,
) -> T {
    let mut acc = [T::default(); LANES];
    let mut xs = x.chunks_exact(LANES);
    let mut ys = y.chunks_exact(LANES);
    for (xb, yb) in (&mut xs).zip(&mut ys) {
        for ((a, &u), &v) in acc.iter_mut().zip(xb).zip(yb) {
            *a += term(u, v);
        }
    }
    for ((a, &u), &v) in acc.iter_mut().zip(xs.remainder()).zip(ys.remainder()) {
        *a += term(u, v);
    }
    pairwise_sum(acc)
}

#[inline(always)]
fn dot_generic(x: &[f32], y: &[f32]) -> f32 {
    lane_sum(x, y, |u, v| u * v)
}

dispatch_simd!(pub fn dot(x: &[f32], y: &[f32]) -> f32 => dot_generic);

/// `(x . y, y . y)` in one pass, each accumulated exactly like `dot`.
#[inline(always)]
fn dot_and_square_generic(x: &[f32], y: &[f32]) -> (f32, f32) {
    let mut xy = [0.0f32; LANES];
    let mut yy = [0.0f32; LANES];
    let mut xs = x.chunks_exact(LANES);
    let mut ys = y.chunks_exact(LANES);
    for (xb, yb) in (&mut xs).zip(&mut ys) {
        for (((p, q), &u), &v) in xy.iter_mut().zip(yy.iter_mut()).zip(xb).zip(yb) {
            *p += u * v;
            *q += v * v;
        }
    }
    for (((p, q), &u), &v) in xy
        .iter_mut()
        .zip(yy.iter_mut())
        .zip(xs.remainder())
        .zip(ys.remainder())
    {
        *p += u * v;
        *q += v * v;
    }
    (pairwise_sum(xy), pairwise_sum(yy))
}

dispatch_simd!(pub fn dot_and_square(x: &[f32], y: &[f32]) -> (f32, f32) => dot_and_square_generic);

/// Squared Euclidean distance `|x - y|^2`, accumulated like `dot`.
#[inline(always)]
fn squared_distance_generic(x: &[f32], y: &[f32]) -> f32 {
    lane_sum(x, y, |u, v| (u - v) * (u - v))
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

/// `out = c1 * x + c2 * y` and `acc += c3 * y`, in one pass over `y`.
#[inline(always)]
fn combine_and_accumulate_generic(
    out: &mut [f32],
    c1: f32,
    x: &[f32],
    c2: f32,
    y: &[f32],
    acc: &mut [f32],
    c3: f32,
) {
    for (((o, a), &u), &v) in out.iter_mut().zip(acc.iter_mut()).zip(x).zip(y) {
        *o = c1 * u + c2 * v;
        *a += c3 * v;
    }
}

dispatch_simd!(fn combine_and_accumulate_cached(out: &mut [f32], c1: f32, x: &[f32], c2: f32, y: &[f32], acc: &mut [f32], c3: f32) => combine_and_accumulate_generic);

/// `out = c1 * x + c2 * y` and `acc += c3 * y`, where `out` is a row of a large output that will
/// not be read again soon. On AVX-512 the 64-byte-aligned middle of `out` is written with
/// non-temporal stores, which do not first read the destination into the cache: a third less
/// memory traffic for the per-anchor InfoNCE gradient. The arithmetic is the same (multiply,
/// then add; no fused multiply-add), so every path still gives the same bits.
///
/// Non-temporal stores are weakly ordered: the caller must call `store_fence()` before its
/// results are published to another thread (once per task is enough).
pub fn combine_and_accumulate(
    out: &mut [f32],
    c1: f32,
    x: &[f32],
    c2: f32,
    y: &[f32],
    acc: &mut [f32],
    c3: f32,
) {
    #[cfg(x86_simd)]
    if crate::simd::active() == crate::simd::SimdPath::Avx512 {
        // SAFETY: the AVX-512 path is only active on CPUs that have it.
        unsafe { streaming_avx512(out, c1, x, c2, y, acc, c3) };
        return;
    }
    combine_and_accumulate_cached(out, c1, x, c2, y, acc, c3);
}

/// Orders earlier non-temporal stores of this thread before any later store.
pub fn store_fence() {
    #[cfg(x86_simd)]
    // SAFETY: `sfence` is part of SSE, which every x86-64 CPU has.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(x86_simd)]
#[target_feature(enable = "avx512f")]
unsafe fn streaming_avx512(
    out: &mut [f32],
    c1: f32,
    x: &[f32],
    c2: f32,
    y: &[f32],
    acc: &mut [f32],
    c3: f32,
) {
    use std::arch::x86_64::*;
    let len = out.len().min(x.len()).min(y.len()).min(acc.len());
    // Elements before the first 64-byte boundary of `out`, whole vectors, then the rest.
    let head = out.as_ptr().align_offset(64).min(len);
    let body = (len - head) / 16 * 16;
    let tail = head + body;
    let (vc1, vc2, vc3) = (_mm512_set1_ps(c1), _mm512_set1_ps(c2), _mm512_set1_ps(c3));
    let (out, acc) = (&mut out[..len], &mut acc[..len]);
    combine_and_accumulate_generic(
        &mut out[..head],
        c1,
        &x[..head],
        c2,
        &y[..head],
        &mut acc[..head],
        c3,
    );
    for j in (head..tail).step_by(16) {
        // SAFETY: j + 16 <= len for every slice; out[j..] is 64-byte aligned.
        unsafe {
            let u = _mm512_loadu_ps(x.as_ptr().add(j));
            let v = _mm512_loadu_ps(y.as_ptr().add(j));
            let o = _mm512_add_ps(_mm512_mul_ps(vc1, u), _mm512_mul_ps(vc2, v));
            _mm512_stream_ps(out.as_mut_ptr().add(j), o);
            let a = _mm512_loadu_ps(acc.as_ptr().add(j));
            _mm512_storeu_ps(
                acc.as_mut_ptr().add(j),
                _mm512_add_ps(a, _mm512_mul_ps(vc3, v)),
            );
        }
    }
    combine_and_accumulate_generic(
        &mut out[tail..],
        c1,
        &x[tail..len],
        c2,
        &y[tail..len],
        &mut acc[tail..],
        c3,
    );
}

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

/// Largest `f(v)` over `x`, from `start` (NaN values of `f` are ignored: `f32::max` keeps the
/// other operand), in sixteen lanes so the comparison vectorises.
#[inline(always)]
fn lane_max(x: &[f32], start: f32, f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [start; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(f(v));
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = a.max(f(v));
    }
    acc.iter().fold(start, |m, &v| m.max(v))
}

/// Largest element (NaN elements are ignored; -inf when there is none). One owner for the
/// vectorised maxima of the miner's key blocks and the pooled loss's similarity rows.
#[inline(always)]
fn max_ignoring_nan_generic(x: &[f32]) -> f32 {
    lane_max(x, f32::NEG_INFINITY, |v| v)
}

dispatch_simd!(pub fn max_ignoring_nan(x: &[f32]) -> f32 => max_ignoring_nan_generic);

/// Largest magnitude (NaN elements are ignored; 0 for an empty or all-NaN slice): the size test
/// of `conditioning`.
#[inline(always)]
fn max_abs_ignoring_nan_generic(x: &[f32]) -> f32 {
    lane_max(x, 0.0, f32::abs)
}

dispatch_simd!(pub fn max_abs_ignoring_nan(x: &[f32]) -> f32 => max_abs_ignoring_nan_generic);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_maxima_equal_the_plain_folds_with_nan_and_every_remainder() {
        for len in 0..40 {
            let x: Vec<f32> = (0..len)
                .map(|i| match i % 7 {
                    3 => f32::NAN,
                    5 => -1e30 * i as f32,
                    _ => (i as f32 - 17.5) * 0.25,
                })
                .collect();
            let plain_max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let plain_abs = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            assert_eq!(
                max_ignoring_nan(&x).to_bits(),
                plain_max.to_bits(),
                "len {len}"
            );
            assert_eq!(
                max_abs_ignoring_nan(&x).to_bits(),
                plain_abs.to_bits(),
                "len {len}"
            );
        }
        assert_eq!(max_abs_ignoring_nan(&[f32::NAN, f32::NAN]), 0.0);
        assert_eq!(
            max_abs_ignoring_nan(&[1.0, f32::NEG_INFINITY]),
            f32::INFINITY
        );
    }
}
