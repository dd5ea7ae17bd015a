//! Fallible allocation of buffers whose size follows from a caller's arguments.
//!
//! Rust's `vec![0; n]` aborts the whole process when the allocator says no (under `ulimit -v`,
//! a container's memory limit or simply a huge argument), where NumPy raises `MemoryError`. Every
//! buffer sized by an argument is taken through `zeroed` instead, which reports the failure as
//! `KernelError::OutOfMemory` (the binding raises `MemoryError`). It asks the allocator for
//! zeroed memory, so a large buffer costs no pass over memory before the kernel writes it.

use std::alloc::{alloc_zeroed, Layout};

use crate::error::{KernelError, KernelResult};

/// Element types whose all-zero bit pattern is a valid value (`0.0`, `0`).
pub trait ZeroBits: Copy {}
impl ZeroBits for f32 {}
impl ZeroBits for f64 {}
impl ZeroBits for i64 {}
impl ZeroBits for u32 {}
impl ZeroBits for u64 {}
impl ZeroBits for usize {}

/// A vector of `len` zeros, or `OutOfMemory` if the allocator refuses it.
pub fn zeroed<T: ZeroBits>(len: usize) -> KernelResult<Vec<T>> {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    let layout = Layout::array::<T>(len).map_err(|_| out_of_memory(bytes))?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the layout has a non-zero size; a null pointer is checked below; all-zero bits are
    // valid values of `T` (ZeroBits), so the `len` elements are initialised; the vector frees the
    // block with the same layout (capacity `len` of `T`, from the global allocator).
    unsafe {
        let ptr = alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            return Err(out_of_memory(bytes));
        }
        Ok(Vec::from_raw_parts(ptr, len, len))
    }
}

/// A vector of `len` copies of `value`, or `OutOfMemory`.
pub fn filled<T: Clone>(len: usize, value: T) -> KernelResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| out_of_memory(len.saturating_mul(std::mem::size_of::<T>())))?;
    v.resize(len, value);
    Ok(v)
}

fn out_of_memory(bytes: usize) -> KernelError {
    KernelError::OutOfMemory(format!(
        "cannot allocate {} for a buffer",
        human_bytes(bytes)
    ))
}

/// `1.5 GiB`-style sizes for messages.
pub fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_filled() {
        assert_eq!(zeroed::<f32>(3).unwrap(), vec![0.0; 3]);
        assert!(zeroed::<i64>(0).unwrap().is_empty());
        assert_eq!(filled(2, -1i64).unwrap(), vec![-1, -1]);
    }

    #[test]
    fn refusals_are_errors_not_aborts() {
        assert!(matches!(
            zeroed::<f32>(usize::MAX / 2),
            Err(KernelError::OutOfMemory(_))
        ));
        assert!(matches!(
            filled(usize::MAX / 4, 0u64),
            Err(KernelError::OutOfMemory(_))
        ));
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
