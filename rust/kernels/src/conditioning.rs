//! Copies of the inputs on which float32 arithmetic cannot overflow or cancel.
//!
//! The kernels compute dot products and squared norms in float32. Two things go wrong with raw
//! inputs:
//! - Magnitude: a row of 1e20s has a squared norm of 1e40, beyond float32, so its cosine
//!   similarity came out NaN or 0. Cosine similarity does not change when a row is multiplied by
//!   a power of two (exactly, in binary floating point), so such rows are rescaled first
//!   (`Rescaled`); the gradient of a rescaled row is the rescaled row's gradient times the same
//!   factor. Euclidean losses scale every row by one factor instead (`common_scale`).
//! - Offset (semi-hard only, which is Euclidean): `|a|^2 + |c|^2 - 2 a.c` loses the distance
//!   when the points sit far from the origin compared to their spread (an offset of 1000 on
//!   unit-scale data left 4 of 6 picks outside the window). Translating every point by the same
//!   vector leaves every distance unchanged, so anchors, positives and candidates are centred on
//!   the coordinate-wise median of their finite rows and scaled by one power of two (the margin
//!   with them). A median, not a mean: one row far away (2.5e5 in every coordinate) moved the
//!   mean of 200 unit-scale rows by 1250 and so changed every anchor's picks; it cannot move a
//!   median. The power of two puts the largest centred magnitude in `[2^39, 2^40)`: squares stay
//!   below float32's overflow, and data far smaller than a distant row keeps the most headroom
//!   above underflow.
//!
//! Inputs that need neither are used as they are (no copy, identical results).

use std::borrow::Cow;

use crate::alloc;
use crate::error::KernelResult;
use crate::mining::MineInputs;
use crate::vecops::max_abs_ignoring_nan;

/// Rows whose largest magnitude is at most this are safe: a dot product of two of them is at
/// most `dim * 2^80`, far below float32's 2^128.
const SAFE_ROW_MAX: f32 = (1u64 << 40) as f32;

/// `2^-e` where `2^e <= x < 2^(e+1)`: multiplying by it brings `x` into `[1, 2)` exactly.
fn power_of_two_below_inverse(x: f64) -> f64 {
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

/// Where `Centred` puts the largest centred magnitude: `[2^39, 2^40)`, just inside
/// `SAFE_ROW_MAX`, the most room below it for rows much nearer the centre.
const CENTRED_TOP: f64 = (1u64 << 39) as f64;

/// Rows per array the centre is taken from (evenly spaced): a median of a sample is as robust as
/// the whole one (a few far rows cannot move it), and reading every row column by column cost
/// a cache line per element.
const MEDIAN_SAMPLE_ROWS: usize = 1024;

/// The coordinate-wise median (in float64) of up to `MEDIAN_SAMPLE_ROWS` evenly spaced rows of
/// `dim` from each array whose elements are all finite (a NaN or Inf row must not move the
/// centre); zeros when there is none. A median, unlike a mean, stays among the bulk of the rows
/// whatever a few far ones hold.
fn coordinate_median(arrays: &[&[f32]], dim: usize) -> KernelResult<Vec<f64>> {
    let finite: Vec<&[f32]> = arrays
        .iter()
        .flat_map(|x| {
            let rows = x.len() / dim;
            let step = rows.div_ceil(MEDIAN_SAMPLE_ROWS).max(1);
            x.chunks_exact(dim).step_by(step)
        })
        .filter(|row| row.iter().all(|v| v.is_finite()))
        .collect();
    let mut centre = vec![0.0f64; dim];
    let m = finite.len();
    if m == 0 {
        return Ok(centre);
    }
    // Column-major copy of the sample (read row by row), so each column is one slice.
    let mut columns: Vec<f32> = alloc::zeroed(m * dim)?;
    for (i, row) in finite.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            columns[j * m + i] = v;
        }
    }
    let middle = m / 2;
    for (c, column) in centre.iter_mut().zip(columns.chunks_exact_mut(m)) {
        // Finite values only, so the total order is the numeric one.
        let (below, &mut upper, _) = column.select_nth_unstable_by(middle, f32::total_cmp);
        *c = if m % 2 == 1 {
            f64::from(upper)
        } else {
            let lower = below.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            0.5 * (f64::from(lower) + f64::from(upper))
        };
    }
    Ok(centre)
}

/// Anchors, positives and candidates translated by minus their coordinate-wise median and scaled
/// by one power of two, with the margin scaled alike: the semi-hard window of these is the window of the
/// originals, computed without cancellation.
pub struct Centred {
    anchors: Vec<f32>,
    positives: Vec<f32>,
    candidates: Vec<f32>,
    pub margin: f32,
}

impl Centred {
    pub fn new(inputs: &MineInputs<'_>, margin: f32) -> KernelResult<Self> {
        let d = inputs.dim;
        let positives = inputs.positives.unwrap_or(&[]);
        let all = [inputs.anchors, positives, inputs.candidates];
        let centre = coordinate_median(&all, d)?;
        let largest_offset = |row: &[f32]| -> f64 {
            row.iter()
                .zip(&centre)
                .map(|(&v, &m)| (f64::from(v) - m).abs())
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max)
        };
        let near_spread = [inputs.anchors, positives]
            .iter()
            .flat_map(|x| x.chunks_exact(d))
            .map(largest_offset)
            .fold(0.0f64, f64::max);
        // Every window lies within `reach` of the centre in each coordinate: |a - p| is at most
        // 2 sqrt(d) near_spread, so d(a, n) < d(a, p) + margin bounds |n_j - m_j|. A candidate
        // beyond it in some coordinate is in no window: it becomes NaN (never in the window)
        // and does not set the scale, so it cannot push the rest into float32's underflow.
        let reach = near_spread * (1.0 + 2.0 * (d as f64).sqrt()) + f64::from(margin).abs();
        // One pass over the candidates: each row's largest offset decides both whether it is
        // out and, for the rest, the scale.
        let offsets: Vec<f64> = inputs
            .candidates
            .chunks_exact(d)
            .map(largest_offset)
            .collect();
        let candidate_out: Vec<bool> = offsets.iter().map(|&o| o > reach).collect();
        let spread = offsets
            .iter()
            .filter(|&&o| o <= reach)
            .fold(near_spread, |m, &o| m.max(o));
        let scale = if spread > 0.0 {
            power_of_two_below_inverse(spread) * CENTRED_TOP
        } else {
            1.0
        };
        let centred = |x: &[f32]| -> KernelResult<Vec<f32>> {
            let mut out: Vec<f32> = alloc::zeroed(x.len())?;
            for (dst, src) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                for ((o, &v), &m) in dst.iter_mut().zip(src).zip(&centre) {
                    *o = ((f64::from(v) - m) * scale) as f32;
                }
            }
            Ok(out)
        };
        let mut candidates = centred(inputs.candidates)?;
        for (row, _) in candidates
            .chunks_exact_mut(d)
            .zip(&candidate_out)
            .filter(|(_, &out)| out)
        {
            row.fill(f32::NAN);
        }
        Ok(Self {
            anchors: centred(inputs.anchors)?,
            positives: centred(positives)?,
            candidates,
            margin: (f64::from(margin) * scale) as f32,
        })
    }

    /// `like` with the centred arrays in place of its own.
    pub fn inputs<'a>(&'a self, like: &MineInputs<'a>) -> MineInputs<'a> {
        MineInputs {
            anchors: &self.anchors,
            positives: Some(&self.positives),
            candidates: &self.candidates,
            ..*like
        }
    }
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
