//! The exact score of corpus mining, and how far the float32 preselection can be from it.
//!
//! The contract (`mine_hard_negatives`): a candidate's score is the cosine similarity of the
//! float32 rows (float16 widened exactly, float64 rounded to float32 as the queries are), computed
//! in float64 by `exact_cosines` and only there. Every path that ranks, filters or reports a
//! score takes it from this one function, so a result cannot depend on chunking, engine, thread
//! count or SIMD path: the float32 kernels only preselect, and `preselection_error` bounds their
//! error so that nothing they leave out can belong in the answer.
//!
//! The product of two float32 numbers is exact in float64 (24 + 24 significant bits < 53), so a
//! fused multiply-add and a multiply then add round identically here; the sum runs in sixteen
//! lanes (`i mod 16`) added pairwise in a fixed order, which every SIMD path and the portable
//! path perform the same way: the same bits everywhere.

use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::parallel::map_tasks;
use crate::vecops::{lane_sum, NORM_EPS};

/// `sum_i x_i y_i` in float64, lanes in a fixed order (see the module; `vecops::lane_sum` owns
/// the order).
#[inline(always)]
fn dot64_generic(x: &[f32], y: &[f32]) -> f64 {
    lane_sum(x, y, |u, v| f64::from(u) * f64::from(v))
}

dispatch_simd!(fn dot64(x: &[f32], y: &[f32]) -> f64 => dot64_generic);

/// The clamped float64 norm of a row: `max(sqrt(x . x), NORM_EPS)` (the kernels' clamp).
fn exact_norm(x: &[f32]) -> f64 {
    dot64(x, x).sqrt().max(f64::from(NORM_EPS))
}

/// The exact score of one pair given both norms: `(q . c / |q|) / |c|`. NaN where a row holds
/// NaN or Inf (its norm is Inf or NaN), like the float32 kernels.
#[inline]
fn cosine(q: &[f32], q_norm: f64, c: &[f32], c_norm: f64) -> f64 {
    dot64(q, c) / q_norm / c_norm
}

/// Pairs scored per task.
const PAIRS_PER_TASK: usize = 2048;

/// `out[p] = score(queries[query_index[p]], rows[row_index[p]])`, the exact score (see the
/// module) of each pair; `queries` is `(Q, dim)`, `rows` is `(R, dim)`, both row-major.
pub fn exact_cosines(
    queries: &[f32],
    rows: &[f32],
    dim: usize,
    query_index: &[i64],
    row_index: &[i64],
    out: &mut [f64],
) -> KernelResult<()> {
    if dim == 0 || !queries.len().is_multiple_of(dim) || !rows.len().is_multiple_of(dim) {
        return Err(KernelError::shape(format!(
            "queries and rows must be (n, {dim}) with dim >= 1"
        )));
    }
    if query_index.len() != row_index.len() || out.len() != row_index.len() {
        return Err(KernelError::shape(format!(
            "query_index, row_index and out must have one length, got {}, {} and {}",
            query_index.len(),
            row_index.len(),
            out.len()
        )));
    }
    let (n_q, n_r) = (queries.len() / dim, rows.len() / dim);
    let outside = |index: &[i64], n: usize| index.iter().position(|&i| i < 0 || i as usize >= n);
    if let Some(p) = outside(query_index, n_q) {
        return Err(KernelError::invalid(format!(
            "query_index[{p}] = {} is outside 0..{n_q}",
            query_index[p]
        )));
    }
    if let Some(p) = outside(row_index, n_r) {
        return Err(KernelError::invalid(format!(
            "row_index[{p}] = {} is outside 0..{n_r}",
            row_index[p]
        )));
    }
    // Norms of the rows the pairs use only (a chunk of 65,536 rows may be scored on 18 each).
    let q_norms = used_norms(queries, dim, query_index);
    let r_norms = used_norms(rows, dim, row_index);
    let tasks: Vec<(usize, &mut [f64])> = out
        .chunks_mut(PAIRS_PER_TASK)
        .enumerate()
        .map(|(t, o)| (t * PAIRS_PER_TASK, o))
        .collect();
    map_tasks(tasks, row_index.len() * dim, |(first, o)| {
        for (p, slot) in (first..).zip(o.iter_mut()) {
            let (qi, ri) = (query_index[p] as usize, row_index[p] as usize);
            *slot = cosine(
                &queries[qi * dim..(qi + 1) * dim],
                q_norms[qi],
                &rows[ri * dim..(ri + 1) * dim],
                r_norms[ri],
            );
        }
    });
    Ok(())
}

/// `exact_norm` of each row named in `used` (other entries NaN, never read).
fn used_norms(x: &[f32], dim: usize, used: &[i64]) -> Vec<f64> {
    let n = x.len() / dim;
    let mut wanted = vec![false; n];
    for &i in used {
        wanted[i as usize] = true;
    }
    let ids: Vec<usize> = (0..n).filter(|&i| wanted[i]).collect();
    let tasks: Vec<&[usize]> = ids.chunks(4096).collect();
    let norms = map_tasks(tasks, ids.len() * dim, |chunk| {
        chunk
            .iter()
            .map(|&i| exact_norm(&x[i * dim..(i + 1) * dim]))
            .collect::<Vec<_>>()
    });
    let mut out = vec![f64::NAN; n];
    for (&i, v) in ids.iter().zip(norms.into_iter().flatten()) {
        out[i] = v;
    }
    out
}

/// A bound on `|s32 - s|` for every pair whose exact score `s` is not NaN, where `s32` is either
/// float32 preselection score of the corpus miner:
/// - the HARDEST kernel's fused cosine key `fl(fl(dp * inv_a) * inv_c)` of a unit query row `a`
///   (the float64 unit row rounded to float32) and a corpus row `c` scaled by a power of two, with
///   `dp` a float32 dot product in any order and `inv_x = fl(1 / max(fl(sqrt(x . x)), eps))`;
/// - a float32 dot product, in any order, of both unit rows rounded to float32.
///
/// With `u = 2^-24`, `g = D u / (1 - D u)`: the dot is within `g |a||c|` of `a . c`; each float32
/// norm within a relative `g/2 + u` (sum of squares, square root), each reciprocal and product a
/// relative `u`, so the key is within `2g + 6u` (first order) of `cos(a, c)`; rounding the unit
/// query moves it by at most `2u` from `cos(q, c)`. The float64 side (`exact_cosines`, and the
/// unit rows the preselection starts from) adds at most `2 g64 + 6 u64`. Second-order terms are
/// covered by a 1% factor; an absolute `1e-20` covers subnormal products and squares (elements
/// below 1e-19 in rows of norm at least `eps`). The second preselection has a smaller bound than
/// the first, so this one covers both.
pub fn preselection_error(dim: usize) -> f64 {
    let d = dim as f64;
    let u32_ = f64::from(f32::EPSILON) / 2.0;
    let u64_ = f64::EPSILON / 2.0;
    let gamma = |u: f64| d * u / (1.0 - d * u);
    (2.0 * gamma(u32_) + 8.0 * u32_ + 2.0 * gamma(u64_) + 6.0 * u64_) * 1.01 + 1e-20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, dim: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / 16_777_216.0 - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_a_plain_float64_sum_to_round_off() {
        let dim = 37;
        let (q, c) = (rows(3, dim, 1), rows(5, dim, 2));
        let (qi, ci): (Vec<i64>, Vec<i64>) = (0..15).map(|p| (p / 5, p % 5)).unzip();
        let mut out = vec![0.0; 15];
        exact_cosines(&q, &c, dim, &qi, &ci, &mut out).unwrap();
        for p in 0..15 {
            let (a, b) = (
                &q[qi[p] as usize * dim..][..dim],
                &c[ci[p] as usize * dim..][..dim],
            );
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            assert!((out[p] - dot / na / nb).abs() < 1e-15, "pair {p}");
        }
    }

    #[test]
    fn same_bits_on_every_simd_path_and_in_any_batch() {
        let dim = 101;
        let (q, c) = (rows(4, dim, 3), rows(9, dim, 4));
        let (qi, ci): (Vec<i64>, Vec<i64>) = (0..36).map(|p| (p % 4, p % 9)).unzip();
        let mut best = vec![0.0; 36];
        exact_cosines(&q, &c, dim, &qi, &ci, &mut best).unwrap();
        // The portable body (what the baseline path runs) against the dispatched (best) path.
        for p in 0..36 {
            let (a, b) = (
                &q[qi[p] as usize * dim..][..dim],
                &c[ci[p] as usize * dim..][..dim],
            );
            let portable = dot64_generic(a, b)
                / dot64_generic(a, a).sqrt().max(f64::from(NORM_EPS))
                / dot64_generic(b, b).sqrt().max(f64::from(NORM_EPS));
            assert_eq!(portable.to_bits(), best[p].to_bits(), "pair {p}");
        }
        // One pair alone gives the bits it gave among others.
        let mut one = [0.0];
        exact_cosines(&q, &c, dim, &qi[7..8], &ci[7..8], &mut one).unwrap();
        assert_eq!(one[0].to_bits(), best[7].to_bits());
    }

    #[test]
    fn non_finite_rows_score_nan_and_zero_rows_zero() {
        let dim = 4;
        let q = [1.0f32, 2.0, 3.0, 4.0];
        let c = [
            f32::NAN,
            0.0,
            0.0,
            0.0,
            f32::INFINITY,
            1.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        let mut out = [0.0; 3];
        exact_cosines(&q, &c, dim, &[0, 0, 0], &[0, 1, 2], &mut out).unwrap();
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2], 0.0);
    }

    #[test]
    fn refuses_indices_outside_the_rows() {
        let mut out = [0.0];
        let err = exact_cosines(&[1.0; 4], &[1.0; 4], 4, &[0], &[1], &mut out).unwrap_err();
        assert!(
            err.to_string().contains("row_index[0] = 1 is outside 0..1"),
            "{err}"
        );
    }

    #[test]
    fn the_bound_grows_with_the_dimension() {
        let e768 = preselection_error(768);
        assert!(e768 > 768.0 * 2.0 * 5.96e-8 && e768 < 1e-4, "{e768}");
        assert!(preselection_error(1) < preselection_error(2));
    }
}
