//! InfoNCE against a pool shared by every anchor, or in-batch: value and exact gradients.
//!
//! Shared pool (`pool = Some(N x D)`): `loss_i = logsumexp([s(a_i, p_i), s(a_i, n_1..n_N)] / t)
//! - s(a_i, p_i) / t`. In-batch (`pool = None`): the pool is the positives themselves and
//! `loss_i = logsumexp_j(s(a_i, p_j) / t) - s(a_i, p_i) / t` (CLIP / MultipleNegativesRanking).
//!
//! The similarities form a B x N matrix; it is never built. Rows are normalised once, then blocks
//! of `ROW_BLOCK` anchors go through:
//! 1. similarity panels `A_blk P^T` (blocked GEMM), one column block at a time, turned into
//!    exponentials `e = exp(z - shift)` with their row sums in the GEMM's tile epilogue
//!    (`blocks.rs`: the shift is the bound 1/t at usual temperatures, else each row's maximum);
//! 2. for gradients, `dA_blk = f (e P)` and `dP_blk += e^T (f A_blk)` with one factor per row
//!    (two more GEMMs).
//!
//! When a row block's whole panel fits in `PANEL_FLOATS` it is kept between the two steps (three
//! GEMMs in all); otherwise step 2 recomputes it (four; five below t = 0.05, where the row maxima
//! take a pass of their own). The pool gradient is a sum over every
//! anchor; to stay deterministic it is accumulated in a number of chunks that depends on the sizes
//! only (never on the thread count) and the chunks are added in order. Finally the gradients are
//! carried through the normalisation.

mod blocks;
mod unit_rows;

use super::{check_len, effective_temperature, GradScale, LossGrads};
use crate::cancel::Cancel;
use crate::error::{KernelError, KernelResult};
use crate::gemm::{gemm_packed, MatRef, PackedB};
use crate::parallel::{for_each_task, in_pool, map_tasks};
use crate::scratch::Scratch;
use crate::vecops::axpy;
use blocks::{Context, Shape};
use unit_rows::UnitRows;

/// Anchors per block: enough rows to amortise packing the pool in the GEMMs.
const ROW_BLOCK: usize = 256;
/// Largest similarity panel (floats) kept per task: 8 MB, so a pool of up to 16384 rows costs
/// three GEMMs, not four.
const PANEL_FLOATS: usize = 1 << 22;
/// Column block when the panel does not fit.
const STREAM_COLUMNS: usize = 8192;
/// Bytes of per-chunk pool-gradient accumulators allowed beyond the output itself.
const CHUNK_BYTES: usize = 64 << 20;

/// Sizes and inputs. `pool` is `pool_size x dim`; `None` means in-batch (pool = positives).
pub struct PooledInputs<'a> {
    pub anchors: &'a [f32],
    pub positives: &'a [f32],
    pub pool: Option<&'a [f32]>,
    pub batch: usize,
    pub pool_size: usize,
    pub dim: usize,
    /// Checked between row blocks: once set, the call returns `Cancelled` early.
    pub cancel: &'a Cancel,
}

/// Per-row losses (written to `losses`, length `batch`) and, if asked, gradients.
///
/// Rows whose squares would overflow float32 are rescaled first, as in the per-anchor form.
pub fn info_nce_pooled(
    inputs: &PooledInputs<'_>,
    temperature: f64,
    losses: &mut [f64],
    grads: Option<LossGrads<'_>>,
) -> KernelResult<()> {
    // One job on the pool for the whole call: its parallel phases then start on threads
    // already running instead of waking them from outside for each phase.
    in_pool(|| pooled(inputs, temperature, losses, grads))
}

fn pooled(
    inputs: &PooledInputs<'_>,
    temperature: f64,
    losses: &mut [f64],
    grads: Option<LossGrads<'_>>,
) -> KernelResult<()> {
    let t = effective_temperature(temperature)?;
    let (b, d) = (inputs.batch, inputs.dim);
    let n = if inputs.pool.is_some() {
        inputs.pool_size
    } else {
        b
    };
    if d == 0 || b == 0 || n == 0 {
        return Err(KernelError::shape(
            "anchors, positives and the pool must be non-empty",
        ));
    }
    check_len("anchors", inputs.anchors.len(), b * d)?;
    check_len("positives", inputs.positives.len(), b * d)?;
    if let Some(pool) = inputs.pool {
        check_len("negatives", pool.len(), n * d)?;
    }
    check_len("losses", losses.len(), b)?;
    if let Some(g) = &grads {
        check_len("grad anchors", g.anchors.len(), b * d)?;
        check_len("grad positives", g.positives.len(), b * d)?;
        match (&g.negatives, inputs.pool) {
            (Some(gp), Some(_)) => check_len("grad negatives", gp.len(), n * d)?,
            (None, None) => {}
            _ => {
                return Err(KernelError::invalid(
                    "a pool gradient is needed exactly when there is a pool",
                ))
            }
        }
    }

    // Conditioned and normalised rows: anchors, positives, then the pool if there is one.
    let mut sources = vec![inputs.anchors, inputs.positives];
    sources.extend(inputs.pool);
    let units = UnitRows::of_all(&sources, d);
    let (a_units, p_units) = (&units[0], &units[1]);
    let pool_units = units.get(2).unwrap_or(p_units);
    let (a_hat, p_hat, pool_hat) = (&a_units.hat, &p_units.hat, &pool_units.hat);
    let columns = if ROW_BLOCK * n <= PANEL_FLOATS {
        n
    } else {
        STREAM_COLUMNS
    };
    let shape = Shape {
        d,
        n,
        inv_t: 1.0 / t,
        in_batch: inputs.pool.is_none(),
        columns,
    };
    // Every block of anchors multiplies the same pool: pack it once per column block, as B of
    // `A P^T` (similarities) and, for gradients, as B of `C P` (the anchors' gradient).
    let blocks: Vec<(usize, usize)> = (0..n)
        .step_by(columns)
        .map(|j0| (j0, columns.min(n - j0)))
        .collect();
    let pool_block = |&(j0, cols): &(usize, usize)| {
        MatRef::row_major(&pool_hat[j0 * d..(j0 + cols) * d], cols, d)
    };
    // Both packings in one parallel region (the second only for gradients).
    let packings = if grads.is_some() { 2 } else { 1 };
    let jobs: Vec<(bool, (usize, usize))> = [true, false][..packings]
        .iter()
        .flat_map(|&as_sim| blocks.iter().map(move |&blk| (as_sim, blk)))
        .collect();
    let mut packed = map_tasks(jobs, packings * n * d, |(as_sim, blk)| {
        let block = pool_block(&blk);
        PackedB::new(if as_sim { block.t() } else { block })
    });
    let grad_packed = packed.split_off(blocks.len());
    let sim_packed = packed;
    let ctx = Context {
        a_hat,
        p_hat,
        sim_packed,
        grad_packed,
        shape,
    };

    let Some(g) = grads else {
        // Value only: row blocks are independent.
        let tasks: Vec<_> = losses.chunks_mut(ROW_BLOCK).enumerate().collect();
        for_each_task(tasks, b * n * d, |(blk, out)| {
            if inputs.cancel.is_requested() {
                return;
            }
            let mut panel = Scratch::new(ROW_BLOCK * columns);
            ctx.block_losses(blk * ROW_BLOCK, out, &mut panel);
        });
        return inputs.cancel.check();
    };

    let scale = g.scale;
    scale.check_items(b)?;
    let (grad_a, grad_p, grad_pool) = (g.anchors, g.positives, g.negatives);
    let (pool_grad_hat, mut grad_p_shared): (&mut [f32], Option<&mut [f32]>) = match grad_pool {
        Some(gp) => (gp, Some(grad_p)),
        None => (grad_p, None),
    };
    let plan = GradientPlan {
        ctx: &ctx,
        scale,
        cancel: inputs.cancel,
        batch: b,
    };
    if b * n <= PANEL_FLOATS && shape.panel_kept() {
        plan.whole_panel(losses, grad_a, pool_grad_hat, grad_p_shared.as_deref_mut());
    } else {
        plan.chunked(losses, grad_a, pool_grad_hat, grad_p_shared.as_deref_mut());
    }
    inputs.cancel.check()?;

    // Back through the normalisation and the conditioning, every gradient in one region.
    let mut backprop = vec![(grad_a, a_units)];
    match grad_p_shared {
        Some(gp) => backprop.extend([(gp, p_units), (pool_grad_hat, pool_units)]),
        None => backprop.push((pool_grad_hat, p_units)),
    }
    UnitRows::backprop_all(backprop, d);
    Ok(())
}

/// The gradient pass over every row block, in one of two plans.
struct GradientPlan<'p, 'a> {
    ctx: &'p Context<'a>,
    scale: GradScale<'p>,
    cancel: &'p Cancel,
    batch: usize,
}

impl GradientPlan<'_, '_> {
    /// Small problems (the whole `B x N` panel fits in `PANEL_FLOATS`): the row blocks keep
    /// their exponentials in one panel, then the pool's gradient is one product `e^T (f A)` over
    /// all anchors, split by pool rows. No per-chunk accumulators to zero and add, and the
    /// product runs the full depth `B` instead of one row block at a time.
    fn whole_panel(
        &self,
        losses: &mut [f64],
        grad_a: &mut [f32],
        pool_grad: &mut [f32],
        grad_p: Option<&mut [f32]>,
    ) {
        let Shape { d, n, .. } = self.ctx.shape;
        let b = self.batch;
        let mut panel = Scratch::new(b * n);
        let mut fa = Scratch::new(b * d);
        {
            let gp_rows = optional_chunks(grad_p, ROW_BLOCK * d, b.div_ceil(ROW_BLOCK));
            let tasks: Vec<_> = panel
                .chunks_mut(ROW_BLOCK * n)
                .zip(fa.chunks_mut(ROW_BLOCK * d))
                .zip(grad_a.chunks_mut(ROW_BLOCK * d))
                .zip(losses.chunks_mut(ROW_BLOCK))
                .zip(gp_rows)
                .enumerate()
                .collect();
            for_each_task(tasks, usize::MAX, |(k, ((((e, fa), ga), out), gp))| {
                if self.cancel.is_requested() {
                    return;
                }
                let i0 = k * ROW_BLOCK;
                let stats = self.ctx.block_losses(i0, out, e);
                self.ctx
                    .block_grads(i0, &stats, self.scale, e, ga, fa, None, gp);
            });
        }
        if self.cancel.is_requested() {
            return;
        }
        let e = MatRef::row_major(&panel, b, n);
        let fa = PackedB::new(MatRef::row_major(&fa, b, d));
        let tasks: Vec<_> = pool_grad.chunks_mut(ROW_BLOCK * d).enumerate().collect();
        for_each_task(tasks, usize::MAX, |(k, out)| {
            let j0 = k * ROW_BLOCK;
            gemm_packed(out, d, e.t().rows_range(j0, out.len() / d), &fa, false);
        });
    }

    /// Larger problems: row blocks in a number of chunks that depends on the sizes only (never
    /// on the thread count); chunk 0 accumulates the pool's gradient straight into the output,
    /// later chunks into their own buffers, added in order afterwards (deterministic).
    fn chunked(
        &self,
        losses: &mut [f64],
        grad_a: &mut [f32],
        pool_grad: &mut [f32],
        grad_p: Option<&mut [f32]>,
    ) {
        let Shape { d, n, columns, .. } = self.ctx.shape;
        let b = self.batch;
        let blocks = b.div_ceil(ROW_BLOCK);
        let blocks_per_chunk = blocks.div_ceil(chunk_count(b, n * d).min(blocks));
        let chunks = blocks.div_ceil(blocks_per_chunk);
        let chunk_rows = blocks_per_chunk * ROW_BLOCK;
        pool_grad.fill(0.0);
        let mut extra: Vec<Scratch> = (1..chunks).map(|_| Scratch::zeroed(n * d)).collect();
        {
            let mut accumulators: Vec<&mut [f32]> = Vec::with_capacity(chunks);
            accumulators.push(&mut *pool_grad);
            accumulators.extend(extra.iter_mut().map(|v| v.as_mut_slice()));
            let a_rows = grad_a.chunks_mut(chunk_rows * d);
            let loss_rows = losses.chunks_mut(chunk_rows);
            let p_rows = optional_chunks(grad_p, chunk_rows * d, chunks);
            let tasks: Vec<_> = accumulators
                .into_iter()
                .zip(a_rows)
                .zip(loss_rows)
                .zip(p_rows)
                .enumerate()
                .collect();
            for_each_task(tasks, usize::MAX, |(c, (((acc, ga), out), gp))| {
                let mut panel = Scratch::new(ROW_BLOCK * columns);
                let mut fa_blk = Scratch::new(ROW_BLOCK * d);
                let first_row = c * chunk_rows;
                let mut gp = gp;
                for (k, (ga_rows, out_rows)) in ga
                    .chunks_mut(ROW_BLOCK * d)
                    .zip(out.chunks_mut(ROW_BLOCK))
                    .enumerate()
                {
                    if self.cancel.is_requested() {
                        return;
                    }
                    let i0 = first_row + k * ROW_BLOCK;
                    let gp_rows = gp
                        .as_deref_mut()
                        .map(|g| &mut g[k * ROW_BLOCK * d..(k * ROW_BLOCK + out_rows.len()) * d]);
                    let stats = self.ctx.block_losses(i0, out_rows, &mut panel);
                    self.ctx.block_grads(
                        i0,
                        &stats,
                        self.scale,
                        &mut panel,
                        ga_rows,
                        &mut fa_blk,
                        Some(&mut *acc),
                        gp_rows,
                    );
                }
            });
        }
        if self.cancel.is_requested() {
            return;
        }
        // Each element adds the chunks in chunk order, whichever thread does its rows.
        let span = ROW_BLOCK * d;
        let tasks: Vec<_> = pool_grad.chunks_mut(span).enumerate().collect();
        for_each_task(tasks, extra.len() * n * d, |(k, out)| {
            let rows = k * span..k * span + out.len();
            for chunk in &extra {
                axpy(out, 1.0, &chunk[rows.clone()]);
            }
        });
    }
}

/// `x` in `count` chunks of `len` floats (the last may be shorter), or `count` Nones: the shared
/// pool's positive-row gradients split like the anchors' rows; in-batch there are none.
fn optional_chunks(x: Option<&mut [f32]>, len: usize, count: usize) -> Vec<Option<&mut [f32]>> {
    match x {
        Some(x) => x.chunks_mut(len).map(Some).collect(),
        None => (0..count).map(|_| None).collect(),
    }
}

/// How many pool-gradient accumulators: about one per 256 anchors (so two cores both have work),
/// at most 8, and at most `CHUNK_BYTES` of extra buffers. Depends on sizes only.
fn chunk_count(batch: usize, pool_floats: usize) -> usize {
    let by_memory = 1 + CHUNK_BYTES / (pool_floats * 4).max(1);
    batch.div_ceil(256).clamp(1, 8).min(by_memory)
}
