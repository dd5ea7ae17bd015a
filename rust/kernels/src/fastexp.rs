//! A vectorisable `exp` for float32, for the softmax of the GEMM-shaped losses.
//!
//! `f32::exp` is a scalar library call (several ns); a 4096 x 4096 softmax needs 16.7M of them
//! twice. This is Cephes' `expf` (range reduction by ln 2, degree-6 polynomial, exponent bits set
//! directly), about 1 ulp over the clamped range. Arguments are clamped to [-86, 88] so the
//! result never goes subnormal or infinite; NaN stays NaN.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting it rounds to the nearest integer without `round()`,
/// which is a library call on CPUs without SSE4.1.
const ROUNDER: f32 = 12_582_912.0;

#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-86.0, 88.0);
    let n = (x * LOG2E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n is an integer in [-124, 127]; NaN gives 0 here and NaN through `y`.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * scale
}
