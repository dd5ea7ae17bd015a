//! Offering keys to a row's top-k list, and the bound the tasks of one row share: blocks of keys
//! that cannot beat the row's current k-th best are skipped after one vectorised maximum.

use std::sync::atomic::{AtomicU32, Ordering};

use super::TopK;
use crate::dispatch_simd;
use crate::vecops::max_ignoring_nan;

/// A lower bound on a row's final k-th best key, shared by the tasks working on that row. It
/// only ever prunes keys strictly below the final k-th best, so the result does not depend on
/// which task raised it first (only the amount of work does).
pub(super) struct SharedBound(AtomicU32);

impl SharedBound {
    pub(super) fn new() -> Self {
        Self(AtomicU32::new(order_bits(f32::NEG_INFINITY)))
    }

    fn get(&self) -> f32 {
        from_order_bits(self.0.load(Ordering::Relaxed))
    }

    /// Raises the bound to `value` (a full list's k-th best key) if that is higher.
    fn raise(&self, value: f32) {
        if value > f32::NEG_INFINITY && value < f32::INFINITY {
            self.0.fetch_max(order_bits(value), Ordering::Relaxed);
        }
    }
}

/// Maps a non-NaN f32 to a u32 with the same order (so `fetch_max` compares floats).
fn order_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn from_order_bits(u: u32) -> f32 {
    if u & 0x8000_0000 != 0 {
        f32::from_bits(u & 0x7fff_ffff)
    } else {
        f32::from_bits(!u)
    }
}

/// Keys per block in `offer`: one vectorised maximum decides whether a block can hold anything
/// that beats the row's current k-th best.
const OFFER_BLOCK: usize = 64;

/// Offers `keys[j]` (candidate `j0 + j`) to `top`, skipping ineligible candidates, -inf and NaN.
/// Once `top` is full almost every block's maximum is below its threshold, so the common case
/// costs one vectorised pass over the keys.
pub(super) fn offer(
    top: &mut TopK,
    bound: &SharedBound,
    keys: &[f32],
    j0: usize,
    eligible: impl Fn(usize) -> bool,
) {
    let mut over = 0u64;
    for (b, block) in keys.chunks(OFFER_BLOCK).enumerate() {
        let threshold = top.threshold();
        if max_ignoring_nan(block) < threshold.max(bound.get()) {
            continue;
        }
        let first = j0 + b * OFFER_BLOCK;
        offer_block(
            top,
            block,
            threshold,
            first,
            f32::INFINITY,
            &mut over,
            &eligible,
        );
        bound.raise(top.threshold());
    }
}

/// A ceiling on the keys `offer_cosines` keeps: an eligible key above `value` is counted in
/// `over` instead of offered (+inf: no ceiling).
pub(super) struct Ceiling<'a> {
    pub(super) value: f32,
    pub(super) over: &'a mut u64,
}

/// `offer` for cosine keys `dots[j] * inv_a * inv_c[j]`, computed only in blocks whose largest
/// key can enter. Keys above the ceiling are counted, not offered: the list's threshold never
/// exceeds the ceiling, so a block holding such a key is never skipped.
#[allow(clippy::too_many_arguments)]
pub(super) fn offer_cosines(
    top: &mut TopK,
    bound: &SharedBound,
    dots: &[f32],
    inv_c: &[f32],
    inv_a: f32,
    j0: usize,
    ceiling: Ceiling<'_>,
    eligible: impl Fn(usize) -> bool,
) {
    let mut keys = [0.0f32; OFFER_BLOCK];
    for (b, (block, inv)) in dots
        .chunks(OFFER_BLOCK)
        .zip(inv_c.chunks(OFFER_BLOCK))
        .enumerate()
    {
        let threshold = top.threshold();
        if block_max_cosine(block, inv, inv_a) < threshold.max(bound.get()) {
            continue;
        }
        let keys = &mut keys[..block.len()];
        cosine_keys(keys, block, inv, inv_a);
        let first = j0 + b * OFFER_BLOCK;
        offer_block(
            top,
            keys,
            threshold,
            first,
            ceiling.value,
            ceiling.over,
            &eligible,
        );
        bound.raise(top.threshold());
    }
}

/// Offers the keys of one block that reach `threshold` (found with one vectorised comparison
/// into a bit mask; usually only a few bits are set); eligible keys above `ceiling` are counted
/// in `over` instead.
fn offer_block(
    top: &mut TopK,
    keys: &[f32],
    threshold: f32,
    first_index: usize,
    ceiling: f32,
    over: &mut u64,
    eligible: &impl Fn(usize) -> bool,
) {
    let mut mask = at_least(keys, threshold);
    while mask != 0 {
        let j = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let key = keys[j];
        let index = first_index + j;
        if key > ceiling {
            if eligible(index) {
                *over += 1;
            }
        } else if key > f32::NEG_INFINITY && key >= top.threshold() && eligible(index) {
            top.push(key, index as u32);
        }
    }
}

/// Bit j set where `keys[j] >= threshold` (at most 64 keys; NaN never sets a bit).
#[inline(always)]
fn at_least_generic(keys: &[f32], threshold: f32) -> u64 {
    let mut mask = 0u64;
    for (j, &k) in keys.iter().enumerate().take(64) {
        mask |= u64::from(k >= threshold) << j;
    }
    mask
}

dispatch_simd!(fn at_least(keys: &[f32], threshold: f32) -> u64 => at_least_generic);

/// Largest of `dots[j] * inv_a * inv_c[j]` (rounded exactly as in `offer_cosines`).
#[inline(always)]
fn block_max_cosine_generic(dots: &[f32], inv_c: &[f32], inv_a: f32) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut ds = dots.chunks_exact(16);
    let mut is = inv_c.chunks_exact(16);
    for (d, i) in (&mut ds).zip(&mut is) {
        for ((a, &dp), &ic) in acc.iter_mut().zip(d).zip(i) {
            *a = a.max(dp * inv_a * ic);
        }
    }
    for ((a, &dp), &ic) in acc.iter_mut().zip(ds.remainder()).zip(is.remainder()) {
        *a = a.max(dp * inv_a * ic);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

dispatch_simd!(fn block_max_cosine(dots: &[f32], inv_c: &[f32], inv_a: f32) -> f32 => block_max_cosine_generic);

/// `keys[j] = dots[j] * inv_a * inv_c[j]`: the cosine keys of one block.
#[inline(always)]
fn cosine_keys_generic(keys: &mut [f32], dots: &[f32], inv_c: &[f32], inv_a: f32) {
    for ((key, &dp), &ic) in keys.iter_mut().zip(dots).zip(inv_c) {
        *key = dp * inv_a * ic;
    }
}

dispatch_simd!(pub(super) fn cosine_keys(keys: &mut [f32], dots: &[f32], inv_c: &[f32], inv_a: f32) => cosine_keys_generic);
