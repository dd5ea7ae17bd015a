//! Local contrastive (triplet margin) loss: one term per (anchor, negative),
//! `max(0, |a - p| - |a - n| + margin)`, with Euclidean distances, and its exact (sub)gradient.
//!
//! Where a distance is zero its direction is taken as zero (the crate's convention), and a term
//! exactly at zero is inactive. A NaN term counts as active, so NaN reaches the value and the
//! gradients instead of being clipped away by `max`.

use super::{check_len, LossGrads};
use crate::cancel::Cancel;
use crate::conditioning;
use crate::error::{KernelError, KernelResult};
use crate::parallel::for_each_task;
use crate::vecops::{axpy, squared_distance, NORM_EPS};

/// Where the negatives come from.
#[derive(Clone, Copy)]
pub enum Negatives<'a> {
    /// `batch x count x dim`: each anchor has its own.
    PerAnchor(&'a [f32]),
    /// `count x dim`: every anchor uses the same pool.
    Shared(&'a [f32]),
}

/// Inputs: `batch` anchors and positives of `dim`, `count` negatives per anchor.
pub struct MarginInputs<'a> {
    pub anchors: &'a [f32],
    pub positives: &'a [f32],
    pub negatives: Negatives<'a>,
    pub batch: usize,
    pub count: usize,
    pub dim: usize,
    /// Rows not yet started when this is set are skipped, and the call fails (`Cancelled`).
    pub cancel: &'a Cancel,
}

/// Writes every term (`batch x count`, row-major) to `terms` and, if asked, the gradients.
///
/// Inputs with rows beyond 2^40 (whose squared distances would overflow float32), or with every
/// row below 2^-40 (whose squared distances would underflow), are computed on copies scaled by
/// one power of two `c`, with the margin scaled alike: every term is then `c` times the original
/// (divided out below) and the gradients are unchanged.
pub fn local_contrastive(
    inputs: &MarginInputs<'_>,
    margin: f64,
    terms: &mut [f64],
    grads: Option<LossGrads<'_>>,
) -> KernelResult<()> {
    let negatives = match inputs.negatives {
        Negatives::PerAnchor(x) | Negatives::Shared(x) => x,
    };
    let mut c =
        conditioning::common_scale(&[inputs.anchors, inputs.positives, negatives], inputs.dim);
    // Scaling tiny inputs up must not push the scaled margin past float32: where the margin
    // dwarfs the distances by 2^64 or more, their digits are below its rounding anyway.
    let margin_room = (2.0f64.powi(64) / margin).log2().floor().exp2();
    if c > 1.0 && margin > 0.0 && f64::from(c) > margin_room {
        c = margin_room.max(1.0) as f32;
    }
    if c == 1.0 {
        return on_conditioned(inputs, margin, terms, grads);
    }
    let (a, p, n) = (
        conditioning::scaled(inputs.anchors, c)?,
        conditioning::scaled(inputs.positives, c)?,
        conditioning::scaled(negatives, c)?,
    );
    let scaled_inputs = MarginInputs {
        anchors: &a,
        positives: &p,
        negatives: match inputs.negatives {
            Negatives::PerAnchor(_) => Negatives::PerAnchor(&n),
            Negatives::Shared(_) => Negatives::Shared(&n),
        },
        ..*inputs
    };
    on_conditioned(&scaled_inputs, margin * f64::from(c), terms, grads)?;
    let inverse = 1.0 / f64::from(c);
    terms.iter_mut().for_each(|t| *t *= inverse);
    Ok(())
}

/// The kernel proper, on inputs whose squared distances neither overflow nor underflow.
fn on_conditioned(
    inputs: &MarginInputs<'_>,
    margin: f64,
    terms: &mut [f64],
    grads: Option<LossGrads<'_>>,
) -> KernelResult<()> {
    if !margin.is_finite() || margin < 0.0 {
        return Err(KernelError::invalid(format!(
            "margin must be a finite number >= 0, got {margin}"
        )));
    }
    let margin = margin as f32;
    let MarginInputs {
        anchors,
        positives,
        negatives,
        batch: b,
        count: n,
        dim: d,
        cancel,
    } = *inputs;
    if b == 0 || n == 0 || d == 0 {
        return Err(KernelError::shape(
            "anchors, positives and negatives must be non-empty",
        ));
    }
    check_len("anchors", anchors.len(), b * d)?;
    check_len("positives", positives.len(), b * d)?;
    let negatives_len = match negatives {
        Negatives::PerAnchor(x) => {
            check_len("negatives", x.len(), b * n * d)?;
            b * n * d
        }
        Negatives::Shared(x) => {
            check_len("negatives", x.len(), n * d)?;
            n * d
        }
    };
    check_len("terms", terms.len(), b * n)?;
    let negative = |i: usize, j: usize| -> &[f32] {
        match negatives {
            Negatives::PerAnchor(x) => &x[(i * n + j) * d..(i * n + j + 1) * d],
            Negatives::Shared(x) => &x[j * d..(j + 1) * d],
        }
    };
    let row = |i: usize| (&anchors[i * d..(i + 1) * d], &positives[i * d..(i + 1) * d]);
    let work = b * n * d;

    let Some(g) = grads else {
        let tasks: Vec<_> = terms.chunks_mut(n).enumerate().collect();
        for_each_task(tasks, work, |(i, out)| {
            if cancel.is_requested() {
                return;
            }
            let (a, p) = row(i);
            let d_pos = squared_distance(a, p).sqrt();
            for (j, t) in out.iter_mut().enumerate() {
                let d_neg = squared_distance(a, negative(i, j)).sqrt();
                *t = f64::from(hinge(d_pos - d_neg + margin));
            }
        });
        return cancel.check();
    };
    let (grad_anchors, grad_positives, grad_negatives, scale) = g.explicit()?;
    scale.check_items(b * n)?;
    check_len("grad anchors", grad_anchors.len(), b * d)?;
    check_len("grad positives", grad_positives.len(), b * d)?;
    check_len("grad negatives", grad_negatives.len(), negatives_len)?;
    let shared = matches!(negatives, Negatives::Shared(_));

    // Anchors and positives (and per-anchor negatives): one task per anchor row.
    let mut gn_rows: Vec<Option<&mut [f32]>> = if shared {
        (0..b).map(|_| None).collect()
    } else {
        grad_negatives.chunks_mut(n * d).map(Some).collect()
    };
    let tasks: Vec<_> = terms
        .chunks_mut(n)
        .zip(grad_anchors.chunks_mut(d))
        .zip(grad_positives.chunks_mut(d))
        .zip(gn_rows.iter_mut().map(Option::take))
        .enumerate()
        .collect();
    for_each_task(tasks, work, |(i, (((out, ga), gp), mut gn))| {
        if cancel.is_requested() {
            return;
        }
        let (a, p) = row(i);
        let d_pos = squared_distance(a, p).sqrt();
        let pos_coef = direction_coef(d_pos, scale.scale);
        ga.fill(0.0);
        gp.fill(0.0);
        if let Some(gn) = gn.as_deref_mut() {
            gn.fill(0.0);
        }
        // The active terms' upstream weights (1 each without weights: their count, exactly).
        let mut active_weight = 0.0f32;
        for (j, t) in out.iter_mut().enumerate() {
            let neg = negative(i, j);
            let d_neg = squared_distance(a, neg).sqrt();
            let value = hinge(d_pos - d_neg + margin);
            *t = f64::from(value);
            if is_active(value) {
                active_weight += scale.weight(i * n + j);
                // d term / d a gets -(a - n) / |a - n|; d term / d n gets +(a - n) / |a - n|.
                let c = direction_coef(d_neg, scale.at(i * n + j));
                if c != 0.0 {
                    axpy(ga, -c, a);
                    axpy(ga, c, neg);
                    if let Some(gn_j) = gn.as_deref_mut().map(|g| &mut g[j * d..(j + 1) * d]) {
                        axpy(gn_j, c, a);
                        axpy(gn_j, -c, neg);
                    }
                }
            }
        }
        // Each active term adds (a - p) / |a - p| to the anchor and its negative to the positive.
        let c = pos_coef * active_weight;
        axpy(ga, c, a);
        axpy(ga, -c, p);
        axpy(gp, -c, a);
        axpy(gp, c, p);
    });

    if shared && !cancel.is_requested() {
        // The shared pool's gradient sums over anchors: one task per pool row, anchors in order,
        // so the result does not depend on the thread count. Distances are recomputed rather
        // than stored (B x N floats).
        let d_pos: Vec<f32> = (0..b)
            .map(|i| {
                let (a, p) = row(i);
                squared_distance(a, p).sqrt()
            })
            .collect();
        let tasks: Vec<_> = grad_negatives.chunks_mut(d).enumerate().collect();
        for_each_task(tasks, work, |(j, gn)| {
            if cancel.is_requested() {
                return;
            }
            gn.fill(0.0);
            let neg = negative(0, j);
            for (i, &dp) in d_pos.iter().enumerate() {
                let (a, _) = row(i);
                let d_neg = squared_distance(a, neg).sqrt();
                let value = hinge(dp - d_neg + margin);
                let c = direction_coef(d_neg, scale.at(i * n + j));
                if is_active(value) && c != 0.0 {
                    axpy(gn, c, a);
                    axpy(gn, -c, neg);
                }
            }
        });
    }
    cancel.check()
}

/// `max(0, x)` that keeps NaN (`f32::max` would drop it).
#[inline]
fn hinge(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
    }
}

/// A term contributes to the gradient when it is positive, or NaN (so NaN propagates).
#[inline]
fn is_active(value: f32) -> bool {
    value > 0.0 || value.is_nan()
}

/// `scale / dist`, the factor of the unit direction `(x - y) / |x - y|`; zero for a zero distance
/// (no direction), NaN for a NaN distance (so NaN inputs reach every gradient element).
#[inline]
fn direction_coef(dist: f32, scale: f32) -> f32 {
    if dist > NORM_EPS || dist.is_nan() {
        scale / dist
    } else {
        0.0
    }
}
