//! InfoNCE with negatives per anchor: value and exact gradients through the cosine normalisation.
//!
//! Definition (the API contract's "Losses", as `InfoNCELoss` documents it):
//! `s(x, y) = x.y / (max(|x|, 1e-8) * max(|y|, 1e-8))`,
//! `loss_i = logsumexp([s(a_i, p_i), s(a_i, n_i1), ...] / t) - s(a_i, p_i) / t`.
//!
//! Per anchor the kernel reads its positive and negatives twice: once for the similarities (the
//! row is then in L2), once to write the gradients. Rows are independent, so they run in parallel
//! and the result does not depend on the thread count.

use super::{check_len, effective_temperature, LossGrads};
use crate::cancel::Cancel;
use crate::conditioning::Rescaled;
use crate::error::{KernelError, KernelResult};
use crate::parallel::map_tasks;
use crate::vecops::{
    axpy, clamped_norm, combine_and_accumulate, dot, dot_and_square, store_fence,
    write_cosine_grad, NORM_EPS,
};

/// Sizes of a per-anchor batch: `batch` anchors, `negatives` per anchor, vectors of `dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerAnchorDims {
    pub batch: usize,
    pub negatives: usize,
    pub dim: usize,
}

/// The inputs of one per-anchor call: `anchors` and `positives` (B x D), `negatives` (B x N x D).
#[derive(Clone, Copy)]
pub struct PerAnchorInputs<'a> {
    pub anchors: &'a [f32],
    pub positives: &'a [f32],
    pub negatives: &'a [f32],
    pub dims: PerAnchorDims,
    /// Rows not yet started when this is set are skipped, and the call fails (`Cancelled`).
    pub cancel: &'a Cancel,
}

/// Per-row InfoNCE losses (written to `losses`, length `batch`) and, if asked, gradients.
///
/// Rows whose squares would overflow float32 (magnitudes beyond 2^40) are rescaled first
/// (`conditioning::Rescaled`: cosine similarity does not change), so the result stays finite and
/// exact at any scale float32 holds.
pub fn info_nce_per_anchor(
    inputs: &PerAnchorInputs<'_>,
    temperature: f64,
    losses: &mut [f64],
    grads: Option<LossGrads<'_>>,
) -> KernelResult<()> {
    let PerAnchorInputs {
        anchors,
        positives,
        negatives,
        dims,
        cancel,
    } = *inputs;
    let d = dims.dim.max(1);
    let (a, p, n) = (
        Rescaled::new(anchors, d)?,
        Rescaled::new(positives, d)?,
        Rescaled::new(negatives, d)?,
    );
    let rows = [&*a.rows, &*p.rows, &*n.rows];
    let Some(mut g) = grads else {
        return on_safe_rows(rows, dims, temperature, losses, None, cancel);
    };
    on_safe_rows(rows, dims, temperature, losses, Some(g.reborrow()), cancel)?;
    a.unscale_gradient(g.anchors, d);
    p.unscale_gradient(g.positives, d);
    n.unscale_gradient(g.required_negatives()?, d);
    Ok(())
}

/// The kernel proper, on rows already safe for float32 squares: `[anchors, positives, negatives]`.
/// Rows not yet started when `cancel` is set are skipped, and the call then fails (`Cancelled`).
fn on_safe_rows(
    [anchors, positives, negatives]: [&[f32]; 3],
    dims: PerAnchorDims,
    temperature: f64,
    losses: &mut [f64],
    grads: Option<LossGrads<'_>>,
    cancel: &Cancel,
) -> KernelResult<()> {
    let PerAnchorDims {
        batch,
        negatives: n,
        dim,
    } = dims;
    let t = effective_temperature(temperature)?;
    if dim == 0 {
        return Err(KernelError::shape("embedding dimension must be >= 1"));
    }
    check_len("anchors", anchors.len(), batch * dim)?;
    check_len("positives", positives.len(), batch * dim)?;
    check_len("negatives", negatives.len(), batch * n * dim)?;
    check_len("losses", losses.len(), batch)?;
    let row_inputs = anchors
        .chunks_exact(dim)
        .zip(positives.chunks_exact(dim))
        .zip(
            negatives
                .chunks_exact((n * dim).max(1))
                .chain(std::iter::repeat(&[][..])),
        );
    match grads {
        None => {
            let tasks: Vec<_> = row_inputs.zip(losses.iter_mut()).collect();
            map_tasks(tasks, batch * (n + 2) * dim, |(((a, p), negs), out)| {
                if !cancel.is_requested() {
                    *out = row(a, p, negs, n, t, None);
                }
            });
        }
        Some(g) => {
            let (ga, gp, gn, scale) = g.explicit()?;
            scale.check_items(batch)?;
            check_len("grad anchors", ga.len(), batch * dim)?;
            check_len("grad positives", gp.len(), batch * dim)?;
            check_len("grad negatives", gn.len(), batch * n * dim)?;
            let grad_rows = ga.chunks_exact_mut(dim).zip(gp.chunks_exact_mut(dim)).zip(
                gn.chunks_exact_mut((n * dim).max(1))
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            );
            let tasks: Vec<_> = row_inputs
                .zip(losses.iter_mut())
                .zip(grad_rows)
                .enumerate()
                .collect();
            map_tasks(
                tasks,
                batch * (n + 2) * dim,
                |(i, ((((a, p), negs), out), ((ga, gp), gn)))| {
                    if cancel.is_requested() {
                        return;
                    }
                    let gn: &mut [f32] = gn.unwrap_or_default();
                    *out = row(a, p, negs, n, t, Some((ga, gp, gn, scale.at(i))));
                },
            );
        }
    }
    cancel.check()
}

type RowGrads<'g> = (&'g mut [f32], &'g mut [f32], &'g mut [f32], f32);

/// One anchor's loss (f64) and, optionally, its gradients.
fn row(a: &[f32], p: &[f32], negs: &[f32], n: usize, t: f32, grads: Option<RowGrads<'_>>) -> f64 {
    let dim = a.len();
    let norm = clamped_norm;
    let na = norm(a);
    let np = norm(p);
    let sp = dot(a, p) / (na * np);
    // Similarities and norms of the negatives (small: N values per anchor).
    let mut sims = Vec::with_capacity(n + 1);
    let mut norms = Vec::with_capacity(n);
    sims.push(sp);
    for neg in negs.chunks_exact(dim).take(n) {
        // One pass over the negative for both its norm and its dot product with the anchor.
        let (an, nn2) = dot_and_square(a, neg);
        let nn = nn2.sqrt().max(NORM_EPS);
        norms.push(nn);
        sims.push(an / (na * nn));
    }
    // Max-shifted log-sum-exp in f64: t = 0.01 with unit vectors gives logits up to 100.
    let inv_t = 1.0 / f64::from(t);
    let max = sims
        .iter()
        .fold(f64::NEG_INFINITY, |m, &s| m.max(f64::from(s) * inv_t));
    let exps: Vec<f64> = sims
        .iter()
        .map(|&s| (f64::from(s) * inv_t - max).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    let lse = max + sum.ln();
    let loss = lse - f64::from(sp) * inv_t;
    if let Some((ga, gp, gn, scale)) = grads {
        // dL/ds_k = (softmax_k - [k == 0]) / t, times the reduction's scale. For the target,
        // softmax_0 - 1 is minus the negatives' share (no cancellation).
        let coef = |k: usize| -> f32 {
            let w = if k == 0 {
                -exps[1..].iter().sum::<f64>() / sum
            } else {
                exps[k] / sum
            };
            (w * inv_t) as f32 * scale
        };
        let c0 = coef(0);
        write_cosine_grad(gp, c0, p, np, a, na, sp);
        // d s_k / d a summed over k: sum_k c_k (y_k / (na * ny_k)) - (sum_k c_k s_k) a / na^2.
        ga.fill(0.0);
        axpy(ga, c0 / (na * np), p);
        let mut cs_sum = c0 * sp;
        for (k, (neg, g)) in negs
            .chunks_exact(dim)
            .zip(gn.chunks_exact_mut(dim))
            .enumerate()
        {
            let ck = coef(k + 1);
            let sk = sims[k + 1];
            let nk = norms[k];
            // The negative's gradient (d s_k / d n_k) and its share of the anchor's
            // (d s_k / d a, the part along n_k), in one pass over the negative.
            let second = if nk > NORM_EPS {
                -ck * sk / (nk * nk)
            } else {
                0.0
            };
            combine_and_accumulate(g, ck / (nk * na), a, second, neg, ga, ck / (na * nk));
            cs_sum += ck * sk;
        }
        if na > NORM_EPS {
            axpy(ga, -cs_sum / (na * na), a);
        }
        // The negatives' gradients were written with non-temporal stores.
        store_fence();
    }
    loss
}
