//! `Lock`: a handle to a robust lock in its own shared segment.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use shmproc_shm::{Kind, Segment, SegmentError, SharedRef, Spec, TypeInfo};

use crate::{LockError, RawGuard, RawLock};

/// The guard of a [`Lock`]: the lock is held until it is dropped.
pub type LockGuard<'a> = RawGuard<'a>;

/// A process-shared, non-reentrant lock (Python's `multiprocessing.Lock`) that survives its
/// owner's death: the next acquirer gets [`LockError::OwnerDied`] holding the lock, within
/// about [`LIVENESS_POLL`](crate::LIVENESS_POLL), instead of hanging.
///
/// # Examples
/// ```
/// use shmproc_sync::Lock;
/// let lock = Lock::new()?;
/// let guard = lock.acquire().map_err(|e| e.without_guard())?; // released on drop
/// let again = lock.try_acquire(); // non-reentrant: fails, never deadlocks
/// assert!(again.is_err());
/// drop((again, guard));
/// let guard = lock.try_acquire();
/// assert!(guard.is_ok());
/// # drop(guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// Holding it: the next acquirer (including one already blocked) gets `OwnerDied(guard)`.
/// Waiting on it: nothing happens to the others.
#[derive(Clone)]
pub struct Lock {
    raw: SharedRef<RawLock>,
}

fn spec() -> Spec {
    Spec {
        kind: Kind::Lock,
        elem: TypeInfo::none(),
        payload_len: std::mem::size_of::<RawLock>(),
    }
}

impl Lock {
    /// A new lock in an anonymous segment, shared with children forked afterwards.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new() -> Result<Lock, SegmentError> {
        Lock::from_segment(Segment::create_anonymous(&spec(), |_| Ok(()))?)
    }

    /// A new named lock any process of this user can [`open`](Lock::open).
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str) -> Result<Lock, SegmentError> {
        Lock::from_segment(Segment::create_named(name, &spec(), |_| Ok(()))?)
    }

    /// Opens a named lock created elsewhere.
    ///
    /// # Errors
    /// Any [`SegmentError`]: missing, not a lock, corrupt, …
    pub fn open(name: &str) -> Result<Lock, SegmentError> {
        Lock::from_segment(Segment::open_named(name, Kind::Lock, TypeInfo::none())?)
    }

    fn from_segment(seg: Segment) -> Result<Lock, SegmentError> {
        Ok(Lock {
            raw: SharedRef::new(Arc::new(seg), 0)?,
        })
    }

    /// Blocks until the lock is held.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard) if the previous holder died;
    /// [`LockError::Deadlock`] if this thread holds it already.
    pub fn acquire(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.raw.acquire()
    }

    /// Like [`acquire`](Lock::acquire) but gives up with [`LockError::Timeout`].
    ///
    /// # Errors
    /// As `acquire`, plus `Timeout`.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.raw.acquire_timeout(timeout)
    }

    /// Acquires only if free right now.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] if held; [`LockError::OwnerDied`] if its holder died.
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.raw.try_acquire()
    }

    /// Whether the lock is held right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.raw.segment().name()
    }

    /// Keeps a named lock after its creator is done (see [`Segment::persist`]).
    pub fn persist(&self) {
        self.raw.segment().persist();
    }

    /// A shared handle to the raw lock word (keeps the segment mapped).
    pub(crate) fn shared_raw(&self) -> SharedRef<RawLock> {
        self.raw.clone()
    }

    /// The raw lock word, for building other primitives on it.
    pub fn raw(&self) -> &RawLock {
        &self.raw
    }
}

/// A `Lock` can be an argument or result of a spawned entry or Pool task: an anonymous one
/// travels as a file descriptor (only there — elsewhere serializing it is an error), a named one
/// by name.
impl serde::Serialize for Lock {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.segment().serialize_handle(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Lock {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seg = Segment::deserialize_handle(deserializer, Kind::Lock, TypeInfo::none())?;
        Lock::from_segment(seg).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name())
            .field("owner_tid", &self.raw.owner_tid())
            .finish()
    }
}
