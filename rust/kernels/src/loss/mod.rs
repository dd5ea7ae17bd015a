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

pub use info_nce::{info_nce_per_anchor, PerAnchorDims, PerAnchorInputs};

use crate::error::{KernelError, KernelResult};

/// Where a loss kernel writes its gradients, laid out like its inputs, each multiplied by `scale`
/// (the reduction's factor: 1/B for a mean). `negatives` is `None` only for in-batch InfoNCE,
/// whose negatives are the positives; the per-anchor and margin losses require it.
pub struct LossGrads<'a> {
    pub anchors: &'a mut [f32],
    pub positives: &'a mut [f32],
    pub negatives: Option<&'a mut [f32]>,
    pub scale: GradScale<'a>,
}

/// The factor of each item's loss in the differentiated sum: `scale * weights[i]` for item `i`
/// (an InfoNCE row, a margin term), or `scale` for every item without weights. Weights are an
/// upstream gradient, as an autograd engine passes to the backward of an unreduced loss.
#[derive(Clone, Copy, Debug)]
pub struct GradScale<'a> {
    pub scale: f32,
    pub weights: Option<&'a [f32]>,
}

impl<'a> GradScale<'a> {
    /// The same factor for every item.
    pub fn uniform(scale: f32) -> Self {
        Self {
            scale,
            weights: None,
        }
    }

    /// The upstream weight of `item` alone: `weights[item]`, or 1 without weights.
    #[inline]
    pub fn weight(&self, item: usize) -> f32 {
        self.weights.map_or(1.0, |w| w[item])
    }

    /// `scale * weights[i]`; without weights exactly `scale` (multiplying by 1 is exact).
    #[inline]
    pub fn at(&self, item: usize) -> f32 {
        self.scale * self.weight(item)
    }

    /// Checks that there is one weight per item.
    pub(crate) fn check_items(&self, items: usize) -> KernelResult<()> {
        match self.weights {
            Some(w) => check_len("gradient weights", w.len(), items),
            None => Ok(()),
        }
    }
}

impl LossGrads<'_> {
    /// The same outputs, borrowed for one call (so the caller can post-process them after).
    pub fn reborrow(&mut self) -> LossGrads<'_> {
        LossGrads {
            anchors: &mut *self.anchors,
            positives: &mut *self.positives,
            negatives: self.negatives.as_deref_mut(),
            scale: self.scale,
        }
    }

    /// The negatives' gradient of a loss that has explicit negatives.
    fn required_negatives(&mut self) -> KernelResult<&mut [f32]> {
        self.negatives.as_deref_mut().ok_or_else(missing_negatives)
    }
}

/// The parts of a `LossGrads` with explicit negatives: (anchors, positives, negatives, scale).
type ExplicitGrads<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], GradScale<'a>);

impl<'a> LossGrads<'a> {
    fn explicit(self) -> KernelResult<ExplicitGrads<'a>> {
        let negatives = self.negatives.ok_or_else(missing_negatives)?;
        Ok((self.anchors, self.positives, negatives, self.scale))
    }
}

fn missing_negatives() -> KernelError {
    KernelError::shape("this loss needs an output for the negatives' gradient")
}

pub(crate) fn check_len(name: &str, got: usize, expected: usize) -> KernelResult<()> {
    if got != expected {
        return Err(KernelError::shape(format!(
            "{name} has {got} elements, expected {expected}"
        )));
    }
    Ok(())
}

/// The smallest InfoNCE temperature: the crate clamps lower values up to it (1 / 0.01 = 100 is the
/// largest logit scale). The one owner of this number: the Python layer reads it from here.
pub const MIN_TEMPERATURE: f64 = 0.01;

/// Clamps the temperature as the crate does (values below `MIN_TEMPERATURE` become it); rejects
/// non-positive and non-finite values. The one owner of this rule: the Python layer calls it
/// (through `_native.effective_temperature`) to report the temperature in use.
pub fn clamped_temperature(temperature: f64) -> KernelResult<f64> {
    if !temperature.is_finite() || temperature <= 0.0 {
        return Err(KernelError::invalid(format!(
            "temperature must be a finite number > 0, got {temperature}"
        )));
    }
    Ok(temperature.max(MIN_TEMPERATURE))
}

/// `clamped_temperature` in the kernels' float32.
pub fn effective_temperature(temperature: f64) -> KernelResult<f32> {
    Ok(clamped_temperature(temperature)? as f32)
}
