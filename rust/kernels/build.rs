//! Sets the `x86_simd` cfg: the AVX2 / AVX-512 paths are compiled on x86-64 unless the
//! `portable-only` feature asks for the code every other architecture compiles (the portable
//! loops), so that code is built and tested here too (`cargo test --features portable-only`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(x86_simd)");
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "x86_64");
    let portable_only = std::env::var_os("CARGO_FEATURE_PORTABLE_ONLY").is_some();
    if x86_64 && !portable_only {
        println!("cargo::rustc-cfg=x86_simd");
    }
}
