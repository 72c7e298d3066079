//! The error of every lock acquisition.

use std::{fmt, io};

/// Why an acquisition did not simply succeed.
///
/// `OwnerDied` carries the guard, like std's `PoisonError`: the caller holds the lock and may
/// repair the data it protects. Recovery is one-shot: once that guard is dropped, the lock is
/// consistent and the next acquisition is a plain `Ok`.
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous owner's process (or thread) died while holding the lock. The lock now
    /// belongs to the caller through the carried guard; the protected data may be half updated.
    OwnerDied(G),
    /// The timeout of a `_timeout` call elapsed before the lock came free.
    Timeout,
    /// A `try_` call found the lock held.
    WouldBlock,
    /// The calling thread already holds this (non-reentrant) lock: waiting would never end.
    Deadlock,
    /// The OS failed a futex call (it should not; the message says why).
    Io(io::Error),
}

impl<G> LockError<G> {
    /// The guard of an `OwnerDied` error; `None` for the other variants.
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is `OwnerDied`.
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// Converts the guard of `OwnerDied`, keeping the other variants.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Timeout => LockError::Timeout,
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::Deadlock => LockError::Deadlock,
            LockError::Io(e) => LockError::Io(e),
        }
    }

    /// Drops the guard (releasing the lock), leaving an error that is `Send + Sync + 'static`.
    pub fn without_guard(self) -> LockError<()> {
        self.map(drop)
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Timeout => f.write_str("Timeout"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::Deadlock => f.write_str("Deadlock"),
            LockError::Io(e) => f.debug_tuple("Io").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str(
                "the previous owner process died while holding the lock; the lock is now held \
                 by the caller, check the data it protects",
            ),
            LockError::Timeout => f.write_str("timed out waiting for the lock"),
            LockError::WouldBlock => f.write_str("the lock is held by someone else"),
            LockError::Deadlock => {
                f.write_str("this thread already holds the lock (it is not re-entrant)")
            }
            LockError::Io(e) => write!(f, "lock wait failed: {e}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LockError<()>> for io::Error {
    fn from(e: LockError<()>) -> io::Error {
        let kind = match &e {
            LockError::Timeout => io::ErrorKind::TimedOut,
            LockError::WouldBlock => io::ErrorKind::WouldBlock,
            LockError::Deadlock => io::ErrorKind::Other,
            LockError::Io(inner) => inner.kind(),
            LockError::OwnerDied(()) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
