//! The crate's curriculum scheduler and temperature annealing on generated schedules.

use ruvector_attention::training::{
    CurriculumScheduler, CurriculumStage, DecayType, TemperatureAnnealing,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct Stage {
    name: String,
    difficulty: f32,
    duration: usize,
    temperature: f32,
    negative_count: usize,
}

#[derive(Deserialize)]
pub struct CurriculumCase {
    /// None: the crate's `default_curriculum(total_steps)`.
    #[serde(default)]
    stages: Option<Vec<Stage>>,
    #[serde(default)]
    total_steps: usize,
    /// Calls of `step()` between observations.
    advances: Vec<usize>,
}

#[derive(Deserialize)]
pub struct AnnealingCase {
    initial: f32,
    #[serde(rename = "final")]
    final_temp: f32,
    steps: usize,
    decay: String,
    #[serde(default)]
    step_size: Option<usize>,
    calls: usize,
}

fn observe(s: &CurriculumScheduler) -> Value {
    json!({
        "stage": s.current_stage().map(|st| st.name.clone()),
        "difficulty": s.difficulty(),
        "temperature": s.temperature(),
        "negative_count": s.negative_count(),
        "progress": s.progress(),
        "is_complete": s.is_complete(),
    })
}

pub fn run_curriculum(case: CurriculumCase) -> Value {
    let mut scheduler = match case.stages {
        None => CurriculumScheduler::default_curriculum(case.total_steps),
        Some(stages) => stages
            .into_iter()
            .fold(CurriculumScheduler::new(), |s, st| {
                s.add_stage(
                    CurriculumStage::new(&st.name)
                        .difficulty(st.difficulty)
                        .duration(st.duration)
                        .temperature(st.temperature)
                        .negative_count(st.negative_count),
                )
            }),
    };
    let mut seen = vec![observe(&scheduler)];
    for n in case.advances {
        for _ in 0..n {
            scheduler.step();
        }
        seen.push(observe(&scheduler));
    }
    json!({ "observations": seen })
}

pub fn run_annealing(case: AnnealingCase) -> Value {
    let decay = match case.decay.as_str() {
        "exponential" => DecayType::Exponential,
        "cosine" => DecayType::Cosine,
        "step" => DecayType::Step,
        _ => DecayType::Linear,
    };
    let mut annealing =
        TemperatureAnnealing::new(case.initial, case.final_temp, case.steps).with_decay(decay);
    if let Some(size) = case.step_size {
        annealing = annealing.with_step_size(size);
    }
    let temps: Vec<f32> = (0..case.calls).map(|_| annealing.step()).collect();
    json!({ "temperatures": temps })
}
