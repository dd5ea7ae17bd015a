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
/// microseconds, more than the work itself. (The optimizers have their own, measured:
/// `optim::OPTIMIZER_PARALLEL_THRESHOLD`.)
pub const PARALLEL_THRESHOLD: usize = 1 << 18;

/// A benchmark's override of every threshold (`usize::MAX`: none), to find where the pool
/// starts to pay (`benches/bench_torch_optim.py --crossover`).
static THRESHOLD_OVERRIDE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The threshold in force for a kernel whose own is `default`.
pub fn threshold(default: usize) -> usize {
    match THRESHOLD_OVERRIDE.load(Ordering::Relaxed) {
        usize::MAX => default,
        n => n,
    }
}

/// Overrides every threshold (benchmarks only; `None` restores the kernels' own); returns the
/// override in force before.
pub fn override_threshold(elements: Option<usize>) -> Option<usize> {
    let previous = THRESHOLD_OVERRIDE.swap(elements.unwrap_or(usize::MAX), Ordering::Relaxed);
    (previous != usize::MAX).then_some(previous)
}

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
///
/// Called from outside the pool, the calling thread works through the tasks itself and offers
/// them to `threads - 1` of the pool's workers, which take what is left when they wake; the
/// caller never waits for a worker that has not started (see `SharedTasks`). Handing the whole
/// call to the pool (`install`) made the caller sleep and wait for workers to wake first: on the
/// 2-vCPU VM the median AdamW step of 0.5M parameters was then 193-202 us against 153 us on one
/// thread (best 95 us), as a wake-up there can take longer than the work.
pub fn for_each_task<T, F>(tasks: Vec<T>, total_elements: usize, work: F)
where
    T: Send,
    F: Fn(T) + Sync + Send,
{
    for_each_task_above(PARALLEL_THRESHOLD, tasks, total_elements, work);
}

/// `for_each_task` with a kernel's own threshold (elements below which one thread wins).
pub fn for_each_task_above<T, F>(
    parallel_from: usize,
    tasks: Vec<T>,
    total_elements: usize,
    work: F,
) where
    T: Send,
    F: Fn(T) + Sync + Send,
{
    let threads = num_threads();
    if total_elements < threshold(parallel_from) || tasks.len() < 2 || threads < 2 {
        tasks.into_iter().for_each(work);
    } else if rayon::current_thread_index().is_some() {
        // Already on a worker (a whole call run by `in_pool`): rayon splits in place.
        pool().install(|| tasks.into_par_iter().for_each(work));
    } else {
        let helpers = (threads - 1).min(tasks.len() - 1);
        let slots: Vec<Mutex<Option<T>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
        let run = |i: usize| {
            let task = slots[i].lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(task) = task {
                work(task);
            }
        };
        SharedTasks::run(slots.len(), helpers, &run);
    }
}

/// Tasks `0..total` shared between the calling thread and pool workers that may start late.
///
/// Each participant claims the next index under the lock and runs it. When nothing is left the
/// caller closes the queue and waits only for the tasks already claimed; a worker that wakes
/// after that finds the queue closed and returns without touching the tasks. This is why the
/// workers are plain `spawn`ed jobs (rayon's scopes wait for every job to start and end).
struct SharedTasks {
    queue: Mutex<Queue>,
    finished: std::sync::Condvar,
    /// The task runner, borrowed from `SharedTasks::run`'s caller with its lifetime erased:
    /// called only for an index claimed while the queue was open, and `run` does not return
    /// before every claimed index has finished (`Queue::running == 0` after `closed`).
    task: *const (dyn Fn(usize) + Sync),
}

struct Queue {
    next: usize,
    total: usize,
    running: usize,
    closed: bool,
    /// A task's panic, re-raised on the calling thread.
    panic: Option<Box<dyn std::any::Any + Send>>,
}

// SAFETY: `task` points to a `Sync` closure that outlives every call made through it (see the
// field's comment); the rest is guarded by the mutex.
unsafe impl Send for SharedTasks {}
unsafe impl Sync for SharedTasks {}

impl SharedTasks {
    fn run(total: usize, helpers: usize, task: &(dyn Fn(usize) + Sync)) {
        // SAFETY (lifetime erasure): see `task`; `Finish` below closes the queue and waits for
        // the claimed tasks even when the caller's own task panics.
        let erased: *const (dyn Fn(usize) + Sync + '_) = task;
        let task: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(erased) };
        let shared = Arc::new(SharedTasks {
            queue: Mutex::new(Queue {
                next: 0,
                total,
                running: 0,
                closed: false,
                panic: None,
            }),
            finished: std::sync::Condvar::new(),
            task,
        });
        let pool = pool();
        for _ in 0..helpers {
            let shared = Arc::clone(&shared);
            pool.spawn(move || shared.drain());
        }
        struct Finish<'a>(&'a SharedTasks);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let mut queue = self.0.lock();
                queue.closed = true;
                while queue.running > 0 {
                    queue = self
                        .0
                        .finished
                        .wait(queue)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
        let finish = Finish(&shared);
        shared.drain();
        drop(finish);
        let panic = shared.lock().panic.take();
        if let Some(panic) = panic {
            std::panic::resume_unwind(panic);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Plain counters: a poisoned lock holds nothing half-written.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims and runs tasks until none is left or the queue is closed.
    fn drain(&self) {
        loop {
            let index = {
                let mut queue = self.lock();
                if queue.closed || queue.next == queue.total || queue.panic.is_some() {
                    return;
                }
                queue.running += 1;
                queue.next += 1;
                queue.next - 1
            };
            // SAFETY: claimed while open, so the caller of `run` is still waiting for it.
            let task = unsafe { &*self.task };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(index)));
            let mut queue = self.lock();
            queue.running -= 1;
            if let Err(panic) = outcome {
                queue.panic.get_or_insert(panic);
            }
            if queue.running == 0 {
                self.finished.notify_all();
            }
        }
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
    if total_elements < threshold(PARALLEL_THRESHOLD) || tasks.len() < 2 || num_threads() < 2 {
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
    fn shared_tasks_run_each_task_once_and_pass_panics_on() {
        use std::sync::atomic::AtomicU32;
        let runs: Vec<AtomicU32> = (0..1000).map(|_| AtomicU32::new(0)).collect();
        SharedTasks::run(runs.len(), 3, &|i| {
            runs[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
        let outcome = std::panic::catch_unwind(|| {
            SharedTasks::run(100, 1, &|i| assert!(i != 37, "task 37 fails"));
        });
        let message = outcome.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"task 37 fails"));
    }

    #[test]
    fn the_caller_does_not_wait_for_workers_that_have_not_started() {
        // Every worker of the pool blocked: a caller waiting for its helpers to start would
        // hang here; it must do all the tasks itself and return.
        let pool = pool();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = Arc::new(Mutex::new(blocked));
        let (started, all_started) = std::sync::mpsc::channel();
        for _ in 0..pool.current_num_threads() {
            let (blocked, started) = (Arc::clone(&blocked), started.clone());
            pool.spawn(move || {
                // No unwrap: a worker may start after the test has returned and dropped the
                // receiver, and a panic in a spawned job aborts the whole test process.
                let _ = started.send(());
                if let Ok(blocked) = blocked.lock() {
                    let _ = blocked.recv();
                }
            });
        }
        // The first worker holds the lock while it waits; the others wait for the lock.
        all_started.recv().unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let caller = std::thread::spawn(move || {
            let count = AtomicUsize::new(0);
            SharedTasks::run(64, 4, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
            done.send(count.load(Ordering::Relaxed)).unwrap();
        });
        let result = finished.recv_timeout(std::time::Duration::from_secs(20));
        for _ in 0..pool.current_num_threads() {
            let _ = release.send(());
        }
        caller.join().unwrap();
        assert_eq!(result, Ok(64));
    }

    #[test]
    fn map_keeps_task_order() {
        let tasks: Vec<usize> = (0..100).collect();
        let out = map_tasks(tasks, usize::MAX, |i| i * 2);
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }
}
