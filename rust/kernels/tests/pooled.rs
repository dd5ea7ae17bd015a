//! Shared-pool and in-batch InfoNCE at the kernel level: the pooled kernel against the per-anchor
//! kernel run on the explicitly gathered negatives, and the buffer cache it draws from.

mod common;

use common::data;
use ruvector_kernels::cancel::{Cancel, NEVER};
use ruvector_kernels::loss::info_nce_pooled::{info_nce_pooled, PooledInputs};
use ruvector_kernels::loss::{
    info_nce_per_anchor, GradScale, LossGrads, PerAnchorDims, PerAnchorInputs,
};
use ruvector_kernels::scratch;
use ruvector_kernels::KernelError;

/// `a` equals `b` to float32 round-off: each element is a sum of about `terms` rounded products,
/// so the two summation orders differ by at most `4 terms eps` of the largest element (the old
/// absolute 1e-3 / 1e-2 passed gradients of size 1-10 off by a tenth of a percent).
fn close(a: &[f32], b: &[f32], terms: usize) {
    assert_eq!(a.len(), b.len());
    let largest = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(largest > 0.0, "comparing zeros proves nothing");
    let tolerance = 4.0 * terms as f32 * f32::EPSILON * largest;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tolerance,
            "element {i}: {x} vs {y} (tolerance {tolerance})"
        );
    }
}

#[test]
fn shared_pool_equals_per_anchor_with_the_pool_repeated() {
    let (b, n, d, t) = (37, 11, 19, 0.1);
    let (a, p, pool) = (data(b * d, 1), data(b * d, 2), data(n * d, 3));
    let repeated: Vec<f32> = (0..b).flat_map(|_| pool.iter().copied()).collect();
    let mut l1 = vec![0.0; b];
    let (mut ga1, mut gp1, mut gn1) = (vec![0.0; b * d], vec![0.0; b * d], vec![0.0; n * d]);
    let inputs = PooledInputs {
        anchors: &a,
        positives: &p,
        pool: Some(&pool),
        batch: b,
        pool_size: n,
        dim: d,
        cancel: &NEVER,
    };
    let grads = LossGrads {
        anchors: &mut ga1,
        positives: &mut gp1,
        negatives: Some(&mut gn1),
        scale: GradScale::uniform(1.0),
    };
    info_nce_pooled(&inputs, t, &mut l1, Some(grads)).unwrap();
    let mut l2 = vec![0.0; b];
    let (mut ga2, mut gp2, mut gn2) = (vec![0.0; b * d], vec![0.0; b * d], vec![0.0; b * n * d]);
    let dims = PerAnchorDims {
        batch: b,
        negatives: n,
        dim: d,
    };
    let grads = LossGrads {
        anchors: &mut ga2,
        positives: &mut gp2,
        negatives: Some(&mut gn2),
        scale: GradScale::uniform(1.0),
    };
    let inputs = PerAnchorInputs {
        anchors: &a,
        positives: &p,
        negatives: &repeated,
        dims,
        cancel: &NEVER,
    };
    info_nce_per_anchor(&inputs, t, &mut l2, Some(grads)).unwrap();
    // Logits of size up to 1/t, summed over the pool and the dimension.
    let terms = n + d + 2;
    for (x, y) in l1.iter().zip(&l2) {
        let tolerance = 4.0 * terms as f64 * f64::from(f32::EPSILON) * (y.abs() + 1.0 / t);
        assert!((x - y).abs() <= tolerance, "{x} vs {y}");
    }
    close(&ga1, &ga2, terms);
    close(&gp1, &gp2, terms);
    // The pool's gradient is the sum over anchors of the per-anchor negatives' gradients.
    let mut summed = vec![0.0f32; n * d];
    for row in gn2.chunks_exact(n * d) {
        for (s, v) in summed.iter_mut().zip(row) {
            *s += v;
        }
    }
    close(&gn1, &summed, b + terms); // and summed over the anchors
}

#[test]
fn rejects_bad_sizes_and_temperatures() {
    let x = data(12, 1);
    let mut l = vec![0.0; 3];
    let ok = PooledInputs {
        anchors: &x,
        positives: &x,
        pool: None,
        batch: 3,
        pool_size: 0,
        dim: 4,
        cancel: &NEVER,
    };
    assert!(info_nce_pooled(&ok, 0.1, &mut l, None).is_ok());
    // Each refusal is of its own kind (any error would not do: a shape error for a bad
    // temperature would reach Python as the wrong exception).
    let invalid = |r| matches!(r, Err(KernelError::InvalidArgument(_)));
    let shape = |r| matches!(r, Err(KernelError::Shape(_)));
    assert!(invalid(info_nce_pooled(&ok, 0.0, &mut l, None)));
    assert!(invalid(info_nce_pooled(&ok, f64::NAN, &mut l, None)));
    let short = PooledInputs { batch: 4, ..ok };
    assert!(shape(info_nce_pooled(&short, 0.1, &mut l, None)));
    let empty = PooledInputs {
        pool: Some(&[]),
        ..ok
    };
    assert!(shape(info_nce_pooled(&empty, 0.1, &mut l, None)));
    let stop = Cancel::new();
    stop.request();
    let cancelled = PooledInputs {
        cancel: &stop,
        ..ok
    };
    assert_eq!(
        info_nce_pooled(&cancelled, 0.1, &mut l, None),
        Err(KernelError::Cancelled)
    );
}

#[test]
fn the_buffer_cache_hands_out_distinct_buffers_and_reuses_freed_ones() {
    let len = scratch::MIN_FLOATS * 2;
    let mut first = scratch::take(len);
    let mut second = scratch::take(len);
    assert_eq!((first.len(), second.len()), (len, len));
    assert_ne!(first.as_ptr(), second.as_ptr());
    first[0] = 1.0;
    second[0] = 2.0;
    assert_eq!(first[0], 1.0);
    let address = first.as_ptr();
    scratch::give(first);
    let again = scratch::take(len - 5);
    assert_eq!(
        again.as_ptr(),
        address,
        "a freed buffer of the right size is reused"
    );
    assert_eq!(again.len(), len - 5);
    assert!(scratch::take_zeroed(len).iter().all(|&v| v == 0.0));
    // Small buffers are not cached; oversize requests are fresh.
    scratch::give(vec![0.0; 10]);
    assert!(scratch::take(len * 4).len() == len * 4);
    scratch::release();
    assert_eq!(scratch::cached_bytes(), 0);
}
