//! Copies of the inputs on which float32 arithmetic cannot overflow or cancel.
//!
//! The kernels compute dot products and squared norms in float32. Two things go wrong with raw
//! inputs:
//! - Magnitude: a row of 1e20s has a squared norm of 1e40, beyond float32, so its cosine
//!   similarity came out NaN or 0. Cosine similarity does not change when a row is multiplied by
//!   a power of two (exactly, in binary floating point), so such rows are rescaled first
//!   (`Rescaled`); the gradient of a rescaled row is the rescaled row's gradient times the same
//!   factor. Euclidean losses scale every row by one factor instead (`common_scale`).
//! - Offset (semi-hard mining only, which is Euclidean): see `mining/centred.rs`, built on the
//!   power-of-two scaling here.
//!
//! Inputs that need neither are used as they are (no copy, identical results).

use std::borrow::Cow;

use crate::alloc;
use crate::error::KernelResult;
use crate::vecops::max_abs_ignoring_nan;

/// Rows whose largest magnitude is at most this are safe: a dot product of two of them is at
/// most `dim * 2^80`, far below float32's 2^128.
pub(crate) const SAFE_ROW_MAX: f32 = (1u64 << 40) as f32;

/// `2^-e` where `2^e <= x < 2^(e+1)`: multiplying by it brings `x` into `[1, 2)` exactly.
pub(crate) fn power_of_two_below_inverse(x: f64) -> f64 {
    (-(x.log2().floor())).exp2()
}

/// A finite largest magnitude too large for float32 squares.
fn oversized(row_max: f32) -> bool {
    row_max.is_finite() && row_max > SAFE_ROW_MAX
}

/// A finite row too large for float32 squares.
fn too_large(row: &[f32]) -> bool {
    oversized(max_abs_ignoring_nan(row))
}

/// What `Rescaled` multiplies a row by: a power of two that brings a finite row too large for
/// float32 squares into `[1, 2)`, else exactly 1. For kernels that condition each row as they
/// copy it (the pooled InfoNCE's normalisation).
pub fn row_factor(row: &[f32]) -> f32 {
    let m = max_abs_ignoring_nan(row);
    if oversized(m) {
        power_of_two_below_inverse(f64::from(m)) as f32
    } else {
        1.0
    }
}

/// Rows of `dim` with every finite row whose magnitude exceeds `SAFE_ROW_MAX` multiplied by a
/// power of two that brings its largest element into `[1, 2)`. Borrowed (and no factors) when no
/// row needs it, so ordinary inputs give bit-identical results. Rows with NaN or Inf stay as they
/// are (their similarity is NaN).
pub struct Rescaled<'a> {
    pub rows: Cow<'a, [f32]>,
    /// Per row, the factor it was multiplied by (`None`: every factor is 1).
    factors: Option<Vec<f32>>,
}

impl<'a> Rescaled<'a> {
    pub fn new(x: &'a [f32], dim: usize) -> KernelResult<Self> {
        if dim == 0 || !x.chunks_exact(dim).any(too_large) {
            return Ok(Self {
                rows: Cow::Borrowed(x),
                factors: None,
            });
        }
        let mut out: Vec<f32> = alloc::zeroed(x.len())?;
        let mut factors = Vec::with_capacity(x.len() / dim);
        for (dst, src) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            let factor = row_factor(src);
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s * factor;
            }
            factors.push(factor);
        }
        Ok(Self {
            rows: Cow::Owned(out),
            factors: Some(factors),
        })
    }

    /// Turns gradients with respect to the rescaled rows into gradients with respect to the
    /// originals (d/dx f(c x) = c f'(c x)).
    pub fn unscale_gradient(&self, grad: &mut [f32], dim: usize) {
        if let Some(factors) = &self.factors {
            for (row, &factor) in grad.chunks_exact_mut(dim).zip(factors) {
                if factor != 1.0 {
                    row.iter_mut().for_each(|g| *g *= factor);
                }
            }
        }
    }
}

/// Mining's form: the rescaled rows only.
pub fn rescaled_rows(x: &[f32], dim: usize) -> KernelResult<Cow<'_, [f32]>> {
    Rescaled::new(x, dim).map(|r| r.rows)
}

/// Rows whose largest magnitude is below this are too small: a difference of two of them can
/// square below float32's smallest normal number (2^-126) and lose its digits, or vanish.
const SMALL_ROW_MAX: f32 = 1.0 / (1u64 << 40) as f32;

/// One power of two `c` for several arrays (rows of `dim`) such that `c x` has no finite row
/// beyond `SAFE_ROW_MAX` and, when every row is below `SMALL_ROW_MAX`, its largest row in
/// `[1, 2)`: 1 when neither applies. Euclidean distances scale by `c` exactly (a power of two).
pub fn common_scale(arrays: &[&[f32]], dim: usize) -> f32 {
    let largest = arrays
        .iter()
        .flat_map(|x| x.chunks_exact(dim.max(1)))
        .map(max_abs_ignoring_nan)
        .filter(|m| m.is_finite())
        .fold(0.0f32, f32::max);
    if largest > SAFE_ROW_MAX || (largest > 0.0 && largest < SMALL_ROW_MAX) {
        power_of_two_below_inverse(f64::from(largest)) as f32
    } else {
        1.0
    }
}

/// `x` times `c` (a power of two), or `x` itself when `c` is 1.
pub fn scaled(x: &[f32], c: f32) -> KernelResult<Cow<'_, [f32]>> {
    if c == 1.0 {
        return Ok(Cow::Borrowed(x));
    }
    let mut out: Vec<f32> = alloc::zeroed(x.len())?;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * c;
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_rows_are_borrowed_and_large_rows_scaled_exactly() {
        let x = [1.0f32, -2.0, 3.0e20, -4.0e20];
        let out = rescaled_rows(&x, 2).unwrap();
        assert_eq!(&out[..2], &[1.0, -2.0]);
        let ratio = out[2] / x[2];
        assert_eq!(out[3], x[3] * ratio);
        assert!((1.0..2.0).contains(&out[3].abs()));
        assert!(matches!(
            rescaled_rows(&x[..2], 2).unwrap(),
            Cow::Borrowed(_)
        ));
    }
}
