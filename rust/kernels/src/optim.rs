//! Stateless optimizer steps: the caller owns parameters and state; one call updates a whole
//! list of parameter arrays in place.
//!
//! Formulas and their order follow PyTorch (`torch.optim.SGD`, `Adam`, `AdamW`) so users coming
//! from it see the same numbers to float32 round-off. Per-step scalars (bias corrections, step
//! size) are computed once in f64; the per-element work is f32 in one fused pass.

use crate::dispatch_simd;
use crate::error::{KernelError, KernelResult};
use crate::parallel::{for_each_task_above, CHUNK};

/// One parameter array with its gradient and SGD momentum buffer (empty when momentum is 0).
pub struct SgdSlot<'a> {
    pub param: &'a mut [f32],
    pub grad: &'a [f32],
    pub momentum_buffer: &'a mut [f32],
}

/// One parameter array with its gradient and Adam moments.
pub struct AdamSlot<'a> {
    pub param: &'a mut [f32],
    pub grad: &'a [f32],
    pub exp_avg: &'a mut [f32],
    pub exp_avg_sq: &'a mut [f32],
}

#[derive(Debug, Clone, Copy)]
pub struct SgdHyper {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// `true`: AdamW's decoupled decay `p *= 1 - lr * wd`; `false`: Adam's L2 term `g += wd * p`.
    pub decoupled: bool,
    /// The 1-based index of this step (bias corrections use it).
    pub step: u64,
}

// The domains of the hyper-parameters are the Python layer's to check, with its messages
// (`_validate.sgd_settings`, `adam_settings`); these are the kernels' own guard with the same
// bounds, so that a direct caller cannot feed float32 arithmetic a value it cannot hold.

fn check_finite_nonneg(name: &str, value: f64) -> KernelResult<()> {
    if !(0.0..=f64::from(f32::MAX)).contains(&value) {
        return Err(KernelError::invalid(format!(
            "{name} must be a finite number >= 0 within float32, got {value}"
        )));
    }
    Ok(())
}

fn check_beta(name: &str, value: f64) -> KernelResult<()> {
    if !(0.0..1.0).contains(&value) {
        return Err(KernelError::invalid(format!(
            "{name} must be in [0, 1), got {value}"
        )));
    }
    Ok(())
}

impl SgdHyper {
    pub fn validate(&self) -> KernelResult<()> {
        check_finite_nonneg("lr", self.lr)?;
        check_finite_nonneg("momentum", self.momentum)?;
        check_finite_nonneg("weight_decay", self.weight_decay)?;
        if self.nesterov && self.momentum <= 0.0 {
            return Err(KernelError::invalid(
                "Nesterov momentum requires momentum > 0".to_string(),
            ));
        }
        Ok(())
    }
}

impl AdamHyper {
    pub fn validate(&self) -> KernelResult<()> {
        check_finite_nonneg("lr", self.lr)?;
        check_beta("beta1", self.beta1)?;
        check_beta("beta2", self.beta2)?;
        // A divisor: at least float32's smallest normal number, so 1 / eps stays finite.
        if !(f64::from(f32::MIN_POSITIVE)..=f64::from(f32::MAX)).contains(&self.eps) {
            return Err(KernelError::invalid(format!(
                "eps must be a float32 number >= {:e}, got {}",
                f32::MIN_POSITIVE,
                self.eps
            )));
        }
        check_finite_nonneg("weight_decay", self.weight_decay)?;
        if self.step == 0 {
            return Err(KernelError::invalid("step must be >= 1".to_string()));
        }
        Ok(())
    }
}

fn check_len(what: &str, index: usize, expected: usize, got: usize) -> KernelResult<()> {
    if expected != got {
        return Err(KernelError::shape(format!(
            "{what}[{index}] has {got} elements but params[{index}] has {expected}"
        )));
    }
    Ok(())
}

/// Per-element scalars of one SGD step, as f32.
#[derive(Clone, Copy)]
struct SgdCoeffs {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

#[inline(always)]
fn sgd_plain_generic<const DECAY: bool>(p: &mut [f32], g: &[f32], c: SgdCoeffs) {
    for (p, &g) in p.iter_mut().zip(g) {
        let g = if DECAY { g + c.weight_decay * *p } else { g };
        *p -= c.lr * g;
    }
}

#[inline(always)]
fn sgd_momentum_generic<const DECAY: bool, const NESTEROV: bool>(
    p: &mut [f32],
    g: &[f32],
    b: &mut [f32],
    c: SgdCoeffs,
) {
    // PyTorch initialises the buffer to the first gradient; a zero buffer gives the same bits
    // (momentum * 0 + g == g), so the caller starts from zeros.
    for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
        let g = if DECAY { g + c.weight_decay * *p } else { g };
        let nb = c.momentum * *b + g;
        *b = nb;
        let d = if NESTEROV { g + c.momentum * nb } else { nb };
        *p -= c.lr * d;
    }
}

dispatch_simd!(fn sgd_plain<const DECAY: bool>(p: &mut [f32], g: &[f32], c: SgdCoeffs) => sgd_plain_generic);
dispatch_simd!(fn sgd_momentum<const DECAY: bool, const NESTEROV: bool>(p: &mut [f32], g: &[f32], b: &mut [f32], c: SgdCoeffs) => sgd_momentum_generic);

/// Below this many parameters an optimizer step runs on the calling thread. Measured through
/// the PyTorch front end on the 2-vCPU Zen 4 (`benches/bench_torch_optim.py --crossover`: steps
/// called from Python in a loop, whose pauses let the pool's workers fall asleep), pool / one
/// thread for SGD and AdamW, two runs: 262k 1.33x 1.08x, 1.22x 0.91x; 524k 1.30x 1.01x,
/// 0.86x 0.73x; 1M 1.02x 0.88x, 0.79x 0.82x; 2M 0.88x 0.90x, 0.64x 0.59x. The bare call back to
/// back paid from 131k-262k, but a training loop is the former.
pub const OPTIMIZER_PARALLEL_THRESHOLD: usize = 1 << 20;

/// One SGD step over every slot. Validates everything before writing anything.
pub fn sgd_step(slots: Vec<SgdSlot<'_>>, hyper: &SgdHyper) -> KernelResult<()> {
    hyper.validate()?;
    let with_momentum = hyper.momentum != 0.0;
    let mut total = 0usize;
    for (i, s) in slots.iter().enumerate() {
        check_len("grads", i, s.param.len(), s.grad.len())?;
        if with_momentum {
            check_len("momentum_buffer", i, s.param.len(), s.momentum_buffer.len())?;
        }
        total += s.param.len();
    }
    let c = SgdCoeffs {
        lr: hyper.lr as f32,
        momentum: hyper.momentum as f32,
        weight_decay: hyper.weight_decay as f32,
    };
    let decay = hyper.weight_decay != 0.0;
    let mut tasks = Vec::new();
    for s in slots {
        if with_momentum {
            for ((p, g), b) in s
                .param
                .chunks_mut(CHUNK)
                .zip(s.grad.chunks(CHUNK))
                .zip(s.momentum_buffer.chunks_mut(CHUNK))
            {
                tasks.push((p, g, b));
            }
        } else {
            for (p, g) in s.param.chunks_mut(CHUNK).zip(s.grad.chunks(CHUNK)) {
                tasks.push((p, g, &mut [][..]));
            }
        }
    }
    for_each_task_above(
        OPTIMIZER_PARALLEL_THRESHOLD,
        tasks,
        total,
        |(p, g, b)| match (with_momentum, decay, hyper.nesterov) {
            (false, false, _) => sgd_plain::<false>(p, g, c),
            (false, true, _) => sgd_plain::<true>(p, g, c),
            (true, false, false) => sgd_momentum::<false, false>(p, g, b, c),
            (true, true, false) => sgd_momentum::<true, false>(p, g, b, c),
            (true, false, true) => sgd_momentum::<false, true>(p, g, b, c),
            (true, true, true) => sgd_momentum::<true, true>(p, g, b, c),
        },
    );
    Ok(())
}

/// Per-element scalars of one Adam step, as f32.
#[derive(Clone, Copy)]
struct AdamCoeffs {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `1 / sqrt(1 - beta2^t)`: a product where torch divides, so that each element costs one
    /// square root and one division (two divisions and a root made the step compute-bound at
    /// sizes that stay in cache: 0.21 ms against 0.12 ms for the same memory traffic, 525k
    /// parameters, one Zen 4 core). It moves the denominator by at most one rounding.
    inv_bias_correction2_sqrt: f32,
    eps: f32,
    /// Adam: the L2 coefficient added to the gradient.
    l2: f32,
    /// AdamW: `1 - lr * wd`.
    decay_factor: f32,
}

#[inline(always)]
fn adam_generic<const L2: bool, const DECOUPLED: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: AdamCoeffs,
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mut param = *p;
        let g = if L2 { g + c.l2 * param } else { g };
        if DECOUPLED {
            param *= c.decay_factor;
        }
        let nm = c.beta1 * *m + c.one_minus_beta1 * g;
        let nv = c.beta2 * *v + c.one_minus_beta2 * (g * g);
        *m = nm;
        *v = nv;
        let denom = nv.sqrt() * c.inv_bias_correction2_sqrt + c.eps;
        *p = param - c.step_size * (nm / denom);
    }
}

dispatch_simd!(fn adam_kernel<const L2: bool, const DECOUPLED: bool>(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamCoeffs) => adam_generic);

/// One Adam / AdamW step over every slot. Validates everything before writing anything.
pub fn adam_step(slots: Vec<AdamSlot<'_>>, hyper: &AdamHyper) -> KernelResult<()> {
    hyper.validate()?;
    let mut total = 0usize;
    for (i, s) in slots.iter().enumerate() {
        check_len("grads", i, s.param.len(), s.grad.len())?;
        check_len("exp_avg", i, s.param.len(), s.exp_avg.len())?;
        check_len("exp_avg_sq", i, s.param.len(), s.exp_avg_sq.len())?;
        total += s.param.len();
    }
    let t = hyper.step.min(i32::MAX as u64) as i32;
    let bias_correction1 = 1.0 - hyper.beta1.powi(t);
    let bias_correction2 = 1.0 - hyper.beta2.powi(t);
    let c = AdamCoeffs {
        beta1: hyper.beta1 as f32,
        one_minus_beta1: (1.0 - hyper.beta1) as f32,
        beta2: hyper.beta2 as f32,
        one_minus_beta2: (1.0 - hyper.beta2) as f32,
        // beta1 = 0 gives bias_correction1 = 1; beta1 > 0 keeps it > 0.
        step_size: (hyper.lr / bias_correction1) as f32,
        // beta2 < 1 keeps bias_correction2 >= 1.1e-16, so the inverse stays below 1e8.
        inv_bias_correction2_sqrt: (1.0 / bias_correction2.sqrt()) as f32,
        eps: hyper.eps as f32,
        l2: hyper.weight_decay as f32,
        decay_factor: (1.0 - hyper.lr * hyper.weight_decay) as f32,
    };
    let has_decay = hyper.weight_decay != 0.0;
    let l2 = has_decay && !hyper.decoupled;
    let decoupled = has_decay && hyper.decoupled;
    let mut tasks = Vec::new();
    for s in slots {
        for (((p, g), m), v) in s
            .param
            .chunks_mut(CHUNK)
            .zip(s.grad.chunks(CHUNK))
            .zip(s.exp_avg.chunks_mut(CHUNK))
            .zip(s.exp_avg_sq.chunks_mut(CHUNK))
        {
            tasks.push((p, g, m, v));
        }
    }
    for_each_task_above(
        OPTIMIZER_PARALLEL_THRESHOLD,
        tasks,
        total,
        |(p, g, m, v)| match (l2, decoupled) {
            (false, false) => adam_kernel::<false, false>(p, g, m, v, c),
            (true, _) => adam_kernel::<true, false>(p, g, m, v, c),
            (false, true) => adam_kernel::<false, true>(p, g, m, v, c),
        },
    );
    Ok(())
}

/// A streaming pass with AdamW's memory traffic (read p, g, m, v; write p, m, v) and almost no
/// arithmetic: the bandwidth bound an optimizer step is measured against.
pub fn stream_probe(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) -> KernelResult<()> {
    let n = p.len();
    if g.len() != n || m.len() != n || v.len() != n {
        return Err(KernelError::shape(
            "stream probe arrays must have equal sizes".to_string(),
        ));
    }
    #[inline(always)]
    fn probe_generic(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *p += g;
            *m += g;
            *v += g;
        }
    }
    dispatch_simd!(fn probe(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) => probe_generic);
    let tasks: Vec<_> = p
        .chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .zip(m.chunks_mut(CHUNK))
        .zip(v.chunks_mut(CHUNK))
        .collect();
    for_each_task_above(
        OPTIMIZER_PARALLEL_THRESHOLD,
        tasks,
        n,
        |(((p, g), m), v)| probe(p, g, m, v),
    );
    Ok(())
}
