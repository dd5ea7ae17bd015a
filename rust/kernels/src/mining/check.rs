//! The mining kernel's own invariants: sizes that protect memory, and parameter domains (the
//! Python layer checks the same with user-facing messages first).

use super::{MineInputs, Strategy};
use crate::error::{KernelError, KernelResult};

pub(super) fn check(
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
