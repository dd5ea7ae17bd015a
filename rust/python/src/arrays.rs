//! Extraction of NumPy arguments with messages that name the argument and the problem.
//!
//! In-place arrays must be float32, C-contiguous, writeable and not overlap any other array of
//! the call: the numpy crate's borrow tracking detects overlap, and we turn its refusal into a
//! clear `LayoutError` (a `ValueError`) before anything is written. Read-only arrays arrive already converted by the
//! Python dtype policy (`ruvector_attention/_arrays.py`); they are checked again here.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    BorrowError, PyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyList;
use ruvector_kernels::scratch;

use crate::errors::{internal_error, layout_error, shape_error, type_error, KernelErr};

fn describe(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(arr) = obj.cast::<numpy::PyUntypedArray>() {
        match arr.dtype().str() {
            Ok(dtype) => format!("an array of dtype {dtype}"),
            Err(_) => "an array".to_string(),
        }
    } else {
        match obj.get_type().name() {
            Ok(name) => format!("{name}"),
            Err(_) => "an object".to_string(),
        }
    }
}

fn as_f32_array<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let arr = obj.cast::<PyArrayDyn<f32>>().map_err(|_| {
        type_error(format!(
            "{name} must be a float32 numpy.ndarray, got {}",
            describe(obj)
        ))
    })?;
    if !arr.is_c_contiguous() {
        return Err(layout_error(format!(
            "{name} must be C-contiguous; it is a strided view (use numpy.ascontiguousarray on \
             the source array, not on a copy you then discard)"
        )));
    }
    if !is_aligned(arr) {
        return Err(layout_error(format!(
            "{name} is not aligned to 4 bytes (a view at an odd byte offset of a buffer); \
             in-place arrays must be aligned: allocate it with numpy (numpy.zeros, numpy.array)"
        )));
    }
    Ok(arr.clone())
}

/// Whether a float32 array's data sit at a multiple of 4 bytes (a view at an odd byte offset of a
/// buffer does not, and slices of it would be undefined behaviour).
pub fn is_aligned(arr: &Bound<'_, PyArrayDyn<f32>>) -> bool {
    (arr.data() as usize).is_multiple_of(std::mem::align_of::<f32>())
}

/// The named list arguments of one call (looked through only to explain a refused borrow).
pub type CallLists<'a, 'py> = &'a [(&'a Bound<'py, PyList>, &'a str)];

/// The bytes an extracted float32 array occupies (it is C-contiguous).
fn byte_range(arr: &Bound<'_, PyArrayDyn<f32>>) -> std::ops::Range<usize> {
    let start = arr.data() as usize;
    start..start + arr.len() * std::mem::size_of::<f32>()
}

/// Why an array could not be borrowed although it is a well-formed float32 array: it overlaps
/// another array of this very call (`others`), or another call in progress (another thread)
/// holds it. The borrow tracker cannot tell the two apart, so we look.
fn clash(
    arr: &Bound<'_, PyArrayDyn<f32>>,
    name: &str,
    others: CallLists<'_, '_>,
    access: Access,
) -> PyErr {
    let mine = byte_range(arr);
    let named = others.iter().flat_map(|(list, list_name)| {
        list.iter()
            .enumerate()
            .map(move |(i, item)| (format!("{list_name}[{i}]"), item))
    });
    for (other_name, other) in named {
        if other_name == name {
            continue;
        }
        if let Ok(other) = other.cast::<PyArrayDyn<f32>>() {
            let theirs = byte_range(other);
            if mine.start < theirs.end && theirs.start < mine.end {
                return layout_error(format!(
                    "{name} shares memory with {other_name}, passed in the same call; every array \
                     updated in place must be distinct"
                ));
            }
        }
    }
    // A read borrow fails only beside a write borrow; a write borrow beside either.
    layout_error(match access {
        Access::Read => format!(
            "{name} is being updated in place by another call in progress (in another thread); \
             this call only reads it, but an array must not be read while another call writes it"
        ),
        Access::Write => format!(
            "{name} is in use by another call in progress (in another thread) that reads or \
             updates it, and this call would update it; an array must not be written by one \
             call while another uses it"
        ),
    })
}

/// What a call does with an array it borrows (for the message when the borrow is refused).
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// Borrow an array that will be updated in place. `others` are the call's other array arguments
/// (named), for the message if the array is already in use.
pub fn readwrite<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    others: CallLists<'_, 'py>,
) -> PyResult<PyReadwriteArrayDyn<'py, f32>> {
    let arr = as_f32_array(obj, name)?;
    arr.try_readwrite().map_err(|err| match err {
        BorrowError::NotWriteable => {
            layout_error(format!("{name} is read-only (its WRITEABLE flag is False)"))
        }
        _ => clash(&arr, name, others, Access::Write),
    })
}

/// Borrow an array that will only be read. `others` as for `readwrite`.
pub fn readonly<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    readonly_in_call(obj, name, &[])
}

pub fn readonly_in_call<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    others: CallLists<'_, 'py>,
) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    let arr = as_f32_array(obj, name)?;
    arr.try_readonly()
        .map_err(|_| clash(&arr, name, others, Access::Read))
}

/// `(rows, cols)` of a 2-D array, or a `ShapeError` naming it.
pub fn matrix_dims(arr: &PyReadonlyArrayDyn<'_, f32>, name: &str) -> PyResult<(usize, usize)> {
    match arr.shape() {
        &[rows, cols] => Ok((rows, cols)),
        other => Err(shape_error(format!(
            "{name} must be 2-D, got shape {other:?}"
        ))),
    }
}

/// Borrow an int64 array (indices, labels) for reading.
pub fn readonly_i64<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<numpy::PyReadonlyArrayDyn<'py, i64>> {
    let arr = obj
        .cast::<PyArrayDyn<i64>>()
        .map_err(|_| type_error(format!("{name} must be an int64 numpy.ndarray")))?;
    Ok(arr.readonly())
}

/// The slice of a borrowed int64 array (indices, labels), which must be C-contiguous.
pub fn slice_i64<'a>(arr: &'a PyReadonlyArrayDyn<'_, i64>, name: &str) -> PyResult<&'a [i64]> {
    arr.as_slice()
        .map_err(|_| layout_error(format!("{name} must be C-contiguous")))
}

/// Every item of a Python list, borrowed for writing, as `name[i]`.
pub fn readwrite_list<'py>(
    list: &Bound<'py, PyList>,
    name: &str,
    others: CallLists<'_, 'py>,
) -> PyResult<Vec<PyReadwriteArrayDyn<'py, f32>>> {
    list.iter()
        .enumerate()
        .map(|(i, item)| readwrite(&item, &format!("{name}[{i}]"), others))
        .collect()
}

/// Every item of a Python list, borrowed for reading, as `name[i]`.
pub fn readonly_list<'py>(
    list: &Bound<'py, PyList>,
    name: &str,
    others: CallLists<'_, 'py>,
) -> PyResult<Vec<PyReadonlyArrayDyn<'py, f32>>> {
    list.iter()
        .enumerate()
        .map(|(i, item)| readonly_in_call(&item, &format!("{name}[{i}]"), others))
        .collect()
}

/// The slice of a borrowed array (contiguity was checked on extraction).
pub fn slice_mut<'a>(arr: &'a mut PyReadwriteArrayDyn<'_, f32>) -> PyResult<&'a mut [f32]> {
    arr.as_slice_mut()
        .map_err(|_| layout_error("array must be C-contiguous"))
}

pub fn slice<'a>(arr: &'a PyReadonlyArrayDyn<'_, f32>) -> PyResult<&'a [f32]> {
    arr.as_slice()
        .map_err(|_| layout_error("array must be C-contiguous"))
}

/// An output array filled by a kernel while the GIL is released, then handed to NumPy without a
/// copy. Its memory comes from the kernels' buffer cache (`ruvector_kernels::scratch`) and goes
/// back there when NumPy frees the array, so a training loop reuses pages already mapped instead
/// of paying the kernel's page zeroing on every call. Its initial contents are unspecified: every
/// kernel writes each element of its outputs.
pub struct Buffer {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Buffer {
    /// An output of `shape`; `MemoryError` if it cannot be allocated (never an abort).
    pub fn output(shape: &[usize]) -> PyResult<Self> {
        let len = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                pyo3::exceptions::PyMemoryError::new_err(format!(
                    "an output of shape {shape:?} is larger than the address space"
                ))
            })?;
        let data = scratch::try_take(len).map_err(KernelErr)?;
        Ok(Self {
            shape: shape.to_vec(),
            data,
        })
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyArrayDyn<f32>>> {
        let array = ArrayD::from_shape_vec(IxDyn(&self.shape), self.data)
            .map_err(|err| internal_error(format!("internal: output shape: {err}")))?;
        let owner = Bound::new(py, RecycledBuffer { array })?;
        let view = &owner.get().array;
        // SAFETY: `owner` becomes the array's base object and keeps the data alive; the data is
        // never reallocated (RecycledBuffer is frozen and only its Drop touches the array).
        Ok(unsafe { PyArrayDyn::borrow_from_array(view, owner.clone().into_any()) })
    }

    /// A float64 result (per-row losses) as a NumPy array.
    pub fn from_f64<'py>(
        py: Python<'py>,
        data: Vec<f64>,
        shape: &[usize],
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let array = ArrayD::from_shape_vec(IxDyn(shape), data)
            .map_err(|err| internal_error(format!("internal: output shape: {err}")))?;
        Ok(PyArray::from_owned_array(py, array))
    }
}

/// Owns an output array's memory; returns it to the buffer cache when NumPy frees the array.
#[pyclass(frozen)]
struct RecycledBuffer {
    array: ArrayD<f32>,
}

impl Drop for RecycledBuffer {
    fn drop(&mut self) {
        let array = std::mem::replace(&mut self.array, ArrayD::zeros(IxDyn(&[0])));
        scratch::give(array.into_raw_vec_and_offset().0);
    }
}
