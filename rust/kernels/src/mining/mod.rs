//! Negative mining: for each of B anchors, k of N candidates, by one of five rules.
//!
//! - `Hardest`: highest cosine similarity first (ties: lower index first).
//! - `SemiHard { margin }` (FaceNet, Euclidean): candidates with `d(a,p) < d(a,n) < d(a,p) + margin`,
//!   nearest first, then the hardest (by cosine) not already chosen.
//! - `Softmax { temperature }`: k distinct draws with probability proportional to
//!   `exp(cos(a, n) / t)` (the seed's distance-weighted form).
//! - `Wu { cutoff, nonzero_loss_cutoff }`: k distinct draws with probability proportional to
//!   `1 / q(d)` on unit vectors (Wu et al. 2017; pytorch-metric-learning's DistanceWeightedMiner):
//!   `log(1/q) = (2 - n) log d - ((n - 3) / 2) log(1 - d^2 / 4)` with `d` clamped below at `cutoff`
//!   and zero weight from `nonzero_loss_cutoff` on.
//! - `Random`: k distinct uniform draws.
//!
//! Samplers use Gumbel-top-k: adding independent Gumbel noise to log-weights and keeping the k
//! largest draws k items without replacement with exactly the successive-draw probabilities, so
//! every rule is a top-k selection. The B x N score matrix is never built: tiles of
//! `rows x TILE_COLUMNS` raw dot products come from the blocked GEMM and are reduced into per-row
//! top-k lists as each tile finishes; tiles run in parallel and their lists merge in a total order
//! (score, then index), so the result does not depend on the thread count. Candidates whose label
//! equals the anchor's are skipped, NaN scores are never selected, and rows with fewer than k
//! eligible candidates are padded with -1.

mod rng;
mod topk;

pub use rng::Stream;
pub use topk::TopK;

use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::fastmath::ln_f32;
use crate::gemm::{gemm, MatRef};
use crate::parallel::map_tasks;
use crate::scratch::Scratch;
use crate::vecops::{clamped_norm, dot, squared_distance};

/// Candidates per tile: a `rows x 2048` panel of dot products stays in L2 for the selection.
const TILE_COLUMNS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Hardest,
    SemiHard {
        margin: f32,
    },
    Softmax {
        temperature: f32,
    },
    Wu {
        cutoff: f32,
        nonzero_loss_cutoff: f32,
    },
    Random,
}

/// `batch` anchors and `pool` candidates of `dim`; optional positives (needed by `SemiHard`),
/// optional labels `(anchor_labels, candidate_labels)`; `key` and `call` select the random
/// streams of the samplers.
pub struct MineInputs<'a> {
    pub anchors: &'a [f32],
    pub positives: Option<&'a [f32]>,
    pub candidates: &'a [f32],
    pub batch: usize,
    pub pool: usize,
    pub dim: usize,
    pub labels: Option<(&'a [i64], &'a [i64])>,
    pub key: u64,
    pub call: u64,
}

fn check(
    inputs: &MineInputs<'_>,
    strategy: Strategy,
    k: usize,
    out_len: usize,
) -> KernelResult<()> {
    let MineInputs {
        batch: b,
        pool: n,
        dim: d,
        ..
    } = *inputs;
    let shape = |msg: String| Err(KernelError::shape(msg));
    if d == 0 {
        return shape("embedding dimension must be >= 1".into());
    }
    if inputs.anchors.len() != b * d {
        return shape(format!(
            "anchors has {} elements, expected {b} x {d}",
            inputs.anchors.len()
        ));
    }
    if inputs.candidates.len() != n * d {
        return shape(format!(
            "candidates has {} elements, expected {n} x {d}",
            inputs.candidates.len()
        ));
    }
    if let Some(p) = inputs.positives {
        if p.len() != b * d {
            return shape(format!(
                "positives has {} elements, expected {b} x {d}",
                p.len()
            ));
        }
    }
    if let Some((la, lc)) = inputs.labels {
        if la.len() != b || lc.len() != n {
            return shape(format!(
                "labels have {} and {} entries, expected {b} and {n}",
                la.len(),
                lc.len()
            ));
        }
    }
    if out_len != b * k {
        return shape(format!("output has {out_len} entries, expected {b} x {k}"));
    }
    if n > u32::MAX as usize {
        return shape(format!("at most {} candidates, got {n}", u32::MAX));
    }
    let invalid = |msg: String| Err(KernelError::invalid(msg));
    match strategy {
        Strategy::SemiHard { margin } if !(margin.is_finite() && margin >= 0.0) => {
            invalid(format!("margin must be a finite number >= 0, got {margin}"))
        }
        Strategy::SemiHard { .. } if inputs.positives.is_none() => {
            invalid("semi-hard mining needs positives".into())
        }
        Strategy::Softmax { temperature } if !(temperature.is_finite() && temperature > 0.0) => {
            invalid(format!(
                "temperature must be a finite number > 0, got {temperature}"
            ))
        }
        Strategy::Wu {
            cutoff,
            nonzero_loss_cutoff,
        } if !(cutoff.is_finite()
            && cutoff > 0.0
            && nonzero_loss_cutoff.is_finite()
            && nonzero_loss_cutoff > cutoff
            && nonzero_loss_cutoff < 2.0) =>
        {
            invalid(format!(
                "need 0 < cutoff < nonzero_loss_cutoff < 2, got {cutoff} and {nonzero_loss_cutoff}"
            ))
        }
        _ => Ok(()),
    }
}

/// Writes `batch x k` candidate indices (row-major, -1 padded) to `out`.
pub fn mine(
    inputs: &MineInputs<'_>,
    strategy: Strategy,
    k: usize,
    out: &mut [i64],
) -> KernelResult<()> {
    check(inputs, strategy, k, out.len())?;
    out.fill(-1);
    let (b, n) = (inputs.batch, inputs.pool);
    if b == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    let lists = if strategy == Strategy::Random {
        random_rows(inputs, k)
    } else {
        tiled_rows(inputs, strategy, k)
    };
    for (row, (first, fill)) in out.chunks_exact_mut(k).zip(&lists) {
        let mut slots = row.iter_mut();
        for &(_, index) in first.items() {
            if let Some(slot) = slots.next() {
                *slot = i64::from(index);
            }
        }
        // Semi-hard: the hardest candidates not already chosen fill the remaining slots.
        if let Some(fill) = fill {
            for &(_, index) in fill.items() {
                if first.contains(index) {
                    continue;
                }
                match slots.next() {
                    Some(slot) => *slot = i64::from(index),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

/// Per row: the selection, and for semi-hard the hardest list used to fill.
type RowLists = (TopK, Option<TopK>);

fn eligible(labels: Option<(&[i64], &[i64])>, row: usize, index: usize) -> bool {
    labels.is_none_or(|(la, lc)| la[row] != lc[index])
}

/// Uniform sampling needs no similarities: top-k of one uniform key per eligible candidate.
fn random_rows(inputs: &MineInputs<'_>, k: usize) -> Vec<RowLists> {
    let (b, n) = (inputs.batch, inputs.pool);
    map_tasks((0..b).collect(), b * n, |row| {
        let stream = Stream::new(inputs.key, inputs.call, row as u64);
        let mut top = TopK::new(k);
        for j in 0..n {
            if eligible(inputs.labels, row, j) {
                let key = stream.uniform(j as u64);
                if key >= top.threshold() {
                    top.push(key, j as u32);
                }
            }
        }
        (top, None)
    })
}

/// Per-anchor and per-candidate quantities every tile needs.
struct Prepared {
    inv_anchor_norm: Vec<f32>,
    inv_candidate_norm: Vec<f32>,
    /// Semi-hard only: |a|^2, |c|^2 and the squared bounds (d_ap^2, (d_ap + margin)^2).
    anchor_sq: Vec<f32>,
    candidate_sq: Vec<f32>,
    bounds: Vec<(f32, f32)>,
}

fn prepare(inputs: &MineInputs<'_>, strategy: Strategy) -> Prepared {
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

/// Groups of candidate tiles per row block: enough tasks for the cores, few enough partial
/// lists to keep (a function of the sizes only, not of the thread count).
const COLUMN_GROUPS: usize = 8;

fn tiled_rows(inputs: &MineInputs<'_>, strategy: Strategy, k: usize) -> Vec<RowLists> {
    let (b, n, d) = (inputs.batch, inputs.pool, inputs.dim);
    let prepared = prepare(inputs, strategy);
    // Row blocks: all anchors at once when the pool gives enough tiles to share out (each
    // candidate tile is then packed once); otherwise a quarter of them per block.
    let row_block = if n >= 4 * TILE_COLUMNS {
        b.min(1024)
    } else {
        b.div_ceil(4).max(64)
    };
    let tiles_per_row = n.div_ceil(TILE_COLUMNS);
    let tiles_per_group = tiles_per_row.div_ceil(COLUMN_GROUPS);
    let group_columns = tiles_per_group * TILE_COLUMNS;
    let mut tasks = Vec::new();
    for i0 in (0..b).step_by(row_block) {
        for g0 in (0..n).step_by(group_columns) {
            tasks.push((i0, row_block.min(b - i0), g0, group_columns.min(n - g0)));
        }
    }
    let semi = matches!(strategy, Strategy::SemiHard { .. });
    let new_lists = |rows: usize| -> Vec<RowLists> {
        (0..rows)
            .map(|_| (TopK::new(k), semi.then(|| TopK::new(k))))
            .collect()
    };
    let partial: Vec<Vec<RowLists>> =
        map_tasks(tasks.clone(), b * n * d, |(i0, rows, g0, width)| {
            let mut lists = new_lists(rows);
            let mut panel = Scratch::new(rows * TILE_COLUMNS.min(width));
            let mut keys = vec![0.0f32; TILE_COLUMNS.min(width)];
            let a = MatRef::row_major(&inputs.anchors[i0 * d..(i0 + rows) * d], rows, d);
            for j0 in (g0..g0 + width).step_by(TILE_COLUMNS) {
                let cols = TILE_COLUMNS.min(g0 + width - j0);
                let c = MatRef::row_major(&inputs.candidates[j0 * d..(j0 + cols) * d], cols, d);
                gemm(&mut panel[..rows * cols], cols, a, c.t(), false);
                for (r, (dots, (first, fill))) in panel[..rows * cols]
                    .chunks_exact(cols)
                    .zip(lists.iter_mut())
                    .enumerate()
                {
                    let row = i0 + r;
                    let keys = &mut keys[..cols];
                    score_row(inputs, &prepared, strategy, row, j0, dots, keys);
                    for (j, &key) in keys.iter().enumerate() {
                        if key > f32::NEG_INFINITY
                            && key >= first.threshold()
                            && eligible(inputs.labels, row, j0 + j)
                        {
                            first.push(key, (j0 + j) as u32);
                        }
                    }
                    if let Some(fill) = fill.as_mut() {
                        // The hardest list (cosine), for filling semi-hard rows.
                        cosine_keys(
                            keys,
                            dots,
                            &prepared.inv_candidate_norm[j0..j0 + cols],
                            prepared.inv_anchor_norm[row],
                        );
                        for (j, &cos) in keys.iter().enumerate() {
                            if cos >= fill.threshold() && eligible(inputs.labels, row, j0 + j) {
                                fill.push(cos, (j0 + j) as u32);
                            }
                        }
                    }
                }
            }
            lists
        });
    // Merge the groups' lists row by row (the order does not change the result).
    let mut rows = new_lists(b);
    for (&(i0, _, _, _), lists) in tasks.iter().zip(&partial) {
        for (r, (first, fill)) in lists.iter().enumerate() {
            let (into_first, into_fill) = &mut rows[i0 + r];
            into_first.merge(first);
            if let (Some(into), Some(from)) = (into_fill.as_mut(), fill) {
                into.merge(from);
            }
        }
    }
    rows
}

/// Selection keys of one tile row (higher is better; NaN or -inf: never selected).
fn score_row(
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
        Strategy::Hardest => cosine_keys(keys, dots, inv_c, inv_a),
        Strategy::SemiHard { .. } => {
            let (lo, hi) = prepared.bounds[row];
            let sq = &prepared.candidate_sq[j0..j0 + dots.len()];
            semi_hard_keys(keys, dots, sq, prepared.anchor_sq[row], lo, hi);
        }
        Strategy::Softmax { temperature } => {
            softmax_keys(keys, dots, inv_c, inv_a / temperature, &stream, j0 as u64)
        }
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
        Strategy::Random => unreachable!("random rows need no similarities"),
    }
}

#[inline(always)]
fn cosine_keys_generic(keys: &mut [f32], dots: &[f32], inv_c: &[f32], inv_a: f32) {
    for ((key, &dp), &ic) in keys.iter_mut().zip(dots).zip(inv_c) {
        *key = dp * inv_a * ic;
    }
}

dispatch_simd!(fn cosine_keys(keys: &mut [f32], dots: &[f32], inv_c: &[f32], inv_a: f32) => cosine_keys_generic);

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

/// `cos / t + Gumbel`: `scale` is `1 / (|a| t)`.
#[inline(always)]
fn softmax_keys_generic(
    keys: &mut [f32],
    dots: &[f32],
    inv_c: &[f32],
    scale: f32,
    stream: &Stream,
    j0: u64,
) {
    for (j, ((key, &dp), &ic)) in keys.iter_mut().zip(dots).zip(inv_c).enumerate() {
        *key = dp * scale * ic + gumbel(stream, j0 + j as u64);
    }
}

dispatch_simd!(fn softmax_keys(keys: &mut [f32], dots: &[f32], inv_c: &[f32], scale: f32, stream: &Stream, j0: u64) => softmax_keys_generic);

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
