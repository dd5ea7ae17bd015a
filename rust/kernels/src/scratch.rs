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
//! most `MAX_BYTES`; `release()` empties it. Locking is `try_lock` only: if another thread holds
//! the lock (or a `fork()` happened while it was held) the caller simply allocates or frees
//! normally, so the cache can never block or deadlock.

use std::sync::Mutex;

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

/// A buffer of `len` floats whose contents are unspecified (stale values from an earlier use, or
/// zeros): for outputs the caller overwrites completely.
pub fn take(len: usize) -> Vec<f32> {
    if len >= MIN_FLOATS {
        if let Ok(mut cache) = CACHE.try_lock() {
            // Best fit among buffers that are large enough without wasting more than half.
            let best = cache
                .buffers
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let mut buffer = cache.buffers.swap_remove(i);
                cache.bytes -= buffer.capacity() * 4;
                drop(cache);
                if buffer.len() >= len {
                    buffer.truncate(len);
                } else {
                    buffer.resize(len, 0.0);
                }
                return buffer;
            }
        }
    }
    vec![0.0; len]
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
    if let Ok(mut cache) = CACHE.try_lock() {
        // Make room by dropping the oldest buffers; newer ones are likelier to fit the next call.
        while cache.bytes + bytes > MAX_BYTES && !cache.buffers.is_empty() {
            let old = cache.buffers.remove(0);
            cache.bytes -= old.capacity() * 4;
        }
        cache.bytes += bytes;
        cache.buffers.push(buffer);
    }
}

/// Frees every cached buffer; returns the bytes released.
pub fn release() -> usize {
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let bytes = cache.bytes;
    cache.buffers.clear();
    cache.bytes = 0;
    bytes
}

/// Bytes currently cached.
pub fn cached_bytes() -> usize {
    CACHE.try_lock().map_or(0, |cache| cache.bytes)
}

/// A `Vec<f32>` taken from the cache that goes back to it when dropped.
pub struct Scratch(Option<Vec<f32>>);

impl Scratch {
    pub fn new(len: usize) -> Self {
        Self(Some(take(len)))
    }

    pub fn zeroed(len: usize) -> Self {
        Self(Some(take_zeroed(len)))
    }

    /// Hands the buffer over (it then no longer returns to the cache by itself).
    pub fn into_vec(mut self) -> Vec<f32> {
        self.0.take().unwrap_or_default()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        self.0.as_ref().expect("a live scratch buffer")
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        self.0.as_mut().expect("a live scratch buffer")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(buffer) = self.0.take() {
            give(buffer);
        }
    }
}
