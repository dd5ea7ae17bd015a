//! `cargo run --release -p ruvector-gemm-bench --bin peaks`: the single-core peak rates of the
//! multiply-add instructions an exact miner could be built on, each measured by a throughput loop
//! of independent accumulator chains (long enough to hide every latency): float32 FMA
//! (`vfmadd231ps`) and int8 dot products (`vpdpbusd`, u8 x s8 into int32) at 256 and 512 bits,
//! where the CPU has them. Operations count a multiply and an add as two, so a float32 FMA lane
//! and an int8 product are comparable: the ratio is what an int8 prefilter can gain at most.

use std::time::Instant;

/// Independent accumulators per loop: more than latency x issue width on current x86 cores.
const CHAINS: usize = 12;
const ITERATIONS: u64 = 50_000_000;

fn best_of<F: FnMut() -> f64>(mut f: F) -> f64 {
    (0..5).map(|_| f()).fold(0.0, f64::max)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CHAINS, ITERATIONS};
    use std::arch::x86_64::*;
    use std::hint::black_box;
    use std::time::Instant;

    macro_rules! throughput {
        ($name:ident, $feature:literal, $ty:ty, $zero:expr, $seed:expr, $op:expr, $fold:expr, $ops_per_instr:expr) => {
            #[target_feature(enable = $feature)]
            pub unsafe fn $name() -> f64 {
                let mut acc: [$ty; CHAINS] = [$zero; CHAINS];
                let (a, b) = $seed;
                let (a, b) = (black_box(a), black_box(b));
                let start = Instant::now();
                for _ in 0..ITERATIONS {
                    for x in acc.iter_mut() {
                        *x = $op(*x, a, b);
                    }
                }
                let seconds = start.elapsed().as_secs_f64();
                black_box($fold(acc));
                (ITERATIONS * CHAINS as u64) as f64 * $ops_per_instr / seconds / 1e9
            }
        };
    }

    throughput!(
        fma256,
        "avx2,fma",
        __m256,
        _mm256_setzero_ps(),
        (_mm256_set1_ps(1.0000001), _mm256_set1_ps(0.9999999)),
        |x, a, b| _mm256_fmadd_ps(a, b, x),
        |acc: [__m256; CHAINS]| acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v)),
        16.0
    );
    throughput!(
        fma512,
        "avx512f",
        __m512,
        _mm512_setzero_ps(),
        (_mm512_set1_ps(1.0000001), _mm512_set1_ps(0.9999999)),
        |x, a, b| _mm512_fmadd_ps(a, b, x),
        |acc: [__m512; CHAINS]| acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)),
        32.0
    );
    throughput!(
        vnni512,
        "avx512vnni,avx512f",
        __m512i,
        _mm512_setzero_si512(),
        (_mm512_set1_epi8(3), _mm512_set1_epi8(-2)),
        |x, a, b| _mm512_dpbusd_epi32(x, a, b),
        |acc: [__m512i; CHAINS]| acc
            .iter()
            .fold(_mm512_setzero_si512(), |s, &v| _mm512_add_epi32(s, v)),
        128.0
    );
    throughput!(
        vnni256,
        "avx512vnni,avx512vl,avx512f",
        __m256i,
        _mm256_setzero_si256(),
        (_mm256_set1_epi8(3), _mm256_set1_epi8(-2)),
        |x, a, b| _mm256_dpbusd_epi32(x, a, b),
        |acc: [__m256i; CHAINS]| acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, &v| _mm256_add_epi32(s, v)),
        64.0
    );
    throughput!(
        avxvnni256,
        "avxvnni,avx2",
        __m256i,
        _mm256_setzero_si256(),
        (_mm256_set1_epi8(3), _mm256_set1_epi8(-2)),
        |x, a, b| _mm256_dpbusd_avx_epi32(x, a, b),
        |acc: [__m256i; CHAINS]| acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, &v| _mm256_add_epi32(s, v)),
        64.0
    );
}

fn main() {
    let started = Instant::now();
    println!("single core, {CHAINS} independent chains, {ITERATIONS} iterations, best of 5");
    #[cfg(target_arch = "x86_64")]
    {
        let has = |f: &str| match f {
            "fma" => is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2"),
            "avx512f" => is_x86_feature_detected!("avx512f"),
            "avx512vnni" => {
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
            }
            "avxvnni" => is_x86_feature_detected!("avxvnni"),
            _ => false,
        };
        let mut fp32_best = 0.0f64;
        let mut rows: Vec<(&str, f64)> = Vec::new();
        // SAFETY (every call below): the instruction set was detected on this CPU just above.
        if has("fma") {
            let r = best_of(|| unsafe { x86::fma256() });
            fp32_best = fp32_best.max(r);
            rows.push(("float32 FMA, 256-bit (vfmadd231ps ymm)", r));
        }
        if has("avx512f") {
            let r = best_of(|| unsafe { x86::fma512() });
            fp32_best = fp32_best.max(r);
            rows.push(("float32 FMA, 512-bit (vfmadd231ps zmm)", r));
        }
        if has("avx512vnni") {
            rows.push((
                "int8 dot, 512-bit (vpdpbusd zmm)",
                best_of(|| unsafe { x86::vnni512() }),
            ));
            rows.push((
                "int8 dot, 256-bit (vpdpbusd ymm, EVEX)",
                best_of(|| unsafe { x86::vnni256() }),
            ));
        }
        if has("avxvnni") {
            rows.push((
                "int8 dot, 256-bit (AVX-VNNI, VEX)",
                best_of(|| unsafe { x86::avxvnni256() }),
            ));
        }
        for (name, rate) in &rows {
            let ratio = if fp32_best > 0.0 {
                rate / fp32_best
            } else {
                f64::NAN
            };
            println!("{name:42} {rate:8.1} G ops/s   {ratio:5.2}x the best float32 FMA");
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("x86-64 only: no loop for this architecture");
    println!("({:.1} s)", started.elapsed().as_secs_f64());
}
