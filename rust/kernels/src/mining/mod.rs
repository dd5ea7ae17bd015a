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

use std::sync::atomic::{AtomicU32, Ordering};

use crate::cancel::Cancel;
use crate::conditioning;
use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::fastmath::ln_f32;
use crate::gemm::{gemm_packed, MatRef, PackedB};
use crate::parallel::map_tasks;
use crate::scratch::Scratch;
use crate::vecops::{clamped_norm, dot, squared_distance};

/// Candidates per tile (packed once per task), and anchors per panel: a 128 x 1024 panel of dot
/// products (512 KiB) stays in L2 between the GEMM writing it and the selection reading it.
const TILE_COLUMNS: usize = 1024;
const SELECT_ROWS: usize = 128;

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
    /// Checked between tiles: once set, the call returns `Cancelled` early.
    pub cancel: &'a Cancel,
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
    let k_kept = k.min(n);
    let (lists, fill) = match strategy {
        Strategy::Random => (random_rows(inputs, k_kept), None),
        Strategy::SemiHard { margin } => {
            // The window is Euclidean: mined on centred, rescaled copies so that a common offset
            // or a huge scale cannot cancel the distances (conditioning.rs). The fill is the
            // hardest by cosine of the inputs as given.
            let centred = conditioning::Centred::new(inputs, margin)?;
            let window = tiled_rows(
                &centred.inputs(inputs),
                Strategy::SemiHard {
                    margin: centred.margin,
                },
                k_kept,
            )?;
            (
                window,
                Some(cosine_rows(inputs, Strategy::Hardest, k_kept)?),
            )
        }
        _ => (cosine_rows(inputs, strategy, k_kept)?, None),
    };
    inputs.cancel.check()?;
    for (r, (row, first)) in out.chunks_exact_mut(k).zip(&lists).enumerate() {
        let mut slots = row.iter_mut();
        for &(_, index) in first.items() {
            if let Some(slot) = slots.next() {
                *slot = i64::from(index);
            }
        }
        // Semi-hard: the hardest candidates not already chosen fill the remaining slots.
        if let Some(fill) = &fill {
            for &(_, index) in fill[r].items() {
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

/// A cosine-based selection on rows rescaled where their squares would overflow float32
/// (cosine similarity does not change when a row is multiplied by a power of two).
fn cosine_rows(inputs: &MineInputs<'_>, strategy: Strategy, k: usize) -> KernelResult<Vec<TopK>> {
    let anchors = conditioning::rescaled_rows(inputs.anchors, inputs.dim)?;
    let candidates = conditioning::rescaled_rows(inputs.candidates, inputs.dim)?;
    let scaled = MineInputs {
        anchors: &anchors,
        candidates: &candidates,
        ..*inputs
    };
    tiled_rows(&scaled, strategy, k)
}

fn eligible(labels: Option<(&[i64], &[i64])>, row: usize, index: usize) -> bool {
    labels.is_none_or(|(la, lc)| la[row] != lc[index])
}

/// Whether each `dim`-wide row of `x` is all finite. A row with NaN or Inf has a NaN cosine
/// similarity with everything, so it is never selected, by any strategy.
fn finite_rows(x: &[f32], dim: usize) -> Vec<bool> {
    let tasks: Vec<&[f32]> = x.chunks(4096 * dim).collect();
    map_tasks(tasks, x.len(), |chunk| {
        chunk
            .chunks_exact(dim)
            .map(|r| r.iter().all(|v| v.is_finite()))
            .collect::<Vec<_>>()
    })
    .concat()
}

/// Uniform sampling needs no similarities: top-k of one uniform key per eligible candidate
/// (rows whose similarity would be NaN are not eligible, as for the other strategies).
fn random_rows(inputs: &MineInputs<'_>, k: usize) -> Vec<TopK> {
    let (b, n, d) = (inputs.batch, inputs.pool, inputs.dim);
    let finite_anchor = finite_rows(inputs.anchors, d);
    let finite_candidate = finite_rows(inputs.candidates, d);
    map_tasks((0..b).collect(), b * n, |row| {
        let stream = Stream::new(inputs.key, inputs.call, row as u64);
        let mut top = TopK::new(k);
        if !finite_anchor[row] {
            return top;
        }
        for (j, &finite) in finite_candidate.iter().enumerate().take(n) {
            if finite && eligible(inputs.labels, row, j) {
                let key = stream.uniform(j as u64);
                if key >= top.threshold() {
                    top.push(key, j as u32);
                }
            }
        }
        top
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

/// One task of `tiled_rows`: anchors `i0..i0 + rows` against candidates `g0..g0 + width`.
#[derive(Clone, Copy)]
struct Task {
    i0: usize,
    rows: usize,
    g0: usize,
    width: usize,
}

/// What every task of one `tiled_rows` call shares.
struct Shared<'a> {
    inputs: &'a MineInputs<'a>,
    prepared: Prepared,
    strategy: Strategy,
    k: usize,
    /// Per anchor, the best k-th key any task has reached so far: a block whose best key is
    /// below it cannot reach the final top k, whichever task sees it.
    bounds: Vec<SharedBound>,
}

fn tiled_rows(inputs: &MineInputs<'_>, strategy: Strategy, k: usize) -> KernelResult<Vec<TopK>> {
    let (b, n, d) = (inputs.batch, inputs.pool, inputs.dim);
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
            tasks.push(Task {
                i0,
                rows: row_block.min(b - i0),
                g0,
                width: group_columns.min(n - g0),
            });
        }
    }
    let shared = Shared {
        inputs,
        prepared: prepare(inputs, strategy),
        strategy,
        k,
        bounds: (0..b).map(|_| SharedBound::new()).collect(),
    };
    let partial: Vec<Vec<TopK>> = map_tasks(tasks.clone(), b * n * d, |task| {
        select_in_task(&shared, task)
    });
    // Merge the groups' lists row by row (the order does not change the result).
    let mut rows: Vec<TopK> = (0..b).map(|_| TopK::new(k)).collect();
    for (task, lists) in tasks.iter().zip(&partial) {
        for (r, list) in lists.iter().enumerate() {
            rows[task.i0 + r].merge(list);
        }
    }
    Ok(rows)
}

/// The top-k lists of one task's anchors among its candidates, tile by tile.
fn select_in_task(shared: &Shared<'_>, task: Task) -> Vec<TopK> {
    let Shared {
        inputs,
        prepared,
        strategy,
        k,
        bounds,
    } = shared;
    let (strategy, d) = (*strategy, inputs.dim);
    let Task {
        i0,
        rows,
        g0,
        width,
    } = task;
    let mut lists: Vec<TopK> = (0..rows).map(|_| TopK::new(*k)).collect();
    let sub_rows = SELECT_ROWS.min(rows);
    let mut panel = Scratch::new(sub_rows * TILE_COLUMNS.min(width));
    let mut keys = vec![0.0f32; TILE_COLUMNS.min(width)];
    for j0 in (g0..g0 + width).step_by(TILE_COLUMNS) {
        if inputs.cancel.is_requested() {
            break; // the caller discards the result
        }
        let cols = TILE_COLUMNS.min(g0 + width - j0);
        // The candidate tile is packed once for all of this task's anchors; each block of
        // SELECT_ROWS anchors then gets a panel small enough to stay in L2 while its rows are
        // selected from.
        let c = MatRef::row_major(&inputs.candidates[j0 * d..(j0 + cols) * d], cols, d);
        let packed = PackedB::new(c.t());
        for s0 in (0..rows).step_by(SELECT_ROWS) {
            let srows = SELECT_ROWS.min(rows - s0);
            let first_row = i0 + s0;
            let a = MatRef::row_major(
                &inputs.anchors[first_row * d..(first_row + srows) * d],
                srows,
                d,
            );
            let panel = &mut panel[..srows * cols];
            gemm_packed(panel, cols, a, &packed, false);
            for (r, (dots, list)) in panel
                .chunks_exact(cols)
                .zip(lists[s0..s0 + srows].iter_mut())
                .enumerate()
            {
                let row = first_row + r;
                let ok = |j: usize| eligible(inputs.labels, row, j);
                if strategy == Strategy::Hardest {
                    // The common case, fused: no key buffer, and blocks that cannot beat the
                    // threshold cost one vectorised pass.
                    let inv_c = &prepared.inv_candidate_norm[j0..j0 + cols];
                    let inv_a = prepared.inv_anchor_norm[row];
                    offer_cosines(list, &bounds[row], dots, inv_c, inv_a, j0, ok);
                } else {
                    let keys = &mut keys[..cols];
                    score_row(inputs, prepared, strategy, row, j0, dots, keys);
                    offer(list, &bounds[row], keys, j0, ok);
                }
            }
        }
    }
    lists
}

/// A lower bound on a row's final k-th best key, shared by the tasks working on that row. It
/// only ever prunes keys strictly below the final k-th best, so the result does not depend on
/// which task raised it first (only the amount of work does).
struct SharedBound(AtomicU32);

impl SharedBound {
    fn new() -> Self {
        Self(AtomicU32::new(order_bits(f32::NEG_INFINITY)))
    }

    fn get(&self) -> f32 {
        from_order_bits(self.0.load(Ordering::Relaxed))
    }

    /// Raises the bound to `value` (a full list's k-th best key) if that is higher.
    fn raise(&self, value: f32) {
        if value > f32::NEG_INFINITY && value < f32::INFINITY {
            self.0.fetch_max(order_bits(value), Ordering::Relaxed);
        }
    }
}

/// Maps a non-NaN f32 to a u32 with the same order (so `fetch_max` compares floats).
fn order_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn from_order_bits(u: u32) -> f32 {
    if u & 0x8000_0000 != 0 {
        f32::from_bits(u & 0x7fff_ffff)
    } else {
        f32::from_bits(!u)
    }
}

/// Keys per block in `offer`: one vectorised maximum decides whether a block can hold anything
/// that beats the row's current k-th best.
const OFFER_BLOCK: usize = 64;

/// Offers `keys[j]` (candidate `j0 + j`) to `top`, skipping ineligible candidates, -inf and NaN.
/// Once `top` is full almost every block's maximum is below its threshold, so the common case
/// costs one vectorised pass over the keys.
fn offer(
    top: &mut TopK,
    bound: &SharedBound,
    keys: &[f32],
    j0: usize,
    eligible: impl Fn(usize) -> bool,
) {
    for (b, block) in keys.chunks(OFFER_BLOCK).enumerate() {
        let threshold = top.threshold();
        if block_max(block) < threshold.max(bound.get()) {
            continue;
        }
        offer_block(top, block, threshold, j0 + b * OFFER_BLOCK, &eligible);
        bound.raise(top.threshold());
    }
}

/// `offer` for cosine keys `dots[j] * inv_a * inv_c[j]`, computed only in blocks whose largest
/// key can enter.
fn offer_cosines(
    top: &mut TopK,
    bound: &SharedBound,
    dots: &[f32],
    inv_c: &[f32],
    inv_a: f32,
    j0: usize,
    eligible: impl Fn(usize) -> bool,
) {
    let mut keys = [0.0f32; OFFER_BLOCK];
    for (b, (block, inv)) in dots
        .chunks(OFFER_BLOCK)
        .zip(inv_c.chunks(OFFER_BLOCK))
        .enumerate()
    {
        let threshold = top.threshold();
        if block_max_cosine(block, inv, inv_a) < threshold.max(bound.get()) {
            continue;
        }
        let keys = &mut keys[..block.len()];
        cosine_keys(keys, block, inv, inv_a);
        offer_block(top, keys, threshold, j0 + b * OFFER_BLOCK, &eligible);
        bound.raise(top.threshold());
    }
}

/// Offers the keys of one block that reach `threshold` (found with one vectorised comparison
/// into a bit mask; usually only a few bits are set).
fn offer_block(
    top: &mut TopK,
    keys: &[f32],
    threshold: f32,
    first_index: usize,
    eligible: &impl Fn(usize) -> bool,
) {
    let mut mask = at_least(keys, threshold);
    while mask != 0 {
        let j = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let key = keys[j];
        let index = first_index + j;
        if key > f32::NEG_INFINITY && key >= top.threshold() && eligible(index) {
            top.push(key, index as u32);
        }
    }
}

/// Bit j set where `keys[j] >= threshold` (at most 64 keys; NaN never sets a bit).
#[inline(always)]
fn at_least_generic(keys: &[f32], threshold: f32) -> u64 {
    let mut mask = 0u64;
    for (j, &k) in keys.iter().enumerate().take(64) {
        mask |= u64::from(k >= threshold) << j;
    }
    mask
}

dispatch_simd!(fn at_least(keys: &[f32], threshold: f32) -> u64 => at_least_generic);

/// Largest of `dots[j] * inv_a * inv_c[j]` (rounded exactly as in `offer_cosines`).
#[inline(always)]
fn block_max_cosine_generic(dots: &[f32], inv_c: &[f32], inv_a: f32) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut ds = dots.chunks_exact(16);
    let mut is = inv_c.chunks_exact(16);
    for (d, i) in (&mut ds).zip(&mut is) {
        for ((a, &dp), &ic) in acc.iter_mut().zip(d).zip(i) {
            *a = a.max(dp * inv_a * ic);
        }
    }
    for ((a, &dp), &ic) in acc.iter_mut().zip(ds.remainder()).zip(is.remainder()) {
        *a = a.max(dp * inv_a * ic);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

dispatch_simd!(fn block_max_cosine(dots: &[f32], inv_c: &[f32], inv_a: f32) -> f32 => block_max_cosine_generic);

/// Largest key of a block (NaN keys are ignored; -inf when there is none).
#[inline(always)]
fn block_max_generic(keys: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut chunks = keys.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = a.max(v);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

dispatch_simd!(fn block_max(keys: &[f32]) -> f32 => block_max_generic);

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
        // Hardest is fused into the caller (`offer_cosines`); random needs no similarities.
        Strategy::Hardest | Strategy::Random => unreachable!("handled before scoring"),
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
