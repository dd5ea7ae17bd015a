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
mod draw;
mod exact;
mod rng;
mod scoring;
mod tiles;
mod topk;

pub use draw::{Draw, DrawTop};
pub use exact::{exact_cosines, preselection_error};
pub use rng::{corpus_key, corpus_key_bits, corpus_keys, Stream};
pub use topk::TopK;

use crate::cancel::Cancel;
use crate::conditioning;
use crate::error::KernelResult;
use crate::parallel::map_tasks;
use tiles::{tiled_rows, tiled_rows_within};

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
    Ok(cosine_rows_within(inputs, strategy, k, &Limits::NONE)?.0)
}

/// `cosine_rows` within per-anchor limits (`tiles::tiled_rows_within`).
fn cosine_rows_within(
    inputs: &MineInputs<'_>,
    strategy: Strategy,
    k: usize,
    limits: &Limits<'_>,
) -> KernelResult<tiles::WithinLists> {
    let anchors = conditioning::rescaled_rows(inputs.anchors, inputs.dim)?;
    let candidates = conditioning::rescaled_rows(inputs.candidates, inputs.dim)?;
    let scaled = MineInputs {
        anchors: &anchors,
        candidates: &candidates,
        ..*inputs
    };
    tiled_rows_within(&scaled, strategy, k, limits)
}

/// Per-anchor limits of the corpus miner's search (`hardest_within`).
pub struct Limits<'a> {
    /// Per anchor, the highest key kept (+inf: none); keys above it are counted.
    pub ceilings: Option<&'a [f32]>,
    /// Per anchor `r`, the candidates never considered: `columns[offsets[r]..offsets[r + 1]]`,
    /// sorted ascending.
    pub excluded: Option<(&'a [usize], &'a [u32])>,
    /// Random sampling over an open window: also keep, per anchor, the best draws among the
    /// eligible candidates whose key lies within its floor and its ceiling.
    pub draw: Option<Draw<'a>>,
}

impl Limits<'_> {
    pub const NONE: Limits<'static> = Limits {
        ceilings: None,
        excluded: None,
        draw: None,
    };

    fn ceiling(&self, row: usize) -> f32 {
        self.ceilings.map_or(f32::INFINITY, |c| c[row])
    }

    fn excludes(&self, row: usize, index: usize) -> bool {
        self.excluded.is_some_and(|(offsets, columns)| {
            columns[offsets[row]..offsets[row + 1]]
                .binary_search(&(index as u32))
                .is_ok()
        })
    }
}

/// The corpus miner's preselection: per anchor, the `k` best HARDEST keys (cosine, ties by lower
/// index) at most its ceiling among the candidates it does not exclude, written to `out` (`batch
/// x k`, -1 padded); `over[r]` counts anchor `r`'s other eligible candidates whose key is above
/// its ceiling. NaN keys are neither kept nor counted.
/// With `limits.draw`, `drawn` (`batch x draw.size`, -1 padded) receives each anchor's best
/// draws, best first.
pub fn hardest_within(
    inputs: &MineInputs<'_>,
    limits: &Limits<'_>,
    k: usize,
    out: &mut [i64],
    over: &mut [u64],
    drawn: &mut [i64],
) -> KernelResult<()> {
    check::check(inputs, Strategy::Hardest, k, out.len())?;
    check::check_limits(inputs, limits, over.len(), drawn.len())?;
    drawn.fill(-1);
    if k == 0 {
        // An empty list has an infinite threshold, so nothing would reach the counting either.
        return Err(crate::error::KernelError::invalid("k must be at least 1"));
    }
    out.fill(-1);
    over.fill(0);
    let (b, n) = (inputs.batch, inputs.pool);
    if b == 0 || n == 0 {
        return Ok(());
    }
    let (lists, counts, draws) = cosine_rows_within(inputs, Strategy::Hardest, k.min(n), limits)?;
    inputs.cancel.check()?;
    for (row, list) in out.chunks_mut(k).zip(&lists) {
        for (slot, &(_, index)) in row.iter_mut().zip(list.items()) {
            *slot = i64::from(index);
        }
    }
    over.copy_from_slice(&counts);
    if let Some(draw) = &limits.draw {
        for (row, top) in drawn.chunks_mut(draw.size.max(1)).zip(&draws) {
            for (slot, &(_, index)) in row.iter_mut().zip(top.items()) {
                *slot = i64::from(index);
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod within_tests {
    use super::*;
    use crate::cancel::NEVER;

    fn inputs<'a>(a: &'a [f32], c: &'a [f32], b: usize, n: usize, d: usize) -> MineInputs<'a> {
        MineInputs {
            anchors: a,
            positives: None,
            candidates: c,
            batch: b,
            pool: n,
            dim: d,
            labels: None,
            key: 0,
            call: 0,
            cancel: &NEVER,
        }
    }

    #[test]
    fn keys_above_the_ceiling_are_counted_and_excluded_pairs_ignored() {
        // One anchor along x; candidates at cosines 1, 0.8, 0.6, 0.0, -1 (rows 0..5).
        let a = [1.0f32, 0.0];
        let c = [1.0f32, 0.0, 0.8, 0.6, 0.6, 0.8, 0.0, 1.0, -1.0, 0.0];
        let x = inputs(&a, &c, 1, 5, 2);
        let (mut out, mut over) = ([0i64; 2], [0u64; 1]);
        let limits = Limits {
            ceilings: Some(&[0.7]),
            excluded: None,
            draw: None,
        };
        hardest_within(&x, &limits, 2, &mut out, &mut over, &mut []).unwrap();
        assert_eq!((out, over), ([2, 3], [2]));
        // Row 2 excluded: never kept, never counted; row 0 excluded: not counted.
        let limits = Limits {
            ceilings: Some(&[0.7]),
            excluded: Some((&[0, 2], &[0, 2])),
            draw: None,
        };
        hardest_within(&x, &limits, 2, &mut out, &mut over, &mut []).unwrap();
        assert_eq!((out, over), ([3, 4], [1]));
        // No limits: the plain HARDEST answer.
        hardest_within(&x, &Limits::NONE, 2, &mut out, &mut over, &mut []).unwrap();
        assert_eq!((out, over), ([0, 1], [0]));
    }

    #[test]
    fn counts_match_a_direct_count_away_from_the_ceiling() {
        let (b, n, d) = (37, 5000, 24);
        let mut s = 7u32;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / 16_777_216.0 - 0.5
        };
        let a: Vec<f32> = (0..b * d).map(|_| next()).collect();
        let c: Vec<f32> = (0..n * d).map(|_| next()).collect();
        let ceilings: Vec<f32> = (0..b).map(|r| 0.1 + 0.01 * r as f32).collect();
        let offsets: Vec<usize> = (0..=b).map(|r| 3 * r).collect();
        let columns: Vec<u32> = (0..b)
            .flat_map(|r| [r as u32, 100 + r as u32, 4000])
            .collect();
        let limits = Limits {
            ceilings: Some(&ceilings),
            excluded: Some((&offsets, &columns)),
            draw: None,
        };
        let x = inputs(&a, &c, b, n, d);
        let (mut out, mut over) = (vec![0i64; b * 5], vec![0u64; b]);
        hardest_within(&x, &limits, 5, &mut out, &mut over, &mut []).unwrap();
        // Against a direct count: cosine keys above the ceiling, exclusions skipped.
        for r in 0..b {
            let ar = &a[r * d..(r + 1) * d];
            let na = crate::vecops::clamped_norm(ar);
            let expected = (0..n)
                .filter(|j| !columns[3 * r..3 * r + 3].contains(&(*j as u32)))
                .filter(|&j| {
                    let cj = &c[j * d..(j + 1) * d];
                    let cos = crate::vecops::dot(ar, cj) / na / crate::vecops::clamped_norm(cj);
                    (cos - ceilings[r]).abs() > 1e-4 && cos > ceilings[r]
                })
                .count() as u64;
            let near = (0..n)
                .filter(|&j| {
                    let cj = &c[j * d..(j + 1) * d];
                    let cos = crate::vecops::dot(ar, cj) / na / crate::vecops::clamped_norm(cj);
                    (cos - ceilings[r]).abs() <= 1e-4
                })
                .count() as u64;
            assert!(over[r] >= expected && over[r] <= expected + near, "row {r}");
            // What is kept is at most the ceiling and never excluded.
            for &j in &out[r * 5..(r + 1) * 5] {
                assert!(j >= 0 && !columns[3 * r..3 * r + 3].contains(&(j as u32)));
            }
        }
    }

    #[test]
    fn the_draw_keeps_the_best_draws_within_the_limits() {
        // Anchor along x; candidates at cosines 1, 0.8, 0.6, 0, -1; floor 0.5, ceiling 0.9:
        // rows 1 and 2 may pass; row 1 excluded: only row 2 is drawn.
        let a = [1.0f32, 0.0];
        let c = [1.0f32, 0.0, 0.8, 0.6, 0.6, 0.8, 0.0, 1.0, -1.0, 0.0];
        let x = inputs(&a, &c, 1, 5, 2);
        let (mut out, mut over, mut drawn) = ([0i64; 1], [0u64; 1], [0i64; 3]);
        let limits = Limits {
            ceilings: Some(&[0.9]),
            excluded: Some((&[0, 1], &[1])),
            draw: Some(Draw {
                seed: 7,
                query_ids: &[3],
                floors: &[0.5],
                first_row: 100,
                size: 3,
            }),
        };
        hardest_within(&x, &limits, 1, &mut out, &mut over, &mut drawn).unwrap();
        assert_eq!((out, over, drawn), ([2], [1], [2, -1, -1]));
        // Without a floor every eligible row within the ceiling is drawn, best draw first.
        let limits = Limits {
            ceilings: Some(&[0.9]),
            excluded: None,
            draw: Some(Draw {
                seed: 7,
                query_ids: &[3],
                floors: &[f32::NEG_INFINITY],
                first_row: 100,
                size: 3,
            }),
        };
        hardest_within(&x, &limits, 1, &mut out, &mut over, &mut drawn).unwrap();
        let mut expected: Vec<(u64, i64)> = [1i64, 2, 3, 4]
            .iter()
            .map(|&j| (corpus_key_bits(7, 3, 100 + j as u64), j))
            .collect();
        expected.sort_by(|p, q| q.0.cmp(&p.0).then(p.1.cmp(&q.1)));
        let want: Vec<i64> = expected.iter().take(3).map(|p| p.1).collect();
        assert_eq!(drawn.to_vec(), want);
    }

    #[test]
    fn unsorted_exclusions_and_k_zero_are_refused() {
        let (a, c) = ([1.0f32, 0.0], [1.0f32, 0.0, 0.0, 1.0]);
        let x = inputs(&a, &c, 1, 2, 2);
        let (mut out, mut over) = ([0i64; 1], [0u64; 1]);
        let bad = Limits {
            ceilings: None,
            excluded: Some((&[0, 2], &[1, 0])),
            draw: None,
        };
        assert!(hardest_within(&x, &bad, 1, &mut out, &mut over, &mut []).is_err());
        assert!(hardest_within(&x, &Limits::NONE, 0, &mut [], &mut over, &mut []).is_err());
    }
}
