//! Run-time choice of the instruction set, so one portable wheel is fast everywhere.
//!
//! Kernels are written once as plain element loops (`#[inline(always)]`) and instantiated inside
//! functions compiled with `#[target_feature]` for AVX-512 and AVX2+FMA; LLVM vectorises each copy
//! for its width. These element-loop kernels never call `mul_add`, and Rust never contracts
//! `a * b + c` on its own, so they round identically on every path: bit-for-bit the same results
//! whichever runs. The GEMM micro-kernels (`gemm/micro.rs`) are the exception: their AVX2 and
//! AVX-512 tiles use fused multiply-adds (one rounding per product-sum, the portable loop two) and
//! different tile shapes, so GEMM-based results (pooled InfoNCE, mining scores) agree across paths
//! to float32 round-off, not bit for bit; the tests bound that difference.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{KernelError, KernelResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum SimdPath {
    Baseline = 1,
    Avx2 = 2,
    Avx512 = 3,
}

impl SimdPath {
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Baseline => "baseline",
            SimdPath::Avx2 => "avx2+fma",
            SimdPath::Avx512 => "avx512",
        }
    }

    pub fn from_name(name: &str) -> KernelResult<Self> {
        match name {
            "baseline" => Ok(SimdPath::Baseline),
            "avx2" | "avx2+fma" => Ok(SimdPath::Avx2),
            "avx512" => Ok(SimdPath::Avx512),
            other => Err(KernelError::invalid(format!(
                "unknown SIMD path {other:?}; expected 'baseline', 'avx2' or 'avx512'"
            ))),
        }
    }
}

/// Independent accumulators in the reduction kernels (dot products, sums of squares): enough
/// to fill an AVX-512 register pair, so the compiler can vectorise across them without ever
/// reordering one accumulator's additions.
pub const LANES: usize = 16;

/// Adds the accumulators pairwise in a fixed order, so a reduction gives the same bits on every
/// path.
#[inline(always)]
pub fn pairwise_sum<T: Copy + std::ops::AddAssign>(mut acc: [T; LANES]) -> T {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            let upper = acc[i + width];
            acc[i] += upper;
        }
    }
    acc[0]
}

/// 0 = not detected yet; otherwise a `SimdPath` discriminant.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The best path this CPU supports.
pub fn detect() -> SimdPath {
    #[cfg(x86_simd)]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdPath::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdPath::Avx2;
        }
    }
    SimdPath::Baseline
}

/// The path kernels use now: the best one detected, unless `force` chose another.
pub fn active() -> SimdPath {
    match ACTIVE.load(Ordering::Relaxed) {
        1 => SimdPath::Baseline,
        2 => SimdPath::Avx2,
        3 => SimdPath::Avx512,
        _ => {
            let best = detect();
            ACTIVE.store(best as u8, Ordering::Relaxed);
            best
        }
    }
}

/// Choose a path (for tests and benchmarks). A path the CPU lacks is refused, never run.
pub fn force(path: SimdPath) -> KernelResult<()> {
    if path > detect() {
        return Err(KernelError::invalid(format!(
            "this CPU does not support the {} path (best: {})",
            path.name(),
            detect().name()
        )));
    }
    ACTIVE.store(path as u8, Ordering::Relaxed);
    Ok(())
}

/// Defines `$name(args)` that runs the `#[inline(always)]` body `$generic` compiled for the active
/// path. The body must be safe for any input; only the instruction set differs.
#[macro_export]
macro_rules! dispatch_simd {
    ($vis:vis fn $name:ident $(<$(const $cg:ident: $ct:ty),*>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $vis fn $name $(<$(const $cg: $ct),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(x86_simd)]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn avx512 $(<$(const $cg: $ct),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $generic $(::<$($cg),*>)? ($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2 $(<$(const $cg: $ct),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $generic $(::<$($cg),*>)? ($($arg),*)
                }
                match $crate::simd::active() {
                    // SAFETY: `active()` only returns a path that `detect()` found on this CPU.
                    $crate::simd::SimdPath::Avx512 => return unsafe { avx512 $(::<$($cg),*>)? ($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::SimdPath::Avx2 => return unsafe { avx2 $(::<$($cg),*>)? ($($arg),*) },
                    $crate::simd::SimdPath::Baseline => {}
                }
            }
            $generic $(::<$($cg),*>)? ($($arg),*)
        }
    };
}
