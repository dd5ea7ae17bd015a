//! The row-block passes of pooled InfoNCE: similarities of a block of anchors against the pool
//! (GEMM panels), their streamed log-sum-exp losses, and the gradients written from the same
//! panels. `mod.rs` sets the inputs up (normalisation, packing, the chunk plan) and runs these.

use crate::dispatch_simd;
use crate::fastmath::exp_f32;
use crate::gemm::{gemm, gemm_packed, MatRef, PackedB};
use crate::loss::GradScale;
use crate::simd::{pairwise_sum, LANES};
use crate::vecops::{dot, max_ignoring_nan, scale_into};
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) d: usize,
    pub(super) n: usize,
    pub(super) inv_t: f32,
    pub(super) in_batch: bool,
    /// Columns per similarity panel (all `n` when the panel is kept).
    pub(super) columns: usize,
}

pub(super) struct Context<'a> {
    pub(super) a_hat: &'a [f32],
    pub(super) p_hat: &'a [f32],
    /// Per column block: the pool packed as `P^T` (for similarities) and as `P` (gradients).
    pub(super) sim_packed: Vec<PackedB>,
    pub(super) grad_packed: Vec<PackedB>,
    pub(super) shape: Shape,
}

impl Context<'_> {
    /// `panel[r, j] = s(a_{i0+r}, pool_{j0+j})` for `rows` anchors and `cols` pool rows.
    fn similarities(&self, i0: usize, rows: usize, j0: usize, cols: usize, panel: &mut Vec<f32>) {
        let d = self.shape.d;
        panel.resize(rows * cols, 0.0);
        let a = MatRef::row_major(&self.a_hat[i0 * d..(i0 + rows) * d], rows, d);
        let pool = &self.sim_packed[j0 / self.shape.columns];
        debug_assert_eq!(pool.cols(), cols);
        gemm_packed(panel, cols, a, pool, false);
    }

    /// The positive's logit for anchor `i` (shared pool only; in-batch it is a panel entry).
    fn positive_logit(&self, i: usize) -> f32 {
        let d = self.shape.d;
        dot(
            &self.a_hat[i * d..(i + 1) * d],
            &self.p_hat[i * d..(i + 1) * d],
        ) * self.shape.inv_t
    }

    /// Losses of anchors `i0..i0 + out.len()`, and each row's softmax statistics for the
    /// gradient pass. Leaves the last similarity panel in `panel` (all of it when it is kept);
    /// in-batch, the kept panel's diagonal holds -inf.
    pub(super) fn block_losses(
        &self,
        i0: usize,
        out: &mut [f64],
        panel: &mut Vec<f32>,
    ) -> Vec<RowStats> {
        let Shape {
            n, inv_t, in_batch, ..
        } = self.shape;
        let rows = out.len();
        // Per row: the target's logit, and a running (max, sum of exp(z - max)) over the other
        // columns. Keeping the target out of the sum lets the gradient use 1 - softmax(target)
        // = others / total without the cancellation of computing softmax - 1 in float32.
        let mut target: Vec<f32> = (0..rows)
            .map(|r| {
                if in_batch {
                    f32::NEG_INFINITY
                } else {
                    self.positive_logit(i0 + r)
                }
            })
            .collect();
        let mut state: Vec<(f32, f64)> = target.iter().map(|&z| (z, 0.0)).collect();
        for j0 in (0..n).step_by(self.shape.columns) {
            let cols = self.shape.columns.min(n - j0);
            self.similarities(i0, rows, j0, cols, panel);
            for (r, row) in panel.chunks_exact_mut(cols).enumerate() {
                let mut m = state[r].0;
                if in_batch && (j0..j0 + cols).contains(&(i0 + r)) {
                    let diagonal = &mut row[i0 + r - j0];
                    target[r] = *diagonal * inv_t;
                    m = m.max(target[r]);
                    *diagonal = f32::NEG_INFINITY;
                }
                // NaN elements are skipped here and surface through `exp_sum`.
                m = m.max(max_ignoring_nan(row) * inv_t);
                let (old_m, old_sum) = state[r];
                let rescale = if old_sum == 0.0 {
                    0.0
                } else {
                    f64::from(exp_f32(old_m - m))
                };
                state[r] = (m, old_sum * rescale + f64::from(exp_sum(row, inv_t, m)));
            }
        }
        state
            .iter()
            .zip(&target)
            .zip(out.iter_mut())
            .map(|((&(m, others), &z), out)| {
                let total = (f64::from(z) - f64::from(m)).exp() + others;
                let ln_total = total.ln();
                *out = f64::from(m) - f64::from(z) + ln_total;
                RowStats {
                    max: m,
                    ln_sum: ln_total as f32,
                    others_share: (others / total) as f32,
                }
            })
            .collect()
    }

    /// Gradients for anchors `i0..i0 + stats.len()` with respect to the normalised vectors:
    /// the anchors' rows into `ga_blk`, the pool's added into `pool_acc`, and (shared pool) the
    /// positives' rows into `gp_rows`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn block_grads(
        &self,
        i0: usize,
        stats: &[RowStats],
        scale: GradScale<'_>,
        panel: &mut Vec<f32>,
        ga_blk: &mut [f32],
        pool_acc: &mut [f32],
        gp_rows: Option<&mut [f32]>,
    ) {
        let Shape {
            d,
            n,
            inv_t,
            in_batch,
            columns,
        } = self.shape;
        let rows = stats.len();
        // Each row's factor: the reduction's scale (times the row's upstream weight) over t.
        let coef = |r: usize| scale.at(i0 + r) * inv_t;
        let ga = &mut ga_blk[..rows * d];
        // The target's coefficient is (softmax - 1) / t = -others_share / t.
        if let Some(gp) = gp_rows {
            for (r, st) in stats.iter().enumerate() {
                let i = i0 + r;
                let c0 = -st.others_share * coef(r);
                let a_i = &self.a_hat[i * d..(i + 1) * d];
                let p_i = &self.p_hat[i * d..(i + 1) * d];
                scale_into(&mut gp[r * d..(r + 1) * d], c0, a_i);
                scale_into(&mut ga[r * d..(r + 1) * d], c0, p_i);
            }
        } else {
            ga.fill(0.0);
        }
        let a = MatRef::row_major(&self.a_hat[i0 * d..(i0 + rows) * d], rows, d);
        for j0 in (0..n).step_by(columns) {
            let cols = columns.min(n - j0);
            if columns < n {
                self.similarities(i0, rows, j0, cols, panel);
            }
            for (r, (row, st)) in panel.chunks_exact_mut(cols).zip(stats).enumerate() {
                let c = coef(r);
                softmax_coefficients(row, inv_t, st.max, st.ln_sum, c);
                if in_batch && (j0..j0 + cols).contains(&(i0 + r)) {
                    row[i0 + r - j0] = -st.others_share * c;
                }
            }
            let c = MatRef::row_major(panel, rows, cols);
            gemm_packed(ga, d, c, &self.grad_packed[j0 / columns], true);
            gemm(&mut pool_acc[j0 * d..(j0 + cols) * d], d, c.t(), a, true);
        }
    }
}

/// What the gradient pass needs of a row's softmax: `softmax_j = exp(z_j - max - ln_sum)`, and
/// `1 - softmax(target)` computed without cancellation.
pub(super) struct RowStats {
    max: f32,
    ln_sum: f32,
    others_share: f32,
}

/// `sum_j exp(row_j * inv_t - shift)`.
#[inline(always)]
fn exp_sum_generic(row: &[f32], inv_t: f32, shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += exp_f32(v * inv_t - shift);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += exp_f32(v * inv_t - shift);
    }
    pairwise_sum(acc)
}

dispatch_simd!(fn exp_sum(row: &[f32], inv_t: f32, shift: f32) -> f32 => exp_sum_generic);

/// In place: `row_j = exp(row_j * inv_t - max - ln_sum) * coef` (the softmax, scaled). The
/// shift is applied in two steps so that the large `max` cancels exactly against the logit first.
#[inline(always)]
fn softmax_coefficients_generic(row: &mut [f32], inv_t: f32, max: f32, ln_sum: f32, coef: f32) {
    for v in row.iter_mut() {
        *v = exp_f32((*v * inv_t - max) - ln_sum) * coef;
    }
}

dispatch_simd!(fn softmax_coefficients(row: &mut [f32], inv_t: f32, max: f32, ln_sum: f32, coef: f32) => softmax_coefficients_generic);
