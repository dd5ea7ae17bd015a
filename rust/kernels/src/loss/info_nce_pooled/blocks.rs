//! The row-block passes of pooled InfoNCE: similarities of a block of anchors against the pool
//! (GEMM panels) turned into exponentials and row sums in the GEMM's tile epilogue, the losses
//! from those sums, and the gradients from the same panels. `mod.rs` sets the inputs up
//! (normalisation, packing, the chunk plan) and runs these.
//!
//! Every row's exponentials share one shift: `e_ij = exp(z_ij - shift_i)` with `z = s / t`.
//! Rows are normalised, so every logit lies in `[-1/t, 1/t]`; when that span is small enough
//! (`FIXED_SHIFT_SPAN`) the shift is the bound `1/t` itself, known before any product, and the
//! similarities become exponentials inside the GEMM, one pass. Below that temperature a first
//! pass finds each row's largest logit.

use crate::dispatch_simd;
use crate::fastmath::exp_f32;
use crate::gemm::{gemm, gemm_packed, gemm_packed_then, MatRef, PackedB, Tile, TileEpilogue};
use crate::loss::GradScale;
use crate::simd::{pairwise_sum, LANES};
use crate::vecops::{axpy, dot, max_ignoring_nan, scale_into};

/// Largest `2/t` (the span of the logits) that uses the fixed shift `1/t`: every exponential
/// is then at least e^-40, so row sums, their reciprocals and the scaled gradients stay far
/// from float32's limits (t >= 0.05; lower temperatures take the row-maximum pass).
const FIXED_SHIFT_SPAN: f32 = 40.0;

#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) d: usize,
    pub(super) n: usize,
    pub(super) inv_t: f32,
    pub(super) in_batch: bool,
    /// Columns per similarity panel (all `n` when the panel is kept).
    pub(super) columns: usize,
}

impl Shape {
    /// The shift every row shares, when the temperature allows one.
    fn fixed_shift(&self) -> Option<f32> {
        (2.0 * self.inv_t <= FIXED_SHIFT_SPAN).then_some(self.inv_t)
    }

    pub(super) fn panel_kept(&self) -> bool {
        self.columns >= self.n
    }
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
    /// `A_blk P_blk^T` for `rows` anchors from `i0` and the column block from `j0`, into
    /// `panel` (`rows x cols`), each finished tile handed to `epilogue`.
    fn similarities<E: TileEpilogue>(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        panel: &mut [f32],
        epilogue: &mut E,
    ) -> usize {
        let cols = self.columns_from(j0);
        let d = self.shape.d;
        let panel = &mut panel[..rows * cols];
        let a = MatRef::row_major(&self.a_hat[i0 * d..(i0 + rows) * d], rows, d);
        let pool = &self.sim_packed[j0 / self.shape.columns];
        debug_assert_eq!(pool.cols(), cols);
        gemm_packed_then(panel, cols, a, pool, epilogue);
        cols
    }

    /// Columns of the column block from `j0`.
    fn columns_from(&self, j0: usize) -> usize {
        self.shape.columns.min(self.shape.n - j0)
    }

    /// The positive's logit for anchor `i` (in-batch it is also the panel's diagonal).
    fn positive_logit(&self, i: usize) -> f32 {
        let d = self.shape.d;
        dot(
            &self.a_hat[i * d..(i + 1) * d],
            &self.p_hat[i * d..(i + 1) * d],
        ) * self.shape.inv_t
    }

    /// In-batch, the column of row `i`'s own positive inside the column block from `j0`.
    fn diagonal(&self, i: usize, j0: usize, cols: usize) -> Option<usize> {
        (self.shape.in_batch && (j0..j0 + cols).contains(&i)).then(|| i - j0)
    }

    /// `panel = exp(z - shift)` for the column block from `j0`, with the in-batch diagonal
    /// (the target) set to 0; the row sums of the panel are added to `others`. When `raw` the
    /// panel already holds this block's similarities (kept from the row-maximum pass).
    #[allow(clippy::too_many_arguments)]
    fn exponentials(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        shifts: &[f32],
        panel: &mut [f32],
        others: &mut [f64],
        raw: bool,
    ) -> usize {
        let mut epilogue = Exponentials {
            ctx: self,
            i0,
            j0,
            shifts,
            lanes: vec![[0.0; LANES]; rows],
        };
        let cols = if raw {
            let cols = self.columns_from(j0);
            epilogue.finish(Tile {
                values: &mut panel[..rows * cols],
                ldc: cols,
                row0: 0,
                col0: 0,
                rows,
                cols,
            });
            cols
        } else {
            self.similarities(i0, rows, j0, panel, &mut epilogue)
        };
        // One column block's lanes hold at most `STREAM_COLUMNS / LANES` terms each in float32;
        // the blocks add up in float64.
        for (sum, lanes) in others.iter_mut().zip(&epilogue.lanes) {
            *sum += pairwise_sum(lanes.map(f64::from));
        }
        cols
    }

    /// Losses of anchors `i0..i0 + out.len()`, and each row's softmax statistics for the
    /// gradient pass. Leaves the last column block's exponentials in `panel` (all of them when
    /// the panel is kept), the in-batch diagonal holding 0.
    pub(super) fn block_losses(
        &self,
        i0: usize,
        out: &mut [f64],
        panel: &mut [f32],
    ) -> Vec<RowStats> {
        let rows = out.len();
        let n = self.shape.n;
        let target: Vec<f32> = (0..rows).map(|r| self.positive_logit(i0 + r)).collect();
        let (shifts, raw) = match self.shape.fixed_shift() {
            Some(shift) => (vec![shift; rows], false),
            None => (self.row_maxima(i0, &target, panel), self.shape.panel_kept()),
        };
        // Keeping the target out of the sums lets the gradient use 1 - softmax(target) =
        // others / total without the cancellation of computing softmax - 1 in float32.
        let mut others = vec![0.0f64; rows];
        for j0 in (0..n).step_by(self.shape.columns) {
            self.exponentials(i0, rows, j0, &shifts, panel, &mut others, raw);
        }
        target
            .iter()
            .zip(&shifts)
            .zip(&others)
            .zip(out.iter_mut())
            .map(|(((&z, &shift), &others), out)| {
                let (z, shift) = (f64::from(z), f64::from(shift));
                // loss = logsumexp - z = ln(1 + others * e^(shift - z)): no cancellation.
                *out = (others * (shift - z).exp()).ln_1p();
                let total = others + (z - shift).exp();
                RowStats {
                    shift: shift as f32,
                    total,
                    others: others as f32,
                    others_share: (others / total) as f32,
                }
            })
            .collect()
    }

    /// Each row's largest logit (the target's included; NaN ignored), by a pass of products
    /// whose last column block stays in `panel`.
    fn row_maxima(&self, i0: usize, target: &[f32], panel: &mut [f32]) -> Vec<f32> {
        let mut maxima = RowMaxima {
            inv_t: self.shape.inv_t,
            maxima: target.to_vec(),
        };
        for j0 in (0..self.shape.n).step_by(self.shape.columns) {
            self.similarities(i0, target.len(), j0, panel, &mut maxima);
        }
        maxima.maxima
    }

    /// Gradients for anchors `i0..i0 + stats.len()` with respect to the normalised vectors:
    /// the anchors' rows into `ga` (`rows x d`), the block's scaled anchors `f A` into `fa_blk`, the
    /// pool's part added into `pool_acc` when given (otherwise the caller multiplies the kept
    /// panel by `f A` itself), and (shared pool) the positives' rows into `gp_rows`.
    ///
    /// The coefficients are `C = (softmax - target) * coef / t`, row by row; the panel holds
    /// `e = softmax * total`, so `C = f e` with `f = coef / total` per row, the in-batch
    /// diagonal set to `-others` (that is, `(softmax - 1) total`). The factor goes where it costs
    /// `rows x d`, not `rows x n`: `dA = f (e P)` and `dP += e^T (f A)`. The panel is left
    /// holding `e` with that diagonal.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn block_grads(
        &self,
        i0: usize,
        stats: &[RowStats],
        scale: GradScale<'_>,
        panel: &mut [f32],
        ga: &mut [f32],
        fa_blk: &mut [f32],
        mut pool_acc: Option<&mut [f32]>,
        gp_rows: Option<&mut [f32]>,
    ) {
        let Shape { d, n, columns, .. } = self.shape;
        let rows = stats.len();
        // Each row's factor: the reduction's scale (times the row's upstream weight) over t.
        let coef = |r: usize| scale.at(i0 + r) * self.shape.inv_t;
        let factor: Vec<f32> = stats
            .iter()
            .enumerate()
            .map(|(r, st)| (f64::from(coef(r)) / st.total) as f32)
            .collect();
        let a_blk = &self.a_hat[i0 * d..(i0 + rows) * d];
        let fa = &mut fa_blk[..rows * d];
        for ((out, a_r), &f) in fa
            .chunks_exact_mut(d)
            .zip(a_blk.chunks_exact(d))
            .zip(&factor)
        {
            scale_into(out, f, a_r);
        }
        let fa = MatRef::row_major(fa, rows, d);
        let shifts: Vec<f32> = stats.iter().map(|st| st.shift).collect();
        let mut no_sums = vec![0.0f64; rows];
        debug_assert_eq!(ga.len(), rows * d);
        for j0 in (0..n).step_by(columns) {
            let cols = if self.shape.panel_kept() {
                n
            } else {
                self.exponentials(i0, rows, j0, &shifts, panel, &mut no_sums, false)
            };
            let panel = &mut panel[..rows * cols];
            for (r, st) in stats.iter().enumerate() {
                if let Some(j) = self.diagonal(i0 + r, j0, cols) {
                    panel[r * cols + j] = -st.others;
                }
            }
            let e = MatRef::row_major(panel, rows, cols);
            gemm_packed(ga, d, e, &self.grad_packed[j0 / columns], j0 > 0);
            if let Some(acc) = pool_acc.as_deref_mut() {
                gemm(&mut acc[j0 * d..(j0 + cols) * d], d, e.t(), fa, true);
            }
        }
        for (g, &f) in ga.chunks_exact_mut(d).zip(&factor) {
            g.iter_mut().for_each(|v| *v *= f);
        }
        // Shared pool: the target's coefficient is (softmax - 1) coef / t = -others_share coef/t.
        if let Some(gp) = gp_rows {
            for (r, st) in stats.iter().enumerate() {
                let i = i0 + r;
                let c0 = -st.others_share * coef(r);
                let a_i = &self.a_hat[i * d..(i + 1) * d];
                let p_i = &self.p_hat[i * d..(i + 1) * d];
                scale_into(&mut gp[r * d..(r + 1) * d], c0, a_i);
                axpy(&mut ga[r * d..(r + 1) * d], c0, p_i);
            }
        }
    }
}

/// What the gradient pass needs of a row: its shift, `total = sum_j e^(z_j - shift)` (target
/// included), the others' part of it, and `1 - softmax(target)` computed without cancellation.
pub(super) struct RowStats {
    shift: f32,
    total: f64,
    others: f32,
    others_share: f32,
}

/// Tile epilogue of the value pass: exponentials in place, and each row's sum without the target
/// kept in `LANES` partial sums.
struct Exponentials<'c, 'a> {
    ctx: &'c Context<'a>,
    i0: usize,
    j0: usize,
    shifts: &'c [f32],
    lanes: Vec<[f32; LANES]>,
}

impl TileEpilogue for Exponentials<'_, '_> {
    fn finish(&mut self, tile: Tile<'_>) {
        let Tile {
            values: tile,
            ldc,
            row0,
            col0,
            rows,
            cols,
        } = tile;
        // Row r's own positive (in-batch) sits in column `diagonal + r` of the tile.
        let diagonal = if self.ctx.shape.in_batch {
            (self.i0 + row0) as isize - (self.j0 + col0) as isize
        } else {
            isize::MIN / 2
        };
        exponentials_of_tile(
            tile,
            ldc,
            cols,
            self.ctx.shape.inv_t,
            &self.shifts[row0..row0 + rows],
            diagonal,
            &mut self.lanes[row0..row0 + rows],
        );
    }
}

/// Tile epilogue of the row-maximum pass (low temperatures): the running maximum logit per row.
struct RowMaxima {
    inv_t: f32,
    maxima: Vec<f32>,
}

impl TileEpilogue for RowMaxima {
    fn finish(&mut self, tile: Tile<'_>) {
        let Tile {
            values: tile,
            ldc,
            row0,
            rows,
            cols,
            ..
        } = tile;
        for r in 0..rows {
            let row = &tile[r * ldc..r * ldc + cols];
            let m = &mut self.maxima[row0 + r];
            // NaN elements are skipped here and surface through the row's sum.
            *m = m.max(max_ignoring_nan(row) * self.inv_t);
        }
    }
}

/// For each row `r` of the tile (one per shift): in place `x = exp(x * inv_t - shift_r)`, then 0 in
/// column `diagonal + r` when that is inside the tile, and the row added into `lanes[r]`.
#[inline(always)]
fn exponentials_of_tile_generic(
    tile: &mut [f32],
    ldc: usize,
    cols: usize,
    inv_t: f32,
    shifts: &[f32],
    diagonal: isize,
    lanes: &mut [[f32; LANES]],
) {
    for (r, (&shift, acc)) in shifts.iter().zip(lanes.iter_mut()).enumerate() {
        let row = &mut tile[r * ldc..r * ldc + cols];
        let mut chunks = row.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for v in c.iter_mut() {
                *v = exp_f32(*v * inv_t - shift);
            }
        }
        for v in chunks.into_remainder() {
            *v = exp_f32(*v * inv_t - shift);
        }
        if let Ok(skip) = usize::try_from(diagonal + r as isize) {
            if let Some(v) = row.get_mut(skip) {
                *v = 0.0;
            }
        }
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += v;
            }
        }
        for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
            *a += v;
        }
    }
}

dispatch_simd!(fn exponentials_of_tile(tile: &mut [f32], ldc: usize, cols: usize, inv_t: f32, shifts: &[f32], diagonal: isize, lanes: &mut [[f32; LANES]]) => exponentials_of_tile_generic);
