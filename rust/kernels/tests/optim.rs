//! Kernel-level checks: f64 references, identical bits on every SIMD path, error branches.

mod common;

use common::data;
use ruvector_kernels::norm::{clip_grad_norm, global_norm};
use ruvector_kernels::optim::{adam_step, sgd_step, AdamHyper, AdamSlot, SgdHyper, SgdSlot};
use ruvector_kernels::simd;
use ruvector_kernels::KernelError;

/// One Adam step on a single parameter array.
fn adam_once(
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    hyper: &AdamHyper,
) -> Result<(), KernelError> {
    adam_step(
        vec![AdamSlot {
            param,
            grad,
            exp_avg,
            exp_avg_sq,
        }],
        hyper,
    )
}

fn adamw(step: u64) -> AdamHyper {
    AdamHyper {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        decoupled: true,
        step,
    }
}

#[test]
fn adamw_matches_f64_reference() {
    let n = 1000;
    let (mut p, g) = (data(n, 1), data(n, 2));
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let p0 = p.clone();
    adam_once(&mut p, &g, &mut m, &mut v, &adamw(1)).unwrap();
    for i in 0..n {
        let (p0, g) = (f64::from(p0[i]), f64::from(g[i]));
        let decayed = p0 * (1.0 - 0.01 * 0.1);
        let m = 0.1 * g;
        let v = 0.001 * g * g;
        let expected = decayed - 0.01 / 0.1 * m / (v.sqrt() / 0.001f64.sqrt() + 1e-8);
        assert!(
            (f64::from(p[i]) - expected).abs() <= 1e-6 * (expected.abs() + 0.01),
            "{i}"
        );
    }
}

#[test]
fn sgd_nesterov_matches_f64_reference() {
    let n = 300;
    let (mut p, g) = (data(n, 3), data(n, 4));
    let mut b = vec![0.0; n];
    let p0 = p.clone();
    let hyper = SgdHyper {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: true,
    };
    sgd_step(
        vec![SgdSlot {
            param: &mut p,
            grad: &g,
            momentum_buffer: &mut b,
        }],
        &hyper,
    )
    .unwrap();
    for i in 0..n {
        let gd = f64::from(g[i]) + 0.01 * f64::from(p0[i]);
        let expected = f64::from(p0[i]) - 0.1 * (gd + 0.9 * gd);
        assert!((f64::from(p[i]) - expected).abs() <= 1e-6, "{i}");
    }
}

#[test]
fn every_simd_path_gives_identical_bits() {
    let n = 70_001;
    let g = data(n, 5);
    let mut results = Vec::new();
    for path in common::simd_paths() {
        simd::force(path).unwrap();
        let (mut p, mut m, mut v) = (data(n, 6), vec![0.0; n], vec![0.0; n]);
        for t in 1..4 {
            adam_once(&mut p, &g, &mut m, &mut v, &adamw(t)).unwrap();
        }
        let norm = global_norm(&[&p]);
        results.push((p, norm));
    }
    simd::force(simd::detect()).unwrap();
    for r in &results[1..] {
        assert_eq!(r.0, results[0].0);
        assert_eq!(r.1.to_bits(), results[0].1.to_bits());
    }
}

#[test]
fn errors_are_reported_before_any_write() {
    let (mut p, g) = (vec![1.0f32; 4], vec![1.0f32; 3]);
    let (mut m, mut v) = (vec![0.0; 4], vec![0.0; 4]);
    let err = adam_once(&mut p, &g, &mut m, &mut v, &adamw(1)).unwrap_err();
    assert!(matches!(err, KernelError::Shape(_)));
    assert_eq!(p, vec![1.0; 4]);

    let bad = AdamHyper {
        beta1: 1.0,
        ..adamw(1)
    };
    let g4 = vec![1.0f32; 4];
    let err = adam_once(&mut p, &g4, &mut m, &mut v, &bad).unwrap_err();
    assert_eq!(err, KernelError::invalid("beta1 must be in [0, 1), got 1"));
    let no_step = AdamHyper {
        step: 0,
        ..adamw(1)
    };
    assert!(matches!(
        adam_step(Vec::new(), &no_step),
        Err(KernelError::InvalidArgument(_))
    ));
    let nesterov = SgdHyper {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: true,
    };
    assert!(matches!(
        sgd_step(Vec::new(), &nesterov),
        Err(KernelError::InvalidArgument(_))
    ));
    assert!(matches!(
        clip_grad_norm(&mut [], f64::NAN, false),
        Err(KernelError::InvalidArgument(_))
    ));
}

#[test]
fn clip_scales_to_max_norm() {
    let mut a = vec![3.0f32, 0.0];
    let mut b = vec![4.0f32];
    let norm = clip_grad_norm(&mut [&mut a, &mut b], 1.0, false).unwrap();
    assert_eq!(norm, 5.0);
    assert!((a[0] - 0.6).abs() < 1e-6 && (b[0] - 0.8).abs() < 1e-6);
    let mut c = vec![f32::NAN];
    assert!(matches!(
        clip_grad_norm(&mut [&mut c], 1.0, true),
        Err(KernelError::InvalidArgument(_))
    ));
}
