//! InfoNCE per anchor: value against an independent f64 formula, gradients against central
//! finite differences of that formula, and the edge cases of the definition.

mod common;

use common::data;
use ruvector_kernels::cancel::{Cancel, NEVER};
use ruvector_kernels::error::KernelError;
use ruvector_kernels::loss::local_contrastive::{local_contrastive, MarginInputs, Negatives};
use ruvector_kernels::loss::{
    info_nce_per_anchor, GradScale, LossGrads, PerAnchorDims, PerAnchorInputs,
};

/// The definition, in f64, written independently of the kernel.
fn reference(a: &[f64], p: &[f64], negs: &[Vec<f64>], t: f64) -> f64 {
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-8);
    let cos = |x: &[f64], y: &[f64]| {
        x.iter().zip(y).map(|(u, v)| u * v).sum::<f64>() / (norm(x) * norm(y))
    };
    let mut logits = vec![cos(a, p) / t];
    logits.extend(negs.iter().map(|n| cos(a, n) / t));
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + logits.iter().map(|z| (z - m).exp()).sum::<f64>().ln() - logits[0]
}

struct Case {
    a: Vec<f32>,
    p: Vec<f32>,
    n: Vec<f32>,
    dims: PerAnchorDims,
}

fn run(c: &Case, t: f64, scale: f32) -> (Vec<f64>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let PerAnchorDims {
        batch,
        negatives,
        dim,
    } = c.dims;
    let mut losses = vec![0.0; batch];
    let (mut ga, mut gp, mut gn) = (
        vec![0.0; batch * dim],
        vec![0.0; batch * dim],
        vec![0.0; batch * negatives * dim],
    );
    let inputs = PerAnchorInputs {
        anchors: &c.a,
        positives: &c.p,
        negatives: &c.n,
        dims: c.dims,
        cancel: &NEVER,
    };
    info_nce_per_anchor(
        &inputs,
        t,
        &mut losses,
        Some(LossGrads {
            anchors: &mut ga,
            positives: &mut gp,
            negatives: Some(&mut gn),
            scale: GradScale::uniform(scale),
        }),
    )
    .unwrap();
    (losses, ga, gp, gn)
}

fn row_f64(c: &Case, i: usize) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let PerAnchorDims { negatives, dim, .. } = c.dims;
    let f = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    let a = f(&c.a[i * dim..(i + 1) * dim]);
    let p = f(&c.p[i * dim..(i + 1) * dim]);
    let negs = (0..negatives)
        .map(|k| f(&c.n[(i * negatives + k) * dim..(i * negatives + k + 1) * dim]))
        .collect();
    (a, p, negs)
}

#[test]
fn value_and_gradients_match_f64_definition() {
    let dims = PerAnchorDims {
        batch: 5,
        negatives: 7,
        dim: 13,
    };
    let c = Case {
        a: data(5 * 13, 1),
        p: data(5 * 13, 2),
        n: data(5 * 7 * 13, 3),
        dims,
    };
    for t in [0.07, 0.5, 0.01] {
        let (losses, ga, gp, gn) = run(&c, t, 0.5);
        for i in 0..dims.batch {
            let (a, p, negs) = row_f64(&c, i);
            let expected = reference(&a, &p, &negs, t);
            assert!(
                (losses[i] - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                "t={t} row {i}"
            );
            // Central differences of the f64 definition, against the kernel's gradient.
            let h = 1e-6;
            // d loss / d x[j] of the reference, scaled like the kernel's gradient (scale 0.5).
            let fd = |x: &[f64], j: usize, eval: &dyn Fn(&[f64]) -> f64| {
                let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
                plus[j] += h;
                minus[j] -= h;
                0.5 * (eval(&plus) - eval(&minus)) / (2.0 * h)
            };
            let fd_check = |analytic: f32, fd: f64, what: &str| {
                // f32 round-off of the kernel, relative to the gradient's size (up to 1/t).
                let tol = 1e-4 * (1.0 + fd.abs());
                assert!(
                    (f64::from(analytic) - fd).abs() <= tol.max(1e-5),
                    "{what}: {analytic} vs {fd}, t={t}"
                );
            };
            for j in 0..dims.dim {
                let anchor_fd = fd(&a, j, &|x| reference(x, &p, &negs, t));
                fd_check(ga[i * dims.dim + j], anchor_fd, "anchor");
                let positive_fd = fd(&p, j, &|x| reference(&a, x, &negs, t));
                fd_check(gp[i * dims.dim + j], positive_fd, "positive");
                for k in 0..dims.negatives {
                    let negative_fd = fd(&negs[k], j, &|x| {
                        let mut moved = negs.clone();
                        moved[k] = x.to_vec();
                        reference(&a, &p, &moved, t)
                    });
                    let idx = (i * dims.negatives + k) * dims.dim + j;
                    fd_check(gn[idx], negative_fd, "negative");
                }
            }
        }
    }
}

#[test]
fn edge_cases_stay_finite() {
    // Zero vectors (clamped norms), identical vectors, D = 1, N = 0, temperature below the clamp.
    let dims = PerAnchorDims {
        batch: 3,
        negatives: 1,
        dim: 1,
    };
    let c = Case {
        a: vec![0.0, 1.0, 2.0],
        p: vec![1.0, 1.0, -2.0],
        n: vec![1.0, 1.0, 0.0],
        dims,
    };
    let (losses, ga, gp, gn) = run(&c, 0.001, 1.0);
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(ga.iter().chain(&gp).chain(&gn).all(|g| g.is_finite()));
    // Row 1: positive and negative identical to the anchor: loss = ln 2.
    assert!((losses[1] - 2f64.ln()).abs() < 1e-6);
    let none = PerAnchorDims {
        batch: 2,
        negatives: 0,
        dim: 4,
    };
    let c = Case {
        a: data(8, 4),
        p: data(8, 5),
        n: vec![],
        dims: none,
    };
    let (losses, ga, _, _) = run(&c, 0.1, 1.0);
    assert!(losses.iter().all(|&l| l.abs() < 1e-12));
    assert!(ga.iter().all(|&g| g.abs() < 1e-6));
}

#[test]
fn errors() {
    let dims = PerAnchorDims {
        batch: 1,
        negatives: 1,
        dim: 2,
    };
    // (negatives' length, temperature, accepted): a wrong length, t = 0, t = NaN, then valid.
    for (negatives, temperature, ok) in [
        (3, 0.1, false),
        (2, 0.0, false),
        (2, f64::NAN, false),
        (2, 0.1, true),
    ] {
        let mut losses = vec![0.0; 1];
        let negs = vec![1.0; negatives];
        let inputs = PerAnchorInputs {
            anchors: &[1.0; 2],
            positives: &[1.0; 2],
            negatives: &negs,
            dims,
            cancel: &NEVER,
        };
        let result = info_nce_per_anchor(&inputs, temperature, &mut losses, None);
        assert_eq!(
            result.is_ok(),
            ok,
            "negatives {negatives}, temperature {temperature}"
        );
    }
}

/// A stop requested before the call: both row-parallel losses skip their rows and say
/// `Cancelled` (the binding then drops their outputs), with and without gradients.
#[test]
fn per_anchor_and_margin_losses_stop_when_cancelled() {
    let cancel = Cancel::new();
    cancel.request();
    let (batch, negatives, dim) = (3, 2, 4);
    let a = vec![1.0f32; batch * dim];
    let n = vec![0.5f32; batch * negatives * dim];
    let dims = PerAnchorDims {
        batch,
        negatives,
        dim,
    };
    let mut losses = vec![0.0; batch];
    let inputs = PerAnchorInputs {
        anchors: &a,
        positives: &a,
        negatives: &n,
        dims,
        cancel: &cancel,
    };
    let result = info_nce_per_anchor(&inputs, 0.1, &mut losses, None);
    assert!(matches!(result, Err(KernelError::Cancelled)), "{result:?}");
    let inputs = MarginInputs {
        anchors: &a,
        positives: &a,
        negatives: Negatives::PerAnchor(&n),
        batch,
        count: negatives,
        dim,
        cancel: &cancel,
    };
    let mut terms = vec![0.0; batch * negatives];
    let (mut ga, mut gp, mut gn) = (vec![0.0; a.len()], vec![0.0; a.len()], vec![0.0; n.len()]);
    let grads = LossGrads {
        anchors: &mut ga,
        positives: &mut gp,
        negatives: Some(&mut gn),
        scale: GradScale::uniform(1.0),
    };
    let result = local_contrastive(&inputs, 1.0, &mut terms, Some(grads));
    assert!(matches!(result, Err(KernelError::Cancelled)), "{result:?}");
    // The same call with a token nobody set runs.
    let inputs = MarginInputs {
        cancel: &NEVER,
        ..inputs
    };
    local_contrastive(&inputs, 1.0, &mut terms, None).unwrap();
}
