//! A request to stop a long kernel early (Ctrl-C in Python).
//!
//! Long kernels (mining, pooled InfoNCE) look at their token between tiles or row blocks and, once
//! it is set, skip the remaining work and return `KernelError::Cancelled`. Their outputs are then
//! incomplete, so the binding discards them: nothing half-computed reaches the caller.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{KernelError, KernelResult};

#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

/// A token nobody sets, for calls that cannot be interrupted.
pub static NEVER: Cancel = Cancel::new();

impl Cancel {
    pub const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Asks the kernel holding this token to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once a stop was requested: the kernels' last word after their work.
    pub fn check(&self) -> KernelResult<()> {
        if self.is_requested() {
            Err(KernelError::Cancelled)
        } else {
            Ok(())
        }
    }
}
