//! The library's own thread pool: sized by `set_num_threads`, rebuilt after `fork()`.
//!
//! rayon's global pool cannot be resized, and a child process after `fork()` inherits a pool
//! whose worker threads do not exist there (using it would deadlock). So the pool is ours, and
//! it remembers the process that built it: a different process id means we are in a forked
//! child, and a fresh pool is built (the parent's is leaked, never joined).

use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{KernelError, KernelResult};

/// Below this many elements of streaming work one thread wins: waking workers costs tens of
/// microseconds, more than the work itself.
pub const PARALLEL_THRESHOLD: usize = 1 << 18;

/// Elements per task when work is split: large enough to amortise scheduling, small enough to
/// balance two cores and to keep each task's arrays in L2.
pub const CHUNK: usize = 1 << 15;

struct PoolState {
    requested: usize,
    built: Option<(u32, usize, Arc<ThreadPool>)>,
}

static POOL: Mutex<PoolState> = Mutex::new(PoolState {
    requested: 0,
    built: None,
});

fn lock() -> std::sync::MutexGuard<'static, PoolState> {
    // The lock only guards plain data, so a poisoned lock holds nothing half-written.
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The CPUs this process may use (affinity and cgroup limits included).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads the kernels will use.
pub fn num_threads() -> usize {
    let state = lock();
    if state.requested == 0 {
        available_cpus()
    } else {
        state.requested
    }
}

/// Set the number of threads; 0 means "the CPUs this process may use".
pub fn set_num_threads(n: usize) -> KernelResult<()> {
    if n > 4096 {
        return Err(KernelError::invalid(format!(
            "n must be between 0 and 4096, got {n}"
        )));
    }
    lock().requested = n;
    Ok(())
}

/// The pool for the current process and thread count, built on first use.
pub fn pool() -> Arc<ThreadPool> {
    let mut state = lock();
    let wanted = if state.requested == 0 {
        available_cpus()
    } else {
        state.requested
    };
    let pid = std::process::id();
    if let Some((built_pid, threads, pool)) = &state.built {
        if *built_pid == pid && *threads == wanted {
            return Arc::clone(pool);
        }
    }
    if let Some((built_pid, _, old)) = state.built.take() {
        if built_pid != pid {
            // Forked child: the old pool's threads live only in the parent. Dropping it would
            // signal threads that do not exist here; leaking it is the safe choice.
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
    state.built = Some((pid, wanted, Arc::clone(&pool)));
    pool
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
        assert!(set_num_threads(1_000_000).is_err());
    }

    #[test]
    fn map_keeps_task_order() {
        let tasks: Vec<usize> = (0..100).collect();
        let out = map_tasks(tasks, usize::MAX, |i| i * 2);
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }
}
