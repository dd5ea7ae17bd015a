//! How every kernel call runs: one rule, from the call's estimated cost, decides whether the GIL
//! is released and whether Ctrl-C can stop the call; a kernel error becomes its Python class; a
//! panic (a bug: kernels are written not to panic) becomes `RuvectorError`, never a crash.
//!
//! Each binding states what its call costs (`Cost`) and hands the kernel to `run` (outputs are
//! fresh arrays, so a stopped call loses nothing: they are dropped) or to `run_in_place` (the
//! kernel updates the caller's arrays, so it always finishes once started: a step half applied
//! would be lost state; Ctrl-C is then raised as soon as it returns).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use pyo3::prelude::*;
use ruvector_kernels::cancel::{Cancel, NEVER};
use ruvector_kernels::KernelResult;

use crate::errors::{internal_error, KernelErr};

/// What a kernel call costs: floating-point operations and bytes of memory traffic.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub flops: usize,
    pub bytes: usize,
}

/// Operations per nanosecond and bytes per nanosecond of one core, for the estimate: an AVX2 FMA
/// core sustains about 16 float32 flops per ns in the kernels' loops, and streams about 8 bytes
/// per ns from memory. Only the order of magnitude matters to the rule.
const FLOPS_PER_NS: usize = 16;
const BYTES_PER_NS: usize = 8;

/// Calls estimated below this keep the GIL: releasing and re-taking it costs about a microsecond,
/// a noticeable share of such a call, and no other thread could do much meanwhile.
const RELEASE_GIL_ABOVE_NS: usize = 20_000;

/// Calls estimated above this can be stopped by Ctrl-C: they run as a job on the kernels' pool
/// while the calling thread watches for signals (which costs a few microseconds to set up).
const INTERRUPTIBLE_ABOVE_NS: usize = 2_000_000;

impl Cost {
    /// Element-wise work: `flops` operations and `bytes` of traffic per element.
    pub fn per_element(elements: usize, flops: usize, bytes: usize) -> Self {
        Self {
            flops: elements.saturating_mul(flops),
            bytes: elements.saturating_mul(bytes),
        }
    }

    /// The estimated time of the call on one core, in nanoseconds.
    pub fn estimated_ns(self) -> usize {
        (self.flops / FLOPS_PER_NS).saturating_add(self.bytes / BYTES_PER_NS)
    }

    fn releases_gil(self) -> bool {
        self.estimated_ns() > RELEASE_GIL_ABOVE_NS
    }

    fn interruptible(self) -> bool {
        self.estimated_ns() > INTERRUPTIBLE_ABOVE_NS
    }
}

/// Runs a kernel whose outputs are fresh arrays. Above `INTERRUPTIBLE_ABOVE_NS` the kernel runs as
/// a job on the kernels' pool (on a helper thread when they use one thread) while the calling
/// thread waits and, every `SIGNAL_POLL`, briefly takes the GIL to run Python's signal handlers:
/// when one raises (KeyboardInterrupt), the kernel's token is set, its incomplete outputs are
/// dropped and that exception is raised, within about a row block's time.
pub fn run<T, F>(py: Python<'_>, cost: Cost, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Cancel) -> KernelResult<T> + Send,
{
    if !cost.interruptible() {
        return run_in_place(py, cost, move || work(&NEVER));
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
    finish(outcome)
}

/// Runs a kernel that must finish once started (it updates the caller's arrays in place), with
/// the GIL released when the call is large enough for that to pay.
pub fn run_in_place<T, F>(py: Python<'_>, cost: Cost, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> KernelResult<T> + Send,
{
    let guarded = || catch_unwind(AssertUnwindSafe(work));
    let outcome = if cost.releases_gil() {
        py.detach(guarded)
    } else {
        guarded()
    };
    finish(outcome)
}

/// How often the waiting thread looks for a pending signal (Ctrl-C) during a long kernel.
const SIGNAL_POLL: Duration = Duration::from_millis(20);

type Outcome<T> = std::thread::Result<KernelResult<T>>;

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

fn finish<T>(outcome: Outcome<T>) -> PyResult<T> {
    match outcome {
        Ok(result) => Ok(result.map_err(KernelErr)?),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_string());
            Err(internal_error(format!(
                "internal error in a ruvector kernel (please report): {detail}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule's thresholds order as they must: a call that can be stopped also releases the GIL.
    #[test]
    fn an_interruptible_call_also_releases_the_gil() {
        const { assert!(INTERRUPTIBLE_ABOVE_NS > RELEASE_GIL_ABOVE_NS) };
        let big = Cost::per_element(1 << 26, 2, 4);
        assert!(big.interruptible() && big.releases_gil());
        let tiny = Cost::per_element(64, 2, 4);
        assert!(!tiny.interruptible() && !tiny.releases_gil());
    }
}
