//! Pure Rust kernels behind the `ruvector_attention` Python package.
//!
//! Nothing here knows about Python: functions take slices and explicit sizes and return
//! `Result<_, KernelError>`. The PyO3 crate (`rust/python`) validates and extracts NumPy buffers,
//! releases the GIL and calls into this crate.

pub mod alloc;
pub mod cancel;
pub mod conditioning;
pub mod error;
pub mod fastmath;
pub mod forksafe;
pub mod gemm;
pub mod loss;
pub mod mining;
pub mod norm;
pub mod optim;
pub mod parallel;
pub mod scratch;
pub mod simd;
pub mod vecops;

pub use error::{KernelError, KernelResult};
