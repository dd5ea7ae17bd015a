//! Thread-pool size and SIMD path, exposed to Python.

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
