//! Maps kernel errors to the Python exception hierarchy, and runs kernels without the GIL and
//! without letting a panic through.
//!
//! The exception classes are defined once, in Python (`ruvector_attention/errors.py`), because
//! `ShapeError` inherits from both `RuvectorError` and `ValueError`; this module looks them up.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use ruvector_kernels::cancel::{Cancel, NEVER};
use ruvector_kernels::KernelError;

static SHAPE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RUVECTOR_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn error_class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "ruvector_attention.errors", name)
}

fn raise(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, name: &str, msg: String) -> PyErr {
    match error_class(py, cell, name) {
        Ok(class) => PyErr::from_type(class.clone(), msg),
        Err(import_error) => import_error,
    }
}

pub fn shape_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    raise(py, &SHAPE_ERROR, "ShapeError", msg.into())
}

pub fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

pub fn to_pyerr(py: Python<'_>, err: KernelError) -> PyErr {
    match err {
        KernelError::Shape(msg) => shape_error(py, msg),
        KernelError::InvalidArgument(msg) => value_error(msg),
        KernelError::OutOfMemory(msg) => PyMemoryError::new_err(msg),
        KernelError::Cancelled => raise(
            py,
            &RUVECTOR_ERROR,
            "RuvectorError",
            "the kernel was cancelled".to_string(),
        ),
    }
}

/// Below this many elements a kernel finishes in microseconds: releasing and re-taking the GIL
/// would cost a noticeable share of the call, and no other thread could do much meanwhile.
const RELEASE_GIL_ABOVE: usize = 1 << 14;

/// Runs `work` (touching `elements` array elements) with the GIL released unless it is tiny. A
/// kernel error becomes the matching Python exception; a panic (a bug: kernels are written not to
/// panic) becomes `RuvectorError`, never a crash or a `PanicException`.
pub fn run_kernel<T, F>(py: Python<'_>, elements: usize, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, KernelError> + Send,
{
    let guarded = || catch_unwind(AssertUnwindSafe(work));
    let outcome = if elements > RELEASE_GIL_ABOVE {
        py.detach(guarded)
    } else {
        guarded()
    };
    finish(py, outcome)
}

/// Above this many elements a kernel runs long enough (tens of milliseconds and up) that Ctrl-C
/// should not wait for it: `run_interruptible` watches for signals while it runs.
const INTERRUPTIBLE_ABOVE: usize = 1 << 24;

/// How often the waiting thread looks for a pending signal (Ctrl-C) during a long kernel.
const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// `run_kernel` for kernels that take a `Cancel` token. A large call runs as a job on the kernels'
/// pool (on a helper thread when the kernels use one thread) while the calling thread waits for
/// it and, every `SIGNAL_POLL`, briefly takes the GIL to run Python's signal handlers
/// (`check_signals`): when one raises (KeyboardInterrupt), the kernel is asked to stop, its
/// incomplete outputs are dropped and that exception is raised, within about a tile's time. Small
/// calls run as `run_kernel` does.
pub fn run_interruptible<T, F>(py: Python<'_>, elements: usize, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Cancel) -> Result<T, KernelError> + Send,
{
    if elements <= INTERRUPTIBLE_ABOVE {
        return run_kernel(py, elements, move || work(&NEVER));
    }
    let cancel = Cancel::new();
    let mut interrupted: Option<PyErr> = None;
    let outcome = py.detach(|| {
        let (done, finished) = std::sync::mpsc::channel();
        let cancel = &cancel;
        let job = move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| work(cancel)));
            let _ = done.send(outcome);
        };
        let mut wait = || wait_watching_signals(&finished, cancel, &mut interrupted);
        if ruvector_kernels::parallel::num_threads() < 2 {
            // One thread per call: calls from several Python threads must still run side by
            // side, which the one-worker pool would serialise; each gets a helper thread.
            std::thread::scope(|scope| {
                scope.spawn(job);
                wait()
            })
        } else {
            // The kernel starts as a job on the library's pool (no thread created per call, and
            // its parallel phases then run in place on workers already running).
            ruvector_kernels::parallel::pool().in_place_scope(|scope| {
                scope.spawn(move |_| job());
                wait()
            })
        }
    });
    if let Some(err) = interrupted {
        return Err(err); // the outputs are incomplete; the signal's exception wins
    }
    finish(py, outcome)
}

type Outcome<T> = std::thread::Result<Result<T, KernelError>>;

/// Waits for the kernel's outcome; every `SIGNAL_POLL` runs Python's signal handlers, and on the
/// first exception they raise keeps it in `interrupted` and asks the kernel to stop.
fn wait_watching_signals<T>(
    finished: &std::sync::mpsc::Receiver<Outcome<T>>,
    cancel: &Cancel,
    interrupted: &mut Option<PyErr>,
) -> Outcome<T> {
    loop {
        match finished.recv_timeout(SIGNAL_POLL) {
            Ok(outcome) => return outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if interrupted.is_none() {
                    if let Err(err) = Python::attach(|py| py.check_signals()) {
                        *interrupted = Some(err);
                        cancel.request();
                    }
                }
            }
            // The job always sends before it ends; a lost sender means it died.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Box::new("the kernel thread ended without a result")
                    as Box<dyn std::any::Any + Send>);
            }
        }
    }
}

fn finish<T>(py: Python<'_>, outcome: Outcome<T>) -> PyResult<T> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(to_pyerr(py, err)),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_string());
            Err(raise(
                py,
                &RUVECTOR_ERROR,
                "RuvectorError",
                format!("internal error in a ruvector kernel (please report): {detail}"),
            ))
        }
    }
}
