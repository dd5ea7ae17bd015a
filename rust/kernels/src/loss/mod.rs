//! Loss kernels: value and exact gradients, one file per loss family.
//!
//! - `info_nce`: InfoNCE with negatives per anchor (bandwidth-bound row loop).
//! - `info_nce_pooled`: InfoNCE against a shared pool or in-batch (GEMM-shaped, streamed).
//! - `local_contrastive`: Euclidean margin loss.
//! - `spectral`: graph-Laplacian smoothness and the crate's variance-uniformity penalty.

pub mod info_nce;
pub mod info_nce_pooled;
pub mod local_contrastive;
pub mod spectral;

pub use info_nce::{info_nce_per_anchor, InfoNceGrads, PerAnchorDims};

use crate::error::{KernelError, KernelResult};

pub(crate) fn check_len(name: &str, got: usize, expected: usize) -> KernelResult<()> {
    if got != expected {
        return Err(KernelError::shape(format!(
            "{name} has {got} elements, expected {expected}"
        )));
    }
    Ok(())
}

/// Clamps the temperature as the crate does (values below 0.01 become 0.01); rejects
/// non-positive and non-finite values.
pub fn effective_temperature(temperature: f64) -> KernelResult<f32> {
    if !temperature.is_finite() || temperature <= 0.0 {
        return Err(KernelError::invalid(format!(
            "temperature must be a finite number > 0, got {temperature}"
        )));
    }
    Ok(temperature.max(0.01) as f32)
}
