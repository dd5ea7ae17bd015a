//! `cargo run --release -p ruvector-gemm-bench`: single-thread GFLOP/s of the kernels' GEMM and of
//! the `gemm` crate on the products the losses and the miner run (`C = A B^T`, A and B row-major
//! M x K and N x K), with the blocking the kernels chose for this machine's caches. NumPy's SGEMM
//! on the same shapes is measured by `benches/bench_gemm.py`.

use std::time::Instant;

use ruvector_kernels::gemm::{blocking_of, gemm, CacheSizes, MatRef};
use ruvector_kernels::simd::SimdPath;

fn best_seconds(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    let mut total = 0.0;
    let mut runs = 0;
    while runs < 3 || (total < 0.3 && runs < 50) {
        let t = Instant::now();
        f();
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        total += s;
        runs += 1;
    }
    best
}

fn main() {
    // `--json`: one line per shape for benches/bench_gemm.py, which adds NumPy's SGEMM beside.
    let json = std::env::args().any(|a| a == "--json");
    let caches = CacheSizes::detected();
    if !json {
        println!("caches {caches:?}");
        for path in [SimdPath::Avx512, SimdPath::Avx2, SimdPath::Baseline] {
            if path <= ruvector_kernels::simd::detect() {
                println!("  {path:?}: {:?}", blocking_of(path));
            }
        }
        println!("simd path: {:?}", ruvector_kernels::simd::active());
        println!(
            "{:>6} {:>6} {:>6} {:>12} {:>12} {:>7}",
            "M", "N", "K", "ours GF/s", "gemm GF/s", "ratio"
        );
    }
    for &(m, n, k) in &[
        (256, 256, 256),
        (1024, 1024, 64),
        (1024, 1024, 256),
        (1024, 1024, 768),
        (1024, 4096, 1024),
        (4096, 4096, 256),
        (256, 16384, 256),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let ours = best_seconds(|| {
            gemm(
                &mut c,
                n,
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&b, n, k).t(),
                false,
            )
        });
        let theirs = best_seconds(|| unsafe {
            // SAFETY: the pointers and strides describe the vectors above (A m x k row-major,
            // B^T as a k x n view of the n x k row-major B, C m x n row-major).
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                k as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        });
        if json {
            println!("{{\"m\": {m}, \"n\": {n}, \"k\": {k}, \"ours\": {ours}, \"gemm_crate\": {theirs}}}");
        } else {
            println!(
                "{m:>6} {n:>6} {k:>6} {:>12.1} {:>12.1} {:>7.2}",
                flops / ours / 1e9,
                flops / theirs / 1e9,
                theirs / ours
            );
        }
    }
}
