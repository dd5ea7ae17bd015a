//! `ruvector_attention._native`: the only crate that knows Python.
//!
//! Each function here extracts and checks its NumPy arguments (`arrays.rs`), states what its call
//! costs and hands one pure kernel of `ruvector-kernels` to `call.rs`, which decides by that cost
//! whether to release the GIL and whether Ctrl-C can stop it, and maps its errors to their Python
//! classes (`errors.rs`). There is no numerical logic in this crate.

mod arrays;
mod call;
mod errors;
mod loss;
mod mining;
mod optim;
mod runtime;
mod spectral;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MIN_TEMPERATURE", ruvector_kernels::loss::MIN_TEMPERATURE)?;
    m.add("NORM_EPS", ruvector_kernels::vecops::NORM_EPS)?;
    m.add("MAX_THREADS", ruvector_kernels::parallel::MAX_THREADS)?;
    m.add_function(wrap_pyfunction!(optim::sgd_step, m)?)?;
    m.add_class::<optim::AdamPlan>()?;
    m.add_function(wrap_pyfunction!(optim::clip_grad_norm, m)?)?;
    m.add_function(wrap_pyfunction!(loss::info_nce_per_anchor, m)?)?;
    m.add_function(wrap_pyfunction!(loss::info_nce_pooled, m)?)?;
    m.add_function(wrap_pyfunction!(loss::local_contrastive, m)?)?;
    m.add_function(wrap_pyfunction!(mining::mine, m)?)?;
    m.add_function(wrap_pyfunction!(mining::corpus_keys, m)?)?;
    m.add_function(wrap_pyfunction!(mining::exact_cosines, m)?)?;
    m.add_function(wrap_pyfunction!(mining::hardest_within, m)?)?;
    m.add_function(wrap_pyfunction!(mining::preselection_error, m)?)?;
    m.add_class::<mining::MinerConfig>()?;
    m.add_function(wrap_pyfunction!(spectral::csr_from_edges, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::csr_from_dense, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::laplacian, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::variance_penalty, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::effective_temperature, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::requested_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::simd_path, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::release_cached_memory, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::cached_memory, m)?)?;
    // Hooks for tests and benchmarks only (forcing a SIMD path, the bandwidth probe): kept out
    // of the module's surface in a private submodule.
    let testing = PyModule::new(m.py(), "_testing")?;
    testing.add_function(wrap_pyfunction!(optim::stream_probe, &testing)?)?;
    testing.add_function(wrap_pyfunction!(runtime::best_simd_path, &testing)?)?;
    testing.add_function(wrap_pyfunction!(runtime::force_simd_path, &testing)?)?;
    testing.add_function(wrap_pyfunction!(runtime::set_parallel_threshold, &testing)?)?;
    m.add_submodule(&testing)?;
    Ok(())
}
