//! Errors of `get`/`set`-style access to a `Value` or `Array`.

use std::{fmt, io};

use shmproc_sync::LockError;

/// Why a `get`/`set`/`to_vec` on a `Value` or `Array` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AccessError {
    /// A process died while holding this value's lock. Reported once: the lock is consistent
    /// again and the next call proceeds, but the data may hold a half-done update.
    OwnerDied,
    /// This thread holds the value's lock through a guard: use the guard instead.
    Deadlock,
    /// The index is past the end of the array.
    OutOfBounds {
        /// The index asked for.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// A futex call failed.
    Io(io::Error),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::OwnerDied => f.write_str(
                "a process died while holding this value's lock; the value may be half updated \
                 (the lock works again, retry after checking the data)",
            ),
            AccessError::Deadlock => f.write_str(
                "this thread holds the value's lock already: read or write through its guard",
            ),
            AccessError::OutOfBounds { index, len } => {
                write!(
                    f,
                    "index {index} out of bounds for an array of length {len}"
                )
            }
            AccessError::Io(e) => write!(f, "lock wait failed: {e}"),
        }
    }
}

impl std::error::Error for AccessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AccessError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl<G> From<LockError<G>> for AccessError {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => AccessError::OwnerDied,
            LockError::Io(e) => AccessError::Io(e),
            // Blocking acquisition never times out or would-blocks; Deadlock is all that is left.
            _ => AccessError::Deadlock,
        }
    }
}
