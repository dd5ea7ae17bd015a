//! Selection keys per strategy (higher is better; NaN or -inf: never selected): the semi-hard
//! window, and the samplers' log-weights plus Gumbel noise.

use super::{MineInputs, Strategy, Stream};
use crate::dispatch_simd;
use crate::fastmath::ln_f32;
use crate::parallel::map_tasks;
use crate::vecops::{clamped_norm, dot, squared_distance};

/// Per-anchor and per-candidate quantities every tile needs.
pub(super) struct Prepared {
    pub(super) inv_anchor_norm: Vec<f32>,
    pub(super) inv_candidate_norm: Vec<f32>,
    /// Semi-hard only: |a|^2, |c|^2 and the squared bounds (d_ap^2, (d_ap + margin)^2).
    pub(super) anchor_sq: Vec<f32>,
    pub(super) candidate_sq: Vec<f32>,
    pub(super) bounds: Vec<(f32, f32)>,
}

pub(super) fn prepare(inputs: &MineInputs<'_>, strategy: Strategy) -> Prepared {
    let d = inputs.dim;
    let norms = |x: &[f32]| -> Vec<f32> {
        let tasks: Vec<&[f32]> = x.chunks(4096 * d).collect();
        map_tasks(tasks, x.len(), |chunk| {
            chunk
                .chunks_exact(d)
                .map(|r| 1.0 / clamped_norm(r))
                .collect::<Vec<_>>()
        })
        .concat()
    };
    let squares = |x: &[f32]| -> Vec<f32> {
        let tasks: Vec<&[f32]> = x.chunks(4096 * d).collect();
        map_tasks(tasks, x.len(), |chunk| {
            chunk.chunks_exact(d).map(|r| dot(r, r)).collect::<Vec<_>>()
        })
        .concat()
    };
    let mut prepared = Prepared {
        inv_anchor_norm: norms(inputs.anchors),
        inv_candidate_norm: norms(inputs.candidates),
        anchor_sq: Vec::new(),
        candidate_sq: Vec::new(),
        bounds: Vec::new(),
    };
    if let (Strategy::SemiHard { margin }, Some(p)) = (strategy, inputs.positives) {
        prepared.anchor_sq = squares(inputs.anchors);
        prepared.candidate_sq = squares(inputs.candidates);
        prepared.bounds = inputs
            .anchors
            .chunks_exact(d)
            .zip(p.chunks_exact(d))
            .map(|(a, p)| {
                let d_ap = squared_distance(a, p).sqrt();
                (d_ap * d_ap, (d_ap + margin) * (d_ap + margin))
            })
            .collect();
    }
    prepared
}

/// Selection keys of one tile row (higher is better; NaN or -inf: never selected).
pub(super) fn score_row(
    inputs: &MineInputs<'_>,
    prepared: &Prepared,
    strategy: Strategy,
    row: usize,
    j0: usize,
    dots: &[f32],
    keys: &mut [f32],
) {
    let inv_c = &prepared.inv_candidate_norm[j0..j0 + dots.len()];
    let inv_a = prepared.inv_anchor_norm[row];
    let stream = Stream::new(inputs.key, inputs.call, row as u64);
    match strategy {
        Strategy::SemiHard { .. } => {
            let (lo, hi) = prepared.bounds[row];
            let sq = &prepared.candidate_sq[j0..j0 + dots.len()];
            semi_hard_keys(keys, dots, sq, prepared.anchor_sq[row], lo, hi);
        }
        Strategy::Softmax { temperature } => softmax_keys(
            keys,
            dots,
            inv_c,
            inv_a,
            1.0 / temperature,
            &stream,
            j0 as u64,
        ),
        Strategy::Wu {
            cutoff,
            nonzero_loss_cutoff,
        } => {
            let wu = WuParams {
                dim: inputs.dim as f32,
                cutoff,
                nonzero_loss_cutoff,
            };
            wu_keys(keys, dots, inv_c, inv_a, &wu, &stream, j0 as u64)
        }
        // Hardest is fused into the caller (`offer_cosines`); random needs no similarities.
        Strategy::Hardest | Strategy::Random => unreachable!("handled before scoring"),
    }
}

/// `-d(a, n)^2` where `d(a,p)^2 < d(a,n)^2 < (d(a,p) + margin)^2`, else -inf.
#[inline(always)]
fn semi_hard_keys_generic(
    keys: &mut [f32],
    dots: &[f32],
    cand_sq: &[f32],
    anchor_sq: f32,
    lo: f32,
    hi: f32,
) {
    for ((key, &dp), &cs) in keys.iter_mut().zip(dots).zip(cand_sq) {
        let d2 = anchor_sq + cs - 2.0 * dp;
        *key = if d2 > lo && d2 < hi {
            -d2
        } else {
            f32::NEG_INFINITY
        };
    }
}

dispatch_simd!(fn semi_hard_keys(keys: &mut [f32], dots: &[f32], cand_sq: &[f32], anchor_sq: f32, lo: f32, hi: f32) => semi_hard_keys_generic);

/// Standard Gumbel noise `-ln(-ln u)` at position `index` of a row's stream.
#[inline(always)]
fn gumbel(stream: &Stream, index: u64) -> f32 {
    -ln_f32(-ln_f32(stream.uniform(index)))
}

/// `cos / t + Gumbel`. The cosine is formed first (at most 1 in size) and only then divided by
/// `t`: `dp / (|a| t)` first overflowed to inf at t = 1e-37 for rows of norm ~280, and every
/// such key tied (the lowest index won).
#[inline(always)]
fn softmax_keys_generic(
    keys: &mut [f32],
    dots: &[f32],
    inv_c: &[f32],
    inv_a: f32,
    inv_t: f32,
    stream: &Stream,
    j0: u64,
) {
    for (j, ((key, &dp), &ic)) in keys.iter_mut().zip(dots).zip(inv_c).enumerate() {
        *key = (dp * inv_a * ic) * inv_t + gumbel(stream, j0 + j as u64);
    }
}

dispatch_simd!(fn softmax_keys(keys: &mut [f32], dots: &[f32], inv_c: &[f32], inv_a: f32, inv_t: f32, stream: &Stream, j0: u64) => softmax_keys_generic);

struct WuParams {
    dim: f32,
    cutoff: f32,
    nonzero_loss_cutoff: f32,
}

/// `log(1 / q(d)) + Gumbel` on the unit-sphere distance `d = sqrt(2 - 2 cos)`; -inf (weight 0)
/// from `nonzero_loss_cutoff` on.
#[inline(always)]
fn wu_keys_generic(
    keys: &mut [f32],
    dots: &[f32],
    inv_c: &[f32],
    inv_a: f32,
    wu: &WuParams,
    stream: &Stream,
    j0: u64,
) {
    for (j, ((key, &dp), &ic)) in keys.iter_mut().zip(dots).zip(inv_c).enumerate() {
        let cos = dp * inv_a * ic;
        // Rounding can push 2 - 2 cos slightly below 0; NaN must stay NaN (`max` would drop it).
        let d2 = 2.0 - 2.0 * cos;
        let d = if d2 < 0.0 { 0.0 } else { d2.sqrt() };
        let dc = d.max(wu.cutoff);
        let log_weight =
            (2.0 - wu.dim) * ln_f32(dc) - 0.5 * (wu.dim - 3.0) * ln_f32(1.0 - 0.25 * dc * dc);
        let noisy = log_weight + gumbel(stream, j0 + j as u64);
        // NaN distances fail the comparison and are dropped as well.
        *key = if d < wu.nonzero_loss_cutoff {
            noisy
        } else {
            f32::NEG_INFINITY
        };
    }
}

dispatch_simd!(fn wu_keys(keys: &mut [f32], dots: &[f32], inv_c: &[f32], inv_a: f32, wu: &WuParams, stream: &Stream, j0: u64) => wu_keys_generic);
