//! Semi-hard mining's inputs centred and scaled, so float32 distances neither cancel nor
//! overflow.
//!
//! `|a|^2 + |c|^2 - 2 a.c` loses the distance when the points sit far from the origin compared to
//! their spread (an offset of 1000 on unit-scale data left 4 of 6 picks outside the window).
//! Translating every point by the same vector leaves every distance unchanged, so anchors,
//! positives and candidates are centred on the coordinate-wise median of their finite rows and
//! scaled by one power of two (the margin with them). A median, not a mean: one row far away
//! (2.5e5 in every coordinate) moved the mean of 200 unit-scale rows by 1250 and so changed every
//! anchor's picks; it cannot move a median. The power of two puts the largest centred magnitude
//! in `[2^39, 2^40)`: squares stay below float32's overflow, and data far smaller than a distant
//! row keeps the most headroom above underflow.

use super::MineInputs;
use crate::alloc;
use crate::conditioning::{power_of_two_below_inverse, SAFE_ROW_MAX};
use crate::error::KernelResult;

/// Where `Centred` puts the largest centred magnitude: `[2^39, 2^40)`, just inside
/// `SAFE_ROW_MAX`, the most room below it for rows much nearer the centre.
const CENTRED_TOP: f64 = SAFE_ROW_MAX as f64 / 2.0;

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
