//! Vectorisable `exp` and `ln` for float32: the softmax of the GEMM-shaped losses and the Gumbel
//! noise of the samplers need millions of them per call.
//!
//! `f32::exp` and `f32::ln` are scalar library calls (several ns each); a 4096 x 4096 softmax
//! needs 16.7M exponentials twice. These are Cephes' `expf` and `logf` (range reduction, a short
//! polynomial, exponent bits handled directly), about 1 ulp. `exp_f32` clamps its argument to
//! [-86, 88] so the result never goes subnormal or infinite; NaN stays NaN.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting it rounds to the nearest integer without `round()`,
/// which is a library call on CPUs without SSE4.1.
const ROUNDER: f32 = 12_582_912.0;

#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-86.0, 88.0);
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n is an integer in [-124, 127], and it is also in the low bits of `shifted` (1.5 * 2^23 + n
    // has an ulp of 1): reading it from there is integer arithmetic that vectorises, where
    // `n as i32` (a saturating conversion) compiles to a scalar convert per lane. NaN gives an
    // arbitrary scale here and NaN through `y`.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUNDER.to_bits())
        .wrapping_add(127);
    let scale = f32::from_bits(biased << 23);
    y * scale
}

const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Natural logarithm of a positive, normal `x` (Cephes `logf`). Zero, negative, subnormal,
/// infinite and NaN inputs are outside its contract (the callers never pass them); they give
/// unspecified finite or NaN values, never a panic.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m * 2^e with m in [0.5, 1).
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let mut m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    if m < SQRT_HALF {
        e -= 1;
        m = m + m - 1.0;
    } else {
        m -= 1.0;
    }
    let e = e as f32;
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461_1e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    y *= m * z;
    y += -2.121_944_4e-4 * e;
    y += -0.5 * z;
    m + y + 0.693_359_4 * e
}
