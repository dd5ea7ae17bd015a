//! The Python exception of each kind of failure.
//!
//! The classes are defined once, in Python (`ruvector_attention/errors.py`), because each also
//! derives from `ValueError`; this module looks them up. One class per kind: `ArgumentError` (a
//! value outside its domain), `ShapeError` (rank, shape), `LayoutError` (memory the kernels cannot
//! use in place); wrong dtypes are the built-in `TypeError`.

use pyo3::exceptions::{PyMemoryError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use ruvector_kernels::KernelError;

static ARGUMENT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SHAPE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LAYOUT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RUVECTOR_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An exception of the class `name` of `ruvector_attention.errors` (imported once per process).
fn raise(cell: &'static PyOnceLock<Py<PyType>>, name: &str, msg: String) -> PyErr {
    Python::attach(
        |py| match cell.import(py, "ruvector_attention.errors", name) {
            Ok(class) => PyErr::from_type(class.clone(), msg),
            Err(import_error) => import_error,
        },
    )
}

pub fn argument_error(msg: impl Into<String>) -> PyErr {
    raise(&ARGUMENT_ERROR, "ArgumentError", msg.into())
}

pub fn shape_error(msg: impl Into<String>) -> PyErr {
    raise(&SHAPE_ERROR, "ShapeError", msg.into())
}

pub fn layout_error(msg: impl Into<String>) -> PyErr {
    raise(&LAYOUT_ERROR, "LayoutError", msg.into())
}

/// A bug of ours (a kernel panicked, an output could not be shaped): `RuvectorError`.
pub fn internal_error(msg: impl Into<String>) -> PyErr {
    raise(&RUVECTOR_ERROR, "RuvectorError", msg.into())
}

pub fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

/// A kernel's error on its way to Python: `?` turns it into the matching exception.
#[derive(Debug)]
pub struct KernelErr(pub KernelError);

impl From<KernelError> for KernelErr {
    fn from(err: KernelError) -> Self {
        Self(err)
    }
}

impl From<KernelErr> for PyErr {
    fn from(KernelErr(err): KernelErr) -> PyErr {
        match err {
            KernelError::Shape(msg) => shape_error(msg),
            KernelError::InvalidArgument(msg) => argument_error(msg),
            KernelError::OutOfMemory(msg) => PyMemoryError::new_err(msg),
            KernelError::Cancelled => internal_error("the kernel was cancelled"),
        }
    }
}
