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

    fn row(&self, i: usize) -> (&[i64], &[f32]) {
        let (s, e) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[s..e], &self.weights[s..e])
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
    let mut degree = vec![0i64; n + 1];
    for e in edges.chunks_exact(2) {
        for (from, _) in directions(e) {
            degree[from as usize + 1] += 1;
        }
    }
    for i in 0..n {
        degree[i + 1] += degree[i];
    }
    let indptr = degree;
    let mut fill: Vec<i64> = indptr[..n].to_vec();
    let entries = indptr[n] as usize;
    let mut indices = vec![0i64; entries];
    let mut out_w = vec![0.0f32; entries];
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

/// `y += w (xi - xj)`; returns `w |xi - xj|^2`.
#[inline(always)]
fn edge_update_generic(y: &mut [f32], xi: &[f32], xj: &[f32], w: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ys = y.chunks_exact_mut(LANES);
    let mut is = xi.chunks_exact(LANES);
    let mut js = xj.chunks_exact(LANES);
    for ((yb, ib), jb) in (&mut ys).zip(&mut is).zip(&mut js) {
        for (((a, y), &u), &v) in acc.iter_mut().zip(yb).zip(ib).zip(jb) {
            let diff = u - v;
            *y += w * diff;
            *a += diff * diff;
        }
    }
    for (((a, y), &u), &v) in acc
        .iter_mut()
        .zip(ys.into_remainder())
        .zip(is.remainder())
        .zip(js.remainder())
    {
        let diff = u - v;
        *y += w * diff;
        *a += diff * diff;
    }
    w * pairwise_sum(acc)
}

dispatch_simd!(fn edge_update(y: &mut [f32], xi: &[f32], xj: &[f32], w: f32) -> f32 => edge_update_generic);

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
    let row_value = |i: usize, y: &mut [f32]| -> f64 {
        y.fill(0.0);
        let xi = &x[i * dim..(i + 1) * dim];
        let (cols, ws) = graph.row(i);
        cols.iter()
            .zip(ws)
            .map(|(&j, &w)| {
                let j = j as usize;
                f64::from(edge_update(y, xi, &x[j * dim..(j + 1) * dim], w))
            })
            .sum()
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
                let mut sum = 0.0;
                for (r, y) in g.chunks_exact_mut(dim).enumerate() {
                    sum += row_value(first + r, y);
                    for v in y.iter_mut() {
                        *v *= two_w;
                    }
                }
                sum
            })
        }
        None => {
            let ranges: Vec<_> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            map_tasks(ranges, total_work, |(s, e)| {
                let mut y = vec![0.0f32; dim];
                (s..e).map(|i| row_value(i, &mut y)).sum()
            })
        }
    };
    // Every undirected edge appears in two rows.
    Ok(weight * partial.iter().sum::<f64>() / 2.0)
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
