//! Spectral regularisers of a signal `X (N x D)`.
//!
//! - `laplacian`: graph smoothness `tr(X^T L X) = sum over edges {i, j} of w_ij |x_i - x_j|^2`
//!   with `L = Deg - W`, gradient `2 L X`. The graph is a symmetric CSR matrix; each row computes
//!   `y_i = sum_j w_ij (x_i - x_j)` (= `(L X)_i`, differences first so a common offset in X
//!   cancels exactly) and `sum_j w_ij |x_i - x_j|^2` in the same pass over the neighbours.
//! - `variance_penalty`: the crate's `compute_batch`, the variance across dimensions of the
//!   per-dimension variances, and its true gradient.
//!
//! Both sum in f64 in a fixed order, so results do not depend on the thread count.

use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::parallel::map_tasks;
use crate::simd::{pairwise_sum, LANES};

/// A square sparse matrix in compressed-row form, with int64 indices as NumPy and scipy give them.
#[derive(Clone, Copy)]
pub struct Csr<'a> {
    pub n: usize,
    pub indptr: &'a [i64],
    pub indices: &'a [i64],
    pub weights: &'a [f32],
}

/// An owned CSR matrix (built from an edge list or a dense matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct CsrOwned {
    pub n: usize,
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub weights: Vec<f32>,
}

impl CsrOwned {
    pub fn view(&self) -> Csr<'_> {
        Csr {
            n: self.n,
            indptr: &self.indptr,
            indices: &self.indices,
            weights: &self.weights,
        }
    }
}

impl Csr<'_> {
    /// Checks the structure (not symmetry: that is the caller's contract and is checked where
    /// the matrix comes from).
    pub fn validate(&self) -> KernelResult<()> {
        let bad = |msg: String| Err(KernelError::invalid(format!("graph: {msg}")));
        if self.indptr.len() != self.n + 1 {
            return bad(format!(
                "indptr has {} entries, expected {}",
                self.indptr.len(),
                self.n + 1
            ));
        }
        if self.indices.len() != self.weights.len() {
            return bad(format!(
                "{} indices but {} weights",
                self.indices.len(),
                self.weights.len()
            ));
        }
        if self.indptr[0] != 0 || self.indptr[self.n] != self.indices.len() as i64 {
            return bad("indptr must start at 0 and end at the number of entries".into());
        }
        if self.indptr.windows(2).any(|w| w[1] < w[0]) {
            return bad("indptr must be non-decreasing".into());
        }
        if let Some(&j) = self.indices.iter().find(|&&j| j < 0 || j >= self.n as i64) {
            return bad(format!("node index {j} is outside 0..{}", self.n));
        }
        Ok(())
    }
}

/// The symmetric CSR matrix of an undirected edge list (`edges` holds `(i, j)` pairs, each edge
/// listed once; a missing `weights` means 1). Both directions are stored; a self-loop is kept
/// once (it contributes nothing to `L`).
pub fn csr_from_edges(edges: &[i64], weights: Option<&[f32]>, n: usize) -> KernelResult<CsrOwned> {
    if !edges.len().is_multiple_of(2) {
        return Err(KernelError::shape("edges must have shape (E, 2)"));
    }
    let count = edges.len() / 2;
    if let Some(w) = weights {
        if w.len() != count {
            return Err(KernelError::shape(format!(
                "weights has {} entries but there are {count} edges",
                w.len()
            )));
        }
    }
    if let Some(&j) = edges.iter().find(|&&j| j < 0 || j >= n as i64) {
        return Err(KernelError::invalid(format!(
            "graph: node index {j} is outside 0..{n}"
        )));
    }
    // A self-loop is stored once (like a symmetric matrix's diagonal), other edges both ways.
    let directions = |e: &[i64]| {
        let both = [(e[0], e[1]), (e[1], e[0])];
        let count = if e[0] == e[1] { 1 } else { 2 };
        both.into_iter().take(count)
    };
    let mut degree: Vec<i64> = crate::alloc::zeroed(n.saturating_add(1))?;
    for e in edges.chunks_exact(2) {
        for (from, _) in directions(e) {
            degree[from as usize + 1] += 1;
        }
    }
    for i in 0..n {
        degree[i + 1] += degree[i];
    }
    let indptr = degree;
    let mut fill: Vec<i64> = crate::alloc::zeroed(n)?;
    fill.copy_from_slice(&indptr[..n]);
    let entries = indptr[n] as usize;
    let mut indices: Vec<i64> = crate::alloc::zeroed(entries)?;
    let mut out_w: Vec<f32> = crate::alloc::zeroed(entries)?;
    for (k, e) in edges.chunks_exact(2).enumerate() {
        let w = weights.map_or(1.0, |w| w[k]);
        for (from, to) in directions(e) {
            let slot = &mut fill[from as usize];
            indices[*slot as usize] = to;
            out_w[*slot as usize] = w;
            *slot += 1;
        }
    }
    Ok(CsrOwned {
        n,
        indptr,
        indices,
        weights: out_w,
    })
}

/// The CSR form of a dense `n x n` weight matrix (zeros skipped). Rejects a matrix that is not
/// exactly symmetric, naming the first offending entry.
pub fn csr_from_dense(w: &[f32], n: usize) -> KernelResult<CsrOwned> {
    if w.len() != n * n {
        return Err(KernelError::shape(format!(
            "graph has {} elements, expected {n} x {n}",
            w.len()
        )));
    }
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::new();
    let mut weights = Vec::new();
    indptr.push(0i64);
    for i in 0..n {
        for j in 0..n {
            let v = w[i * n + j];
            let mirror = w[j * n + i];
            // NaN entries are kept (they must reach the value); compare bits so NaN == NaN.
            if v.to_bits() != mirror.to_bits() && v != mirror {
                return Err(KernelError::invalid(format!(
                    "graph must be symmetric: W[{i}, {j}] = {v} but W[{j}, {i}] = {mirror}"
                )));
            }
            if v != 0.0 {
                indices.push(j as i64);
                weights.push(v);
            }
        }
        indptr.push(indices.len() as i64);
    }
    Ok(CsrOwned {
        n,
        indptr,
        indices,
        weights,
    })
}

/// Neighbours ahead whose rows are prefetched: the gathers of a random graph are latency-bound
/// (measured 3.5x slower with X beyond the cache than within it, before prefetching).
const PREFETCH_AHEAD: usize = 16;

/// Row `i` of the Laplacian: returns `sum_j w_ij |x_i - x_j|^2` and, when `GRAD`, writes
/// `y = grad_scale * sum_j w_ij (x_i - x_j)`. `entries` is the row's range in `indices`; rows a
/// few entries ahead (possibly in the next rows) are prefetched while this one is computed.
#[inline(always)]
fn row_update_generic<const GRAD: bool>(y: &mut [f32], job: &RowJob<'_>, i: usize) -> f32 {
    let RowJob {
        x,
        dim,
        graph,
        grad_scale,
    } = *job;
    let (indices, weights) = (graph.indices, graph.weights);
    let entries = (graph.indptr[i] as usize, graph.indptr[i + 1] as usize);
    if GRAD {
        y.fill(0.0);
    }
    let xi = &x[i * dim..(i + 1) * dim];
    let mut acc = [0.0f32; LANES];
    for e in entries.0..entries.1 {
        if let Some(&ahead) = indices.get(e + PREFETCH_AHEAD) {
            prefetch_row(x, ahead as usize * dim, dim);
        }
        let j = indices[e] as usize;
        let w = weights[e];
        let gw = grad_scale * w;
        let xj = &x[j * dim..(j + 1) * dim];
        let mut is = xi.chunks_exact(LANES);
        let mut js = xj.chunks_exact(LANES);
        if GRAD {
            let mut ys = y.chunks_exact_mut(LANES);
            for ((yb, ib), jb) in (&mut ys).zip(&mut is).zip(&mut js) {
                for (((a, y), &u), &v) in acc.iter_mut().zip(yb).zip(ib).zip(jb) {
                    let diff = u - v;
                    *y += gw * diff;
                    *a += w * (diff * diff);
                }
            }
            let rest = ys.into_remainder();
            for (((a, y), &u), &v) in acc
                .iter_mut()
                .zip(rest)
                .zip(is.remainder())
                .zip(js.remainder())
            {
                let diff = u - v;
                *y += gw * diff;
                *a += w * (diff * diff);
            }
        } else {
            for (ib, jb) in (&mut is).zip(&mut js) {
                for ((a, &u), &v) in acc.iter_mut().zip(ib).zip(jb) {
                    let diff = u - v;
                    *a += w * (diff * diff);
                }
            }
            for ((a, &u), &v) in acc.iter_mut().zip(is.remainder()).zip(js.remainder()) {
                let diff = u - v;
                *a += w * (diff * diff);
            }
        }
    }
    pairwise_sum(acc)
}

dispatch_simd!(fn row_update<const GRAD: bool>(y: &mut [f32], job: &RowJob<'_>, i: usize) -> f32 => row_update_generic);

/// What every row of one Laplacian call shares.
#[derive(Clone, Copy)]
struct RowJob<'a> {
    x: &'a [f32],
    dim: usize,
    graph: &'a Csr<'a>,
    grad_scale: f32,
}

/// Asks the CPU to start loading the first cache lines of a row (no effect on results).
#[inline(always)]
fn prefetch_row(x: &[f32], start: usize, dim: usize) {
    #[cfg(x86_simd)]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // 16 floats per 64-byte line; the hardware prefetcher follows long rows by itself.
        for offset in (0..dim.min(128)).step_by(16) {
            if let Some(v) = x.get(start + offset) {
                // SAFETY: a prefetch never faults, and the address is inside `x` anyway.
                unsafe { _mm_prefetch::<_MM_HINT_T0>((v as *const f32).cast()) };
            }
        }
    }
    #[cfg(not(x86_simd))]
    let _ = (x, start, dim);
}

/// Neighbour-dimension products per task: rows are grouped until they reach this much work, so
/// tasks are balanced by non-zeros, not by rows.
const TASK_WORK: usize = 1 << 16;

/// `weight * tr(X^T L X)`; with `grad`, writes `2 * weight * L X` there.
pub fn laplacian(
    x: &[f32],
    dim: usize,
    graph: &Csr<'_>,
    weight: f64,
    grad: Option<&mut [f32]>,
) -> KernelResult<f64> {
    check_weight(weight)?;
    let n = graph.n;
    if n == 0 || dim == 0 {
        return Err(KernelError::shape("X must be non-empty"));
    }
    if x.len() != n * dim {
        return Err(KernelError::shape(format!(
            "X has {} elements, expected {n} nodes x {dim}",
            x.len()
        )));
    }
    graph.validate()?;
    // Contiguous row ranges of about TASK_WORK work each (a function of the graph only).
    let mut bounds = vec![0usize];
    let mut work = 0usize;
    for i in 0..n {
        work += (graph.indptr[i + 1] - graph.indptr[i]) as usize * dim + dim;
        if work >= TASK_WORK {
            bounds.push(i + 1);
            work = 0;
        }
    }
    if *bounds.last().unwrap_or(&0) != n {
        bounds.push(n);
    }
    let total_work = graph.indices.len() * dim + x.len();
    let two_w = (2.0 * weight) as f32;
    let job = RowJob {
        x,
        dim,
        graph,
        grad_scale: two_w,
    };
    let partial: Vec<f64> = match grad {
        Some(g) => {
            if g.len() != x.len() {
                return Err(KernelError::shape("grad must be shaped like X"));
            }
            let mut slices = Vec::with_capacity(bounds.len() - 1);
            let mut rest = g;
            for w in bounds.windows(2) {
                let (head, tail) = rest.split_at_mut((w[1] - w[0]) * dim);
                slices.push((w[0], head));
                rest = tail;
            }
            map_tasks(slices, total_work, |(first, g)| {
                g.chunks_exact_mut(dim)
                    .enumerate()
                    .map(|(r, y)| f64::from(row_update::<true>(y, &job, first + r)))
                    .sum::<f64>()
            })
        }
        None => {
            let ranges: Vec<_> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            map_tasks(ranges, total_work, |(s, e)| {
                (s..e)
                    .map(|i| f64::from(row_update::<false>(&mut [], &job, i)))
                    .sum::<f64>()
            })
        }
    };
    // Every undirected edge appears in two rows.
    let value = weight * partial.iter().sum::<f64>() / 2.0;
    if value.is_finite() || !all_finite(x) || !all_finite(graph.weights) {
        return Ok(value);
    }
    // A float32 row sum overflowed on finite inputs (|x_i - x_j|^2 beyond 3.4e38): the exact
    // value still fits a float64, so it is summed again there (rare, so not fast).
    let ranges: Vec<_> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let partial = map_tasks(ranges, total_work, |(s, e)| {
        (s..e).map(|i| row_value_f64(&job, i)).sum::<f64>()
    });
    Ok(weight * partial.iter().sum::<f64>() / 2.0)
}

fn all_finite(x: &[f32]) -> bool {
    x.iter().all(|v| v.is_finite())
}

/// `sum_j w_ij |x_i - x_j|^2` of row `i` in float64.
fn row_value_f64(job: &RowJob<'_>, i: usize) -> f64 {
    let (x, dim, graph) = (job.x, job.dim, job.graph);
    let xi = &x[i * dim..(i + 1) * dim];
    (graph.indptr[i] as usize..graph.indptr[i + 1] as usize)
        .map(|e| {
            let j = graph.indices[e] as usize;
            let xj = &x[j * dim..(j + 1) * dim];
            let squared: f64 = xi
                .iter()
                .zip(xj)
                .map(|(&u, &v)| {
                    let diff = f64::from(u) - f64::from(v);
                    diff * diff
                })
                .sum();
            f64::from(graph.weights[e]) * squared
        })
        .sum()
}

fn check_weight(weight: f64) -> KernelResult<()> {
    if !weight.is_finite() || weight < 0.0 {
        return Err(KernelError::invalid(format!(
            "weight must be a finite number >= 0, got {weight}"
        )));
    }
    Ok(())
}

/// The crate's `compute_batch`: `weight * mean_d (V_d - mean(V))^2` with `V_d` the (population)
/// variance of column d of X (`n x dim`). With `grad`, writes its gradient,
/// `weight * 4 / (n dim) * (V_d - mean(V)) * (x_id - mu_d)`.
pub fn variance_penalty(
    x: &[f32],
    n: usize,
    dim: usize,
    weight: f64,
    grad: Option<&mut [f32]>,
) -> KernelResult<f64> {
    check_weight(weight)?;
    if n == 0 || dim == 0 {
        return Err(KernelError::shape("embeddings must be non-empty"));
    }
    if x.len() != n * dim {
        return Err(KernelError::shape(format!(
            "embeddings has {} elements, expected {n} x {dim}",
            x.len()
        )));
    }
    let mut mean = vec![0.0f64; dim];
    for row in x.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0f64; dim];
    for row in x.chunks_exact(dim) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            let c = f64::from(v) - m;
            *s += c * c;
        }
    }
    var.iter_mut().for_each(|s| *s /= n as f64);
    let avg = var.iter().sum::<f64>() / dim as f64;
    let value = weight * var.iter().map(|v| (v - avg) * (v - avg)).sum::<f64>() / dim as f64;
    if let Some(g) = grad {
        if g.len() != x.len() {
            return Err(KernelError::shape("grad must be shaped like embeddings"));
        }
        let coef = weight * 4.0 / (n as f64 * dim as f64);
        for (g_row, row) in g.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            for (((g, &v), &m), &s) in g_row.iter_mut().zip(row).zip(&mean).zip(&var) {
                *g = (coef * (s - avg) * (f64::from(v) - m)) as f32;
            }
        }
    }
    Ok(value)
}
