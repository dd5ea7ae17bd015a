//! Critical sections that a `fork()` can never leave locked.
//!
//! A forked child has a copy of every lock but only the thread that forked. If another thread of
//! the parent held one of our locks at that moment, the child's copy stays locked forever and its
//! first kernel call hangs (seen: `parallel::num_threads` blocked in a child forked beside a
//! computing thread). So every lock of this crate is taken inside `critical`, which holds a
//! process-wide gate for reading; a `pthread_atfork` handler takes the gate for writing before
//! `fork()` (waiting for the critical sections under way, which are short and never call out)
//! and releases it afterwards in both processes. Every lock is therefore free at the moment of
//! the fork, and the data behind it is whole.

use std::sync::RwLock;

static GATE: RwLock<()> = RwLock::new(());

/// Runs `work` as a critical section that a `fork()` will wait for. `work` must not fork, call
/// back into Python or enter another critical section.
pub fn critical<R>(work: impl FnOnce() -> R) -> R {
    register_fork_handlers();
    // The gate guards no data, so a poisoned gate (a panic elsewhere) changes nothing.
    let _gate = GATE.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    work()
}

#[cfg(unix)]
fn register_fork_handlers() {
    use std::cell::RefCell;
    use std::sync::{Once, RwLockWriteGuard};

    thread_local! {
        /// The forking thread's hold on the gate, from `prepare` until `after`.
        static HELD: RefCell<Option<RwLockWriteGuard<'static, ()>>> = const { RefCell::new(None) };
    }

    extern "C" fn prepare() {
        let guard = GATE
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        HELD.with(|held| *held.borrow_mut() = Some(guard));
    }

    extern "C" fn after() {
        HELD.with(|held| drop(held.borrow_mut().take()));
    }

    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handlers are plain functions that live as long as the process; they only
        // lock and unlock the gate. A failed registration (ENOMEM) leaves the old behaviour.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(after), Some(after));
        }
    });
}

#[cfg(not(unix))]
fn register_fork_handlers() {}
