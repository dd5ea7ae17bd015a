//! The crate's miners on generated cases.

use ruvector_attention::training::mining::InBatchMiner;
use ruvector_attention::training::{HardNegativeMiner, MiningStrategy, NegativeMiner};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct MinerCase {
    strategy: String,
    margin: f32,
    temperature: f32,
    anchor: Vec<f32>,
    positive: Vec<f32>,
    candidates: Vec<Vec<f32>>,
    k: usize,
    /// How many times to call `mine` with the same inputs.
    calls: usize,
}

#[derive(Deserialize)]
pub struct InBatchCase {
    exclude_positive: bool,
    anchor_idx: usize,
    positive_idx: usize,
    batch_size: usize,
}

pub fn run_miner(case: MinerCase) -> Value {
    let strategy = match case.strategy.as_str() {
        "semi_hard" => MiningStrategy::SemiHard,
        "random" => MiningStrategy::Random,
        "distance_weighted" => MiningStrategy::DistanceWeighted,
        _ => MiningStrategy::HardNegative,
    };
    let miner = HardNegativeMiner::new(strategy)
        .with_margin(case.margin)
        .with_temperature(case.temperature);
    let candidates: Vec<&[f32]> = case.candidates.iter().map(Vec::as_slice).collect();
    let picks: Vec<Vec<usize>> = (0..case.calls)
        .map(|_| miner.mine(&case.anchor, &case.positive, &candidates, case.k))
        .collect();
    json!({ "picks": picks })
}

pub fn run_in_batch(case: InBatchCase) -> Value {
    let miner = if case.exclude_positive {
        InBatchMiner::new()
    } else {
        InBatchMiner::new().include_positive()
    };
    json!({ "negatives": miner.get_negatives(case.anchor_idx, case.positive_idx, case.batch_size) })
}
