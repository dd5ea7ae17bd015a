//! InfoNCE with negatives per anchor: value and exact gradients through the cosine normalisation.
//!
//! Definition (docs: api.md, "Losses"): `s(x, y) = x.y / (max(|x|, 1e-8) * max(|y|, 1e-8))`,
//! `loss_i = logsumexp([s(a_i, p_i), s(a_i, n_i1), ...] / t) - s(a_i, p_i) / t`.
//!
//! Per anchor the kernel reads its positive and negatives twice: once for the similarities (the
//! row is then in L2), once to write the gradients. Rows are independent, so they run in parallel
//! and the result does not depend on the thread count.

use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::parallel::map_tasks;
use crate::simd::{pairwise_sum, LANES};

/// Norms below this are clamped (the crate's epsilon); the clamped norm is a constant, so its
/// derivative is zero there.
pub const NORM_EPS: f32 = 1e-8;

/// Dot product with sixteen independent accumulators: vectorisable without reordering any one
/// accumulator's additions, so every SIMD path gives the same bits.
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

/// `out += c * x`.
#[inline(always)]
fn axpy_generic(out: &mut [f32], c: f32, x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += c * v;
    }
}

dispatch_simd!(fn axpy(out: &mut [f32], c: f32, x: &[f32]) => axpy_generic);

/// `out = c1 * x + c2 * y`.
#[inline(always)]
fn combine_generic(out: &mut [f32], c1: f32, x: &[f32], c2: f32, y: &[f32]) {
    for ((o, &u), &v) in out.iter_mut().zip(x).zip(y) {
        *o = c1 * u + c2 * v;
    }
}

dispatch_simd!(fn combine(out: &mut [f32], c1: f32, x: &[f32], c2: f32, y: &[f32]) => combine_generic);

/// Sizes of a per-anchor batch: `batch` anchors, `negatives` per anchor, vectors of `dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerAnchorDims {
    pub batch: usize,
    pub negatives: usize,
    pub dim: usize,
}

/// Where gradients go, laid out like the inputs. Each is multiplied by `scale` (1/B for a mean).
pub struct InfoNceGrads<'a> {
    pub anchors: &'a mut [f32],
    pub positives: &'a mut [f32],
    pub negatives: &'a mut [f32],
    pub scale: f32,
}

fn check_len(name: &str, got: usize, expected: usize) -> KernelResult<()> {
    if got != expected {
        return Err(KernelError::shape(format!(
            "{name} has {got} elements, expected {expected}"
        )));
    }
    Ok(())
}

/// Clamps the temperature as the crate does (values below 0.01 become 0.01); rejects
/// non-positive and non-finite values.
pub fn effective_temperature(temperature: f64) -> KernelResult<f32> {
    if !temperature.is_finite() || temperature <= 0.0 {
        return Err(KernelError::invalid(format!(
            "temperature must be a finite number > 0, got {temperature}"
        )));
    }
    Ok(temperature.max(0.01) as f32)
}

/// Per-row InfoNCE losses (written to `losses`, length `batch`) and, if asked, gradients.
pub fn info_nce_per_anchor(
    anchors: &[f32],
    positives: &[f32],
    negatives: &[f32],
    dims: PerAnchorDims,
    temperature: f64,
    losses: &mut [f64],
    grads: Option<InfoNceGrads<'_>>,
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
                *out = row(a, p, negs, n, t, None);
            });
        }
        Some(g) => {
            check_len("grad anchors", g.anchors.len(), batch * dim)?;
            check_len("grad positives", g.positives.len(), batch * dim)?;
            check_len("grad negatives", g.negatives.len(), batch * n * dim)?;
            let scale = g.scale;
            let grad_rows = g
                .anchors
                .chunks_exact_mut(dim)
                .zip(g.positives.chunks_exact_mut(dim))
                .zip(
                    g.negatives
                        .chunks_exact_mut((n * dim).max(1))
                        .map(Some)
                        .chain(std::iter::repeat_with(|| None)),
                );
            let tasks: Vec<_> = row_inputs.zip(losses.iter_mut()).zip(grad_rows).collect();
            map_tasks(
                tasks,
                batch * (n + 2) * dim,
                |((((a, p), negs), out), ((ga, gp), gn))| {
                    let gn: &mut [f32] = gn.unwrap_or_default();
                    *out = row(a, p, negs, n, t, Some((ga, gp, gn, scale)));
                },
            );
        }
    }
    Ok(())
}

/// Gradient of `s(x, y)` with respect to `x`, times `c`, written (`out = ...`):
/// `c * (y / (nx * ny) - s * x / nx^2)`, the second term only where `|x|` was not clamped.
#[inline]
fn write_cosine_grad(out: &mut [f32], c: f32, x: &[f32], nx: f32, y: &[f32], ny: f32, s: f32) {
    let second = if nx > NORM_EPS {
        -c * s / (nx * nx)
    } else {
        0.0
    };
    combine(out, c / (nx * ny), y, second, x);
}

type RowGrads<'g> = (&'g mut [f32], &'g mut [f32], &'g mut [f32], f32);

/// One anchor's loss (f64) and, optionally, its gradients.
fn row(a: &[f32], p: &[f32], negs: &[f32], n: usize, t: f32, grads: Option<RowGrads<'_>>) -> f64 {
    let dim = a.len();
    let norm = |x: &[f32]| dot(x, x).sqrt().max(NORM_EPS);
    let na = norm(a);
    let np = norm(p);
    let sp = dot(a, p) / (na * np);
    // Similarities and norms of the negatives (small: N values per anchor).
    let mut sims = Vec::with_capacity(n + 1);
    let mut norms = Vec::with_capacity(n);
    sims.push(sp);
    for neg in negs.chunks_exact(dim).take(n) {
        let nn = norm(neg);
        norms.push(nn);
        sims.push(dot(a, neg) / (na * nn));
    }
    // Max-shifted log-sum-exp in f64: t = 0.01 with unit vectors gives logits up to 100.
    let inv_t = 1.0 / f64::from(t);
    let max = sims
        .iter()
        .fold(f64::NEG_INFINITY, |m, &s| m.max(f64::from(s) * inv_t));
    let sum: f64 = sims
        .iter()
        .map(|&s| (f64::from(s) * inv_t - max).exp())
        .sum();
    let lse = max + sum.ln();
    let loss = lse - f64::from(sp) * inv_t;
    if let Some((ga, gp, gn, scale)) = grads {
        // dL/ds_k = (softmax_k - [k == 0]) / t, times the reduction's scale.
        let coef = |k: usize| -> f32 {
            let w = (f64::from(sims[k]) * inv_t - lse).exp();
            let target = if k == 0 { 1.0 } else { 0.0 };
            ((w - target) * inv_t) as f32 * scale
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
            write_cosine_grad(g, ck, neg, nk, a, na, sk);
            axpy(ga, ck / (na * nk), neg);
            cs_sum += ck * sk;
        }
        if na > NORM_EPS {
            axpy(ga, -cs_sum / (na * na), a);
        }
    }
    loss
}
