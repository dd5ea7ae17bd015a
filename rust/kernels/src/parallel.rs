//! The library's own thread pool: sized by `set_num_threads`, rebuilt after `fork()`.
//!
//! rayon's global pool cannot be resized, and a child process after `fork()` inherits a pool
//! whose worker threads do not exist there (using it would deadlock). So the pool is ours, and
//! it remembers the process that built it: a different process id means we are in a forked
//! child, and a fresh pool is built (the parent's is leaked, never joined).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{KernelError, KernelResult};
use crate::forksafe::critical;

/// Below this many elements of streaming work one thread wins: waking workers costs tens of
/// microseconds, more than the work itself.
pub const PARALLEL_THRESHOLD: usize = 1 << 18;

/// Elements per task when work is split: large enough to amortise scheduling, small enough to
/// balance two cores and to keep each task's arrays in L2.
pub const CHUNK: usize = 1 << 15;

/// Most threads `set_num_threads` accepts.
pub const MAX_THREADS: usize = 4096;

/// The thread count asked for; 0 means "the CPUs this process may use". An atomic, so that the
/// hot path (`num_threads`, read by every kernel call) takes no lock at all.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// The pool built for (process id, thread count). Only touched inside `forksafe::critical`, so a
/// `fork()` never finds it locked.
static POOL: Mutex<Option<(u32, usize, Arc<ThreadPool>)>> = Mutex::new(None);

/// The CPUs this process may use, as last read (0: not read yet).
static AVAILABLE: AtomicUsize = AtomicUsize::new(0);

/// The CPUs this process may use (affinity and cgroup limits included): read once, and again
/// whenever "auto" is asked for (`set_num_threads(0)`). std reads the cgroup files on every call
/// (28 us here), and every large kernel call asks for the thread count two or three times.
pub fn available_cpus() -> usize {
    match AVAILABLE.load(Ordering::Relaxed) {
        0 => read_available_cpus(),
        n => n,
    }
}

fn read_available_cpus() -> usize {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    AVAILABLE.store(n, Ordering::Relaxed);
    n
}

/// Threads the kernels will use.
pub fn num_threads() -> usize {
    match REQUESTED.load(Ordering::Relaxed) {
        0 => available_cpus(),
        n => n,
    }
}

/// The thread count asked for with `set_num_threads`; 0: none ("the CPUs this process may use").
pub fn requested_threads() -> usize {
    REQUESTED.load(Ordering::Relaxed)
}

/// Set the number of threads; 0 means "the CPUs this process may use".
pub fn set_num_threads(n: usize) -> KernelResult<()> {
    if n > MAX_THREADS {
        return Err(KernelError::invalid(format!(
            "n must be between 0 and {MAX_THREADS}, got {n}"
        )));
    }
    if n == 0 {
        read_available_cpus(); // "auto" follows the affinity in force when it is asked for
    }
    REQUESTED.store(n, Ordering::Relaxed);
    Ok(())
}

/// The pool for the current process and thread count, built on first use.
pub fn pool() -> Arc<ThreadPool> {
    let wanted = num_threads();
    let pid = std::process::id();
    critical(|| {
        // The lock only guards plain data, so a poisoned lock holds nothing half-written.
        let mut built = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((built_pid, threads, pool)) = built.as_ref() {
            if *built_pid == pid && *threads == wanted {
                return Arc::clone(pool);
            }
        }
        if let Some((built_pid, _, old)) = built.take() {
            if built_pid != pid {
                // Forked child: the old pool's threads live only in the parent. Dropping it
                // would signal threads that do not exist here; leaking it is the safe choice.
                std::mem::forget(old);
            }
        }
        let pool = Arc::new(
            ThreadPoolBuilder::new()
                .num_threads(wanted)
                .thread_name(|i| format!("ruvector-{i}"))
                .build()
                .unwrap_or_else(|_| {
                    // Thread creation can fail under tight limits; one thread always works.
                    ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .expect("a one-thread pool")
                }),
        );
        *built = Some((pid, wanted, Arc::clone(&pool)));
        pool
    })
}

/// Runs a whole kernel call on the pool, so that its parallel phases start on threads that are
/// already running. Each `for_each_task` from outside the pool puts the caller to sleep until the
/// workers finish and wakes it after, and a worker idle through a serial stretch goes to sleep
/// too: measured on the 2-vCPU VM, in-batch InfoNCE B=1024 made ~29 context switches per call
/// this way. Inside the pool the phases' `install` runs in place.
pub fn in_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if num_threads() < 2 {
        work()
    } else {
        pool().install(work)
    }
}

/// Run `work` on every task, in parallel when `total_elements` makes it worth it.
pub fn for_each_task<T, F>(tasks: Vec<T>, total_elements: usize, work: F)
where
    T: Send,
    F: Fn(T) + Sync + Send,
{
    if total_elements < PARALLEL_THRESHOLD || tasks.len() < 2 || num_threads() < 2 {
        tasks.into_iter().for_each(work);
    } else {
        pool().install(|| tasks.into_par_iter().for_each(work));
    }
}

/// Like `for_each_task` but collects one result per task, in task order (so reductions over the
/// results are independent of the thread count).
pub fn map_tasks<T, R, F>(tasks: Vec<T>, total_elements: usize, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync + Send,
{
    if total_elements < PARALLEL_THRESHOLD || tasks.len() < 2 || num_threads() < 2 {
        tasks.into_iter().map(work).collect()
    } else {
        pool().install(|| tasks.into_par_iter().map(work).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get_threads() {
        set_num_threads(1).unwrap();
        assert_eq!(num_threads(), 1);
        assert_eq!(pool().current_num_threads(), 1);
        set_num_threads(0).unwrap();
        assert_eq!(num_threads(), available_cpus());
        // "auto" is the CPUs this process may use, as std reads them (the cached value).
        let fresh = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(num_threads(), fresh);
        assert!(matches!(
            set_num_threads(1_000_000),
            Err(crate::error::KernelError::InvalidArgument(_))
        ));
    }

    #[test]
    fn map_keeps_task_order() {
        let tasks: Vec<usize> = (0..100).collect();
        let out = map_tasks(tasks, usize::MAX, |i| i * 2);
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }
}
