//! The crate's optimizers and learning-rate scheduler on generated trajectories.

use ruvector_attention::training::optimizer::LearningRateScheduler;
use ruvector_attention::training::{Adam, AdamW, Optimizer, SGD};
use serde::Deserialize;
use serde_json::{json, Value};

/// One optimizer step: the gradient, and optionally a new parameter vector (a size change).
#[derive(Deserialize)]
pub struct Step {
    grads: Vec<f32>,
    #[serde(default)]
    params: Option<Vec<f32>>,
}

#[derive(Deserialize)]
pub struct SgdCase {
    dim: usize,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
    params: Vec<f32>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
pub struct AdamCase {
    dim: usize,
    lr: f32,
    beta1: f32,
    beta2: f32,
    #[serde(default)]
    eps: Option<f32>,
    weight_decay: f32,
    params: Vec<f32>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
pub struct SchedulerCase {
    initial_lr: f32,
    warmup_steps: usize,
    decay_steps: usize,
    min_lr: f32,
    steps: usize,
}

/// Runs the steps and returns the parameters after each one.
fn trajectory(opt: &mut dyn Optimizer, mut params: Vec<f32>, steps: Vec<Step>) -> Value {
    let mut after = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(p) = step.params {
            params = p;
        }
        opt.step(&mut params, &step.grads);
        after.push(params.clone());
    }
    json!({ "params": after })
}

pub fn run_sgd(c: SgdCase) -> Value {
    let mut opt = SGD::new(c.dim, c.lr)
        .with_momentum(c.momentum)
        .with_weight_decay(c.weight_decay)
        .with_nesterov(c.nesterov);
    trajectory(&mut opt, c.params, c.steps)
}

pub fn run_adam(c: AdamCase, decoupled: bool) -> Value {
    if decoupled {
        // The crate's AdamW has no epsilon builder: it always uses 1e-8.
        let mut opt = AdamW::new(c.dim, c.lr)
            .with_weight_decay(c.weight_decay)
            .with_betas(c.beta1, c.beta2);
        trajectory(&mut opt, c.params, c.steps)
    } else {
        let mut opt = Adam::new(c.dim, c.lr)
            .with_betas(c.beta1, c.beta2)
            .with_epsilon(c.eps.unwrap_or(1e-8))
            .with_weight_decay(c.weight_decay);
        trajectory(&mut opt, c.params, c.steps)
    }
}

pub fn run_scheduler(c: SchedulerCase) -> Value {
    let mut sched = LearningRateScheduler::new(c.initial_lr)
        .with_warmup(c.warmup_steps)
        .with_decay(c.decay_steps)
        .with_min_lr(c.min_lr);
    let lrs: Vec<f32> = (0..c.steps).map(|_| sched.step()).collect();
    json!({ "lrs": lrs })
}
