//! Thread-pool size and SIMD path, exposed to Python.

use std::os::raw::c_int;

use pyo3::prelude::*;
use ruvector_kernels::{loss, parallel, scratch, simd};

use crate::errors::KernelErr;

/// The temperature the losses compute with: the kernels' rule (at least `MIN_TEMPERATURE`, the
/// crate's clamp), so that the Python layer reports what the kernels use without repeating it.
#[pyfunction]
pub fn effective_temperature(temperature: f64) -> PyResult<f64> {
    Ok(loss::clamped_temperature(temperature).map_err(KernelErr)?)
}

/// Set the number of threads the kernels use (0: every CPU this process may use).
#[pyfunction]
pub fn set_num_threads(n: usize) -> PyResult<()> {
    Ok(parallel::set_num_threads(n).map_err(KernelErr)?)
}

/// The number of threads the kernels use.
#[pyfunction]
pub fn get_num_threads() -> usize {
    parallel::num_threads()
}

/// The thread count asked for with `set_num_threads`; 0 when none was ("auto").
#[pyfunction]
pub fn requested_threads() -> usize {
    parallel::requested_threads()
}

// The thread count through the C ABI, for threadpoolctl (`ruvector_attention/_threadpool.py`),
// which controls the pools of the native libraries a process has loaded by calling such
// functions; their names also identify this library among the loaded shared objects.

/// The number of threads the kernels use.
#[no_mangle]
pub extern "C" fn ruvector_attention_get_num_threads() -> c_int {
    c_int::try_from(parallel::num_threads()).unwrap_or(c_int::MAX)
}

/// Sets the kernels' thread count (0: every CPU this process may use); 0 on success, -1 for a
/// count outside 0..=MAX_THREADS.
#[no_mangle]
pub extern "C" fn ruvector_attention_set_num_threads(threads: c_int) -> c_int {
    match usize::try_from(threads).map(parallel::set_num_threads) {
        Ok(Ok(())) => 0,
        _ => -1,
    }
}

/// The instruction-set path the kernels run now: "avx512", "avx2+fma" or "baseline".
#[pyfunction]
pub fn simd_path() -> &'static str {
    simd::active().name()
}

/// The best path this CPU supports.
#[pyfunction]
pub fn best_simd_path() -> &'static str {
    simd::detect().name()
}

/// Choose a path (tests and benchmarks); a path this CPU lacks raises ArgumentError.
#[pyfunction]
pub fn force_simd_path(name: &str) -> PyResult<()> {
    let path = simd::SimdPath::from_name(name).map_err(KernelErr)?;
    Ok(simd::force(path).map_err(KernelErr)?)
}

/// Frees the kernels' cache of large buffers; returns the bytes released.
#[pyfunction]
pub fn release_cached_memory() -> usize {
    scratch::release()
}

/// Bytes held in the kernels' buffer cache.
#[pyfunction]
pub fn cached_memory() -> usize {
    scratch::cached_bytes()
}

/// Overrides the fewest elements every streaming kernel splits across threads (benchmarks
/// measuring where the pool starts to pay; `None` restores the kernels' own thresholds); returns
/// the override in force before.
#[pyfunction]
#[pyo3(signature = (elements, /))]
pub fn set_parallel_threshold(elements: Option<usize>) -> Option<usize> {
    parallel::override_threshold(elements)
}
