//! The unit rows the pooled loss works on, and the chain rule back from them.
//!
//! Every input row is conditioned (a row too large for float32 squares is multiplied by its power
//! of two, `conditioning::row_factor`) and normalised as it is copied, and all inputs are done in
//! one parallel pass: each parallel region costs a wake-up of the other threads, and a serial
//! pass over the inputs would leave them idle (on the 2-vCPU VM both showed as idle gaps before
//! the first product of a B=1024 call). The arithmetic is that of `Rescaled` followed by the
//! normalisation, so the bits are the same.

use crate::conditioning::row_factor;
use crate::parallel::{for_each_task, map_tasks};
use crate::scratch::Scratch;
use crate::vecops::{backprop_normalisation, clamped_norm, scale_into};

/// Rows per task: enough to amortise scheduling, and several tasks per input for two cores.
const ROWS_PER_TASK: usize = 256;

/// One input's rows as `x_hat = c x / max(|c x|, eps)`, with each row's conditioning factor `c`
/// (1 for ordinary rows) and the clamped norm of `c x`.
pub(super) struct UnitRows {
    pub(super) hat: Scratch,
    norms: Vec<f32>,
    factors: Vec<f32>,
}

impl UnitRows {
    /// The unit rows of every input (each `rows x d`, `d > 0`), in one parallel region.
    pub(super) fn of_all(inputs: &[&[f32]], d: usize) -> Vec<UnitRows> {
        let mut hats: Vec<Scratch> = inputs.iter().map(|x| Scratch::new(x.len())).collect();
        let total: usize = inputs.iter().map(|x| x.len()).sum();
        let tasks: Vec<_> = inputs
            .iter()
            .zip(hats.iter_mut())
            .enumerate()
            .flat_map(|(k, (x, hat))| {
                let pairs = x
                    .chunks(ROWS_PER_TASK * d)
                    .zip(hat.chunks_mut(ROWS_PER_TASK * d));
                pairs.map(move |pair| (k, pair))
            })
            .collect();
        let done: Vec<(usize, Vec<(f32, f32)>)> = map_tasks(
            tasks,
            total,
            |(k, (src, dst)): (usize, (&[f32], &mut [f32]))| {
                let rows = src.chunks_exact(d).zip(dst.chunks_exact_mut(d));
                (k, rows.map(|(x, out)| unit_row(out, x)).collect())
            },
        );
        let mut stats: Vec<(Vec<f32>, Vec<f32>)> = inputs
            .iter()
            .map(|x| {
                (
                    Vec::with_capacity(x.len() / d),
                    Vec::with_capacity(x.len() / d),
                )
            })
            .collect();
        // Tasks come back in order, so each input's rows are appended in order.
        for (k, rows) in done {
            let (norms, factors) = &mut stats[k];
            for (norm, factor) in rows {
                norms.push(norm);
                factors.push(factor);
            }
        }
        hats.into_iter()
            .zip(stats)
            .map(|(hat, (norms, factors))| UnitRows {
                hat,
                norms,
                factors,
            })
            .collect()
    }

    /// Turns gradients with respect to the unit rows into gradients with respect to the inputs,
    /// in place, for every `(gradient, rows)` pair in one parallel region: through the
    /// normalisation, then times each row's conditioning factor (d/dx f(c x) = c f'(c x)).
    pub(super) fn backprop_all(pairs: Vec<(&mut [f32], &UnitRows)>, d: usize) {
        let total: usize = pairs.iter().map(|(g, _)| g.len()).sum();
        let tasks: Vec<_> = pairs
            .into_iter()
            .flat_map(|(g, rows)| {
                g.chunks_mut(ROWS_PER_TASK * d)
                    .zip(rows.hat.chunks(ROWS_PER_TASK * d))
                    .zip(rows.norms.chunks(ROWS_PER_TASK))
                    .zip(rows.factors.chunks(ROWS_PER_TASK))
            })
            .collect();
        for_each_task(tasks, total, |(((g, hat), norms), factors)| {
            let rows = g.chunks_exact_mut(d).zip(hat.chunks_exact(d));
            for ((g, x_hat), (&norm, &factor)) in rows.zip(norms.iter().zip(factors)) {
                backprop_normalisation(g, x_hat, norm);
                if factor != 1.0 {
                    g.iter_mut().for_each(|v| *v *= factor);
                }
            }
        });
    }
}

/// Writes one row's unit vector into `out`; returns (clamped norm, conditioning factor).
fn unit_row(out: &mut [f32], x: &[f32]) -> (f32, f32) {
    let factor = row_factor(x);
    if factor == 1.0 {
        let norm = clamped_norm(x);
        scale_into(out, 1.0 / norm, x);
        return (norm, factor);
    }
    // As `Rescaled` then the normalisation: the conditioned copy first, then its unit vector.
    scale_into(out, factor, x);
    let norm = clamped_norm(out);
    let inv = 1.0 / norm;
    out.iter_mut().for_each(|v| *v *= inv);
    (norm, factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditioning::Rescaled;

    /// Rows of every kind the conditioning distinguishes: ordinary, too large for float32
    /// squares (rescaled), tiny (clamped norm), zero, and rows holding NaN or Inf (left as they
    /// are), in more than one task's worth of rows.
    fn mixed_rows(rows: usize, d: usize) -> Vec<f32> {
        let mut x = Vec::with_capacity(rows * d);
        for i in 0..rows {
            let scale = [1.0f32, 3e25, 1e-30, 0.0, 7e37, 0.5][i % 6];
            for j in 0..d {
                let v = ((i * 31 + j * 17) % 23) as f32 - 11.0;
                x.push(v * scale);
            }
            match i % 50 {
                7 => x[i * d + 1] = f32::NAN,
                8 => x[i * d] = f32::INFINITY,
                9 => x[i * d + 2] = 2e38, // large and finite, with an ordinary rest
                _ => {}
            }
        }
        x
    }

    #[test]
    fn unit_rows_and_their_backprop_match_rescaling_then_normalising_bit_for_bit() {
        let d = 13;
        let (x, y) = (mixed_rows(600, d), mixed_rows(300, d));
        let units = UnitRows::of_all(&[&x, &y], d);
        let mut grads: Vec<Vec<f32>> = [x.len(), y.len()]
            .iter()
            .map(|&len| (0..len).map(|i| ((i % 29) as f32 - 14.0) * 0.01).collect())
            .collect();
        let mut expected_grads = grads.clone();
        for ((input, unit), expected_grad) in [&x, &y].iter().zip(&units).zip(&mut expected_grads) {
            // The two steps as the per-anchor kernel takes them.
            let rescaled = Rescaled::new(input, d).unwrap();
            let mut hat = vec![0.0f32; input.len()];
            let mut norms = Vec::new();
            for (out, row) in hat.chunks_exact_mut(d).zip(rescaled.rows.chunks_exact(d)) {
                let norm = clamped_norm(row);
                scale_into(out, 1.0 / norm, row);
                norms.push(norm);
            }
            let same =
                |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits());
            assert!(same(&unit.hat, &hat));
            assert!(same(&unit.norms, &norms));
            for (g, (row, &norm)) in expected_grad
                .chunks_exact_mut(d)
                .zip(hat.chunks_exact(d).zip(&norms))
            {
                backprop_normalisation(g, row, norm);
            }
            rescaled.unscale_gradient(expected_grad, d);
        }
        assert!(
            units[0].factors.iter().any(|&f| f != 1.0),
            "some rows were rescaled"
        );
        let pairs = grads
            .iter_mut()
            .map(|g| g.as_mut_slice())
            .zip(&units)
            .collect();
        UnitRows::backprop_all(pairs, d);
        for (got, want) in grads.iter().zip(&expected_grads) {
            assert!(got
                .iter()
                .zip(want)
                .all(|(u, v)| u.to_bits() == v.to_bits()));
        }
    }
}
