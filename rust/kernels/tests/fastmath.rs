//! The vectorisable exp and ln against f64 over the ranges they are used on, and edge cases.

use ruvector_kernels::fastmath::{exp_f32, ln_f32};

#[test]
fn within_two_ulps_of_exact_over_the_clamped_range() {
    let mut worst = 0.0f64;
    let steps = 2_000_000;
    for i in 0..=steps {
        let x = -86.0 + 174.0 * f64::from(i) / f64::from(steps);
        let x32 = x as f32;
        let exact = f64::from(x32).exp();
        let got = f64::from(exp_f32(x32));
        let ulp = f64::from(f32::EPSILON) * exact;
        worst = worst.max((got - exact).abs() / ulp);
    }
    assert!(worst <= 2.0, "worst error {worst} ulps");
}

#[test]
fn clamps_and_keeps_nan() {
    assert!(exp_f32(f32::NAN).is_nan());
    assert_eq!(exp_f32(f32::NEG_INFINITY), exp_f32(-86.0));
    assert!(exp_f32(-1000.0) > 0.0 && exp_f32(-1000.0).is_normal());
    assert!(exp_f32(f32::INFINITY).is_finite());
    assert_eq!(exp_f32(0.0), 1.0);
}

#[test]
fn ln_within_two_ulps_over_positive_normals() {
    let mut worst = 0.0f64;
    // Every 97th float32 bit pattern from the smallest normal to the largest finite value.
    let mut bits = f32::MIN_POSITIVE.to_bits();
    while bits < f32::MAX.to_bits() {
        let x = f32::from_bits(bits);
        let exact = f64::from(x).ln();
        let got = f64::from(ln_f32(x));
        // Near x = 1 the result is tiny: measure against the ulp of the result, with a floor.
        let ulp = f64::from(f32::EPSILON) * exact.abs().max(f64::from(f32::MIN_POSITIVE));
        worst = worst.max((got - exact).abs() / ulp);
        bits += 97;
    }
    assert!(worst <= 2.0, "worst error {worst} ulps");
    assert_eq!(ln_f32(1.0), 0.0);
}
