//! Robust process-shared synchronisation for shmproc.
//!
//! [`RawLock`] is one 64-byte lock word: a CAS to lock, a swap to unlock, a shared futex to
//! sleep on. Unlike a plain futex mutex it records *which* thread (of which process) holds it,
//! so when that holder dies — SIGKILL, abort, at any point — the next acquirer gets
//! [`LockError::OwnerDied`] holding the lock instead of hanging. [`Lock`] puts one in its own
//! shared segment; `Value`, `Array` and later primitives embed it.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use shmproc_sync::{Lock, LockError};
//!
//! let lock = Lock::new()?;
//! let guard = match lock.acquire_timeout(Duration::from_secs(1)) {
//!     Ok(guard) => guard,
//!     Err(LockError::OwnerDied(guard)) => guard, // previous holder died: repair, carry on
//!     Err(e) => return Err(e.without_guard().into()),
//! };
//! drop(guard);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod barrier;
mod condition;
mod error;
mod event;
mod lock;
pub(crate) mod owner;
mod raw;
mod rlock;
mod semaphore;
mod shared;
mod wait;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condition::{Condition, ConditionGuard};
pub use error::LockError;
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use owner::{
    current_process as process_identity, is_alive as identity_alive, process_identity_of,
};
pub use raw::{RawGuard, RawLock, LIVENESS_POLL};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};
pub use shmproc_shm::{Roster, RosterFull, ROSTER_SLOTS};
pub use wait::SyncError;
