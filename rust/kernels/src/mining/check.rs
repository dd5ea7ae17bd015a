//! The mining kernel's own invariants: the sizes that protect memory (and the positives semi-hard
//! reads). User-facing checks of every argument are the Python layer's (`mining.py`).

use super::{Limits, MineInputs, Strategy};
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
    // Semi-hard reads the positives; the parameter domains (margin, temperature, cutoffs) are the
    // Python layer's to check, with its messages.
    if matches!(strategy, Strategy::SemiHard { .. }) && inputs.positives.is_none() {
        return Err(KernelError::invalid("semi-hard mining needs positives"));
    }
    Ok(())
}

/// `hardest_within`'s limits: one ceiling per anchor, excluded lists that fit the anchors and the
/// candidates and are sorted, one count per anchor.
pub(super) fn check_limits(
    inputs: &MineInputs<'_>,
    limits: &Limits<'_>,
    over_len: usize,
    drawn_len: usize,
) -> KernelResult<()> {
    let (b, n) = (inputs.batch, inputs.pool);
    let drawn_expected = limits.draw.as_ref().map_or(0, |d| b * d.size);
    if drawn_len != drawn_expected {
        return Err(KernelError::shape(format!(
            "drawn has {drawn_len} entries, expected {drawn_expected}"
        )));
    }
    if let Some(d) = &limits.draw {
        if d.query_ids.len() != b || d.floors.len() != b {
            return Err(KernelError::shape(format!(
                "the draw's query ids and floors have {} and {} entries, expected {b}",
                d.query_ids.len(),
                d.floors.len()
            )));
        }
    }
    if over_len != b {
        return Err(KernelError::shape(format!(
            "over has {over_len} entries, expected {b}"
        )));
    }
    if let Some(c) = limits.ceilings {
        if c.len() != b {
            return Err(KernelError::shape(format!(
                "ceilings has {} entries, expected {b}",
                c.len()
            )));
        }
    }
    if let Some((offsets, columns)) = limits.excluded {
        let ok_offsets = offsets.len() == b + 1
            && offsets.first() == Some(&0)
            && offsets.last() == Some(&columns.len())
            && offsets.windows(2).all(|w| w[0] <= w[1]);
        if !ok_offsets {
            return Err(KernelError::shape(format!(
                "excluded offsets must rise from 0 to {} in {} entries",
                columns.len(),
                b + 1
            )));
        }
        for w in offsets.windows(2) {
            let row = &columns[w[0]..w[1]];
            if row.iter().any(|&c| c as usize >= n) || row.windows(2).any(|p| p[0] >= p[1]) {
                return Err(KernelError::invalid(format!(
                    "excluded columns must be distinct, ascending and below {n} per anchor"
                )));
            }
        }
    }
    Ok(())
}
