//! A small cache of large float32 buffers, so that repeated calls reuse memory already mapped.
//!
//! Fresh memory is expensive: every 4 KiB page is zeroed by the kernel on first touch, and on
//! virtual machines the host may have to back it as well. Measured on the 2-vCPU development VM,
//! writing 67 MB of fresh memory cost 8-100 ms against 2.7 ms for memory already touched, which
//! would dominate a 1024 x 64 x 256 InfoNCE step. glibc returns blocks above 32 MB to the OS on
//! free, so without a cache every call pays that price again.
//!
//! Buffers of at least `MIN_FLOATS` go back here when dropped (the binding layer returns output
//! arrays here when NumPy frees them) and are handed out again by best fit. The cache holds at
//! most `MAX_BYTES`; `release()` empties it and hands the freed heap back to the OS. The lock is
//! held only for a search or a push, inside `forksafe::critical`, so a `fork()` never finds it
//! held; it is a blocking lock, so two threads taking and giving buffers in turn reuse the same
//! buffers instead of each missing the other's and growing the cache.

use std::sync::{Mutex, MutexGuard};

use crate::error::KernelResult;
use crate::forksafe::critical;

/// Smaller buffers are left to the allocator (which reuses small blocks well by itself).
pub const MIN_FLOATS: usize = 1 << 16;
/// Upper bound of the memory kept for reuse.
pub const MAX_BYTES: usize = 512 << 20;

struct Cache {
    buffers: Vec<Vec<f32>>,
    bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    buffers: Vec::new(),
    bytes: 0,
});

fn lock() -> MutexGuard<'static, Cache> {
    // Only plain data behind it, and every update completes before the guard drops.
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cached buffer of capacity in `[len, 2 len]`, best fit, if there is one.
fn reuse(len: usize) -> Option<Vec<f32>> {
    if len < MIN_FLOATS {
        return None;
    }
    let mut buffer = critical(|| {
        let mut cache = lock();
        let best = cache
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        let buffer = cache.buffers.swap_remove(best);
        cache.bytes -= buffer.capacity() * 4;
        Some(buffer)
    })?;
    // Within capacity: neither call allocates.
    if buffer.len() >= len {
        buffer.truncate(len);
    } else {
        buffer.resize(len, 0.0);
    }
    Some(buffer)
}

/// A buffer of `len` floats whose contents are unspecified (stale values from an earlier use, or
/// zeros): for outputs the caller overwrites completely. `OutOfMemory` if the allocator refuses.
pub fn try_take(len: usize) -> KernelResult<Vec<f32>> {
    match reuse(len) {
        Some(buffer) => Ok(buffer),
        None => crate::alloc::zeroed(len),
    }
}

/// `try_take` for working buffers bounded by the kernels' block sizes (or by the size of an
/// input already in memory), where a refusal is not a realistic outcome.
pub fn take(len: usize) -> Vec<f32> {
    reuse(len).unwrap_or_else(|| vec![0.0; len])
}

/// A buffer of `len` zeros (for accumulators).
pub fn take_zeroed(len: usize) -> Vec<f32> {
    let mut buffer = take(len);
    buffer.fill(0.0);
    buffer
}

/// Returns a buffer for reuse (or frees it, if it is small or the cache is full).
pub fn give(buffer: Vec<f32>) {
    let bytes = buffer.capacity() * 4;
    if buffer.capacity() < MIN_FLOATS || bytes > MAX_BYTES {
        return;
    }
    // Buffers pushed out to make room are freed after the lock is released.
    let evicted = critical(|| {
        let mut cache = lock();
        // Make room by dropping the oldest buffers; newer ones are likelier to fit the next call.
        let mut evicted = Vec::new();
        while cache.bytes + bytes > MAX_BYTES && !cache.buffers.is_empty() {
            let old = cache.buffers.remove(0);
            cache.bytes -= old.capacity() * 4;
            evicted.push(old);
        }
        cache.bytes += bytes;
        cache.buffers.push(buffer);
        evicted
    });
    drop(evicted);
}

/// Frees every cached buffer and returns the freed heap to the OS; returns the bytes released.
pub fn release() -> usize {
    let (bytes, buffers) = critical(|| {
        let mut cache = lock();
        let bytes = std::mem::replace(&mut cache.bytes, 0);
        (bytes, std::mem::take(&mut cache.buffers))
    });
    drop(buffers);
    trim_heap();
    bytes
}

/// glibc keeps freed blocks below its mmap threshold (which grows with the blocks it has seen) in
/// the heap, so freeing alone need not lower the process's memory; `malloc_trim` gives them back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Bytes currently cached.
pub fn cached_bytes() -> usize {
    critical(|| lock().bytes)
}

/// A `Vec<f32>` taken from the cache that goes back to it when dropped.
pub struct Scratch(Vec<f32>);

impl Scratch {
    pub fn new(len: usize) -> Self {
        Self(take(len))
    }

    pub fn zeroed(len: usize) -> Self {
        Self(take_zeroed(len))
    }
}

impl std::ops::Deref for Scratch {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}
