//! Marker traits for what may live in shared memory.

use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicU16, AtomicU32, AtomicU64, AtomicU8,
};

/// Plain data that may be stored in a shared segment and copied in and out of it.
///
/// # Safety
/// Implementors must be `#[repr(C)]` or primitive, contain no pointers, references or handles
/// (they mean nothing in another process), have no padding bytes, and be valid for **every** bit
/// pattern (a peer may write anything). Alignment must not exceed 64.
///
/// # Examples
/// ```
/// use shmproc_shm::Shareable;
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Point { x: f64, y: f64 }
/// // SAFETY: two f64s, no padding, every bit pattern is a valid f64.
/// unsafe impl Shareable for Point {}
/// ```
pub unsafe trait Shareable: Copy + Send + Sync + 'static {
    /// The type name recorded in a segment header and checked when a segment is opened.
    fn type_name() -> &'static str {
        std::any::type_name::<Self>()
    }
}

macro_rules! shareable {
    ($($t:ty),*) => {$(
        // SAFETY: primitive numbers have no padding and every bit pattern is valid.
        unsafe impl Shareable for $t {}
    )*};
}
shareable!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

// SAFETY: an array of padding-free, all-bit-patterns-valid elements is itself such a type.
unsafe impl<T: Shareable, const N: usize> Shareable for [T; N] {}

/// Types that may be referenced (`&Self`) directly inside shared memory while other processes
/// change them: made only of atomics, so concurrent access is never a data race.
///
/// # Safety
/// Implementors must consist solely of atomic integers (possibly nested in `#[repr(C)]` structs;
/// padding is allowed but never read), be valid for every bit pattern and for the all-zero
/// pattern in particular, and contain no pointers.
pub unsafe trait AtomicShareable: Sync + 'static {}

macro_rules! atomic_shareable {
    ($($t:ty),*) => {$(
        // SAFETY: an atomic integer is valid for every bit pattern and is race-free by design.
        unsafe impl AtomicShareable for $t {}
    )*};
}
atomic_shareable!(
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64
);
