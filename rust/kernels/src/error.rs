//! The one error type of the kernels; the binding layer maps each variant to a Python exception.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelError {
    /// Wrong rank, mismatched or empty shapes (Python: `ShapeError`).
    #[error("{0}")]
    Shape(String),
    /// An invalid hyper-parameter or argument value (Python: `ArgumentError`, a `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),
    /// The allocator refused a buffer (Python: `MemoryError`).
    #[error("{0}")]
    OutOfMemory(String),
    /// The caller asked the kernel to stop (`cancel::Cancel`); its outputs are incomplete.
    #[error("cancelled")]
    Cancelled,
}

impl KernelError {
    pub fn shape(msg: impl Into<String>) -> Self {
        Self::Shape(msg.into())
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }
}

pub type KernelResult<T> = Result<T, KernelError>;
