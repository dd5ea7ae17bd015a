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

mod bound;
mod centred;
mod check;
mod exact;
mod rng;
mod scoring;
mod tiles;
mod topk;

pub use exact::{exact_cosines, preselection_error};
pub use rng::{corpus_key, corpus_keys, Stream};
pub use topk::TopK;

use crate::cancel::Cancel;
use crate::conditioning;
use crate::error::KernelResult;
use crate::parallel::map_tasks;
use tiles::tiled_rows;

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

/// Writes `batch x k` candidate indices (row-major, -1 padded) to `out`.
pub fn mine(
    inputs: &MineInputs<'_>,
    strategy: Strategy,
    k: usize,
    out: &mut [i64],
) -> KernelResult<()> {
    check::check(inputs, strategy, k, out.len())?;
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
            let centred = centred::Centred::new(inputs, margin)?;
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
