//! The register-tile micro-kernels of the blocked GEMM: portable loops, AVX2+FMA 6x16 and
//! AVX-512 4x64 (x86-64 only, chosen at run time by `simd::active`).

use super::MicroKernel;

/// Plain loops for CPUs without AVX2.
pub(crate) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 4;
    const NR: usize = 8;
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        let mut t = [[0.0f32; 8]; 4];
        for p in 0..kc {
            for (r, row) in t.iter_mut().enumerate() {
                // SAFETY: p < kc, r < MR, q < NR: inside the packed panels (contract above).
                let av = unsafe { *a.add(p * 4 + r) };
                for (q, v) in row.iter_mut().enumerate() {
                    *v += av * unsafe { *b.add(p * 8 + q) };
                }
            }
        }
        for (r, row) in t.iter().enumerate() {
            for (q, &v) in row.iter().enumerate() {
                // SAFETY: r < MR, q < NR: inside the C tile (contract above).
                let dst = unsafe { &mut *c.add(r * ldc + q) };
                *dst = if acc { *dst + v } else { v };
            }
        }
    }
}

#[cfg(x86_simd)]
pub(crate) struct Avx512;

/// AVX-512 tile: `AVX512_MR` rows by `AVX512_NV` vectors of 16 columns.
#[cfg(x86_simd)]
const AVX512_MR: usize = 4;
#[cfg(x86_simd)]
const AVX512_NV: usize = 4;

#[cfg(x86_simd)]
impl MicroKernel for Avx512 {
    const MR: usize = AVX512_MR;
    const NR: usize = 16 * AVX512_NV;
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        // SAFETY: forwarded contract; the dispatcher checked AVX-512F.
        unsafe { avx512_tile::<AVX512_MR, AVX512_NV>(kc, a, b, c, ldc, acc) }
    }
}

/// `MR x NV` accumulators (16 of the 32 registers for 4 x 4): each step loads `NV` vectors of B
/// and broadcasts `MR` values of A, so loads per FMA stay low and the FMA latency is hidden.
#[cfg(x86_simd)]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_tile<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    use std::arch::x86_64::*;
    let mut t = [[_mm512_setzero_ps(); NV]; MR];
    for p in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (h, v) in bv.iter_mut().enumerate() {
            // SAFETY: p < kc; the B panel holds kc * 16 * NV floats.
            *v = unsafe { _mm512_loadu_ps(b.add((p * NV + h) * 16)) };
        }
        for (r, row) in t.iter_mut().enumerate() {
            // SAFETY: p < kc, r < MR; the A panel holds kc * MR floats.
            let av = _mm512_set1_ps(unsafe { *a.add(p * MR + r) });
            for (x, &bh) in row.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(av, bh, *x);
            }
        }
    }
    for (r, row) in t.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            // SAFETY: the C tile is MR x 16 NV with row stride ldc.
            unsafe {
                let dst = c.add(r * ldc + h * 16);
                let v = if acc {
                    _mm512_add_ps(_mm512_loadu_ps(dst), v)
                } else {
                    v
                };
                _mm512_storeu_ps(dst, v);
            }
        }
    }
}

#[cfg(x86_simd)]
pub(crate) struct Avx2;

#[cfg(x86_simd)]
impl MicroKernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        // SAFETY: forwarded contract; the dispatcher checked AVX2 and FMA.
        unsafe { avx2_tile(kc, a, b, c, ldc, acc) }
    }
}

#[cfg(x86_simd)]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    use std::arch::x86_64::*;
    let mut t = [[_mm256_setzero_ps(); 2]; 6];
    for p in 0..kc {
        // SAFETY: p < kc; panels hold kc * 6 and kc * 16 floats.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(b.add(p * 16)),
                _mm256_loadu_ps(b.add(p * 16 + 8)),
            )
        };
        for (r, row) in t.iter_mut().enumerate() {
            let av = _mm256_set1_ps(unsafe { *a.add(p * 6 + r) });
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in t.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            // SAFETY: the C tile is 6 x 16 with row stride ldc.
            unsafe {
                let dst = c.add(r * ldc + h * 8);
                let v = if acc {
                    _mm256_add_ps(_mm256_loadu_ps(dst), v)
                } else {
                    v
                };
                _mm256_storeu_ps(dst, v);
            }
        }
    }
}
