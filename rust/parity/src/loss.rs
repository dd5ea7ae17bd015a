//! The crate's losses on generated samples: InfoNCE, local contrastive, spectral penalty.

use ruvector_attention::training::{
    InfoNCELoss, LocalContrastiveLoss, Loss, Reduction, SpectralRegularization,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// One sample in the crate's form: anchor, positive and negatives.
#[derive(Deserialize)]
pub struct Sample {
    anchor: Vec<f32>,
    positive: Vec<f32>,
    negatives: Vec<Vec<f32>>,
}

impl Sample {
    fn negatives(&self) -> Vec<&[f32]> {
        self.negatives.iter().map(Vec::as_slice).collect()
    }

    /// `compute` and `compute_with_gradients` of any crate loss.
    fn run(&self, loss: &dyn Loss) -> Value {
        let negatives = self.negatives();
        let value = loss.compute(&self.anchor, &self.positive, &negatives);
        let (value_with_grad, grad) =
            loss.compute_with_gradients(&self.anchor, &self.positive, &negatives);
        json!({ "value": value, "value_with_grad": value_with_grad, "grad": grad })
    }
}

#[derive(Deserialize)]
pub struct InfoNceCase {
    temperature: f32,
    #[serde(flatten)]
    sample: Sample,
}

#[derive(Deserialize)]
pub struct LocalContrastiveCase {
    margin: f32,
    reduction: String,
    #[serde(flatten)]
    sample: Sample,
}

#[derive(Deserialize)]
pub struct SpectralCase {
    weight: f32,
    embeddings: Vec<Vec<f32>>,
    /// Also run the one-sample `compute` on the stack (anchor, positive, negatives).
    #[serde(default)]
    sample: Option<Sample>,
}

pub fn run_info_nce(case: InfoNceCase) -> Value {
    case.sample.run(&InfoNCELoss::new(case.temperature))
}

pub fn run_local_contrastive(case: LocalContrastiveCase) -> Value {
    let reduction = match case.reduction.as_str() {
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        _ => Reduction::Mean,
    };
    let loss = LocalContrastiveLoss::new(case.margin).with_reduction(reduction);
    case.sample.run(&loss)
}

pub fn run_spectral(case: SpectralCase) -> Value {
    let reg = SpectralRegularization::new(case.weight);
    let rows: Vec<&[f32]> = case.embeddings.iter().map(Vec::as_slice).collect();
    let batch = reg.compute_batch(&rows);
    let sample = case.sample.as_ref().map(|s| s.run(&reg));
    json!({ "compute_batch": batch, "sample": sample })
}
