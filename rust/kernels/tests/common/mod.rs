//! Helpers shared by the kernel test files.

/// A small deterministic generator (xorshift) of values in [-1, 1), so the tests need no extra
/// crate and every run sees the same inputs.
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The SIMD paths this machine runs, in order. Where the x86 paths are compiled (`x86_simd`: x86-64
/// without `portable-only`) there are at least two, asserted: a comparison of every path that
/// meets only one compares it with itself and proves nothing.
#[allow(dead_code)] // not every test file compares paths
pub fn simd_paths() -> Vec<ruvector_kernels::simd::SimdPath> {
    use ruvector_kernels::simd::{detect, SimdPath};
    let paths: Vec<SimdPath> = [SimdPath::Baseline, SimdPath::Avx2, SimdPath::Avx512]
        .into_iter()
        .filter(|&p| p <= detect())
        .collect();
    #[cfg(x86_simd)]
    assert!(
        paths.len() >= 2,
        "only {paths:?} on this x86-64 machine: the path comparisons need two"
    );
    paths
}
