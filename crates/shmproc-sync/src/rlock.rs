//! `RLock`: a re-entrant process-shared lock.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmproc_shm::{AtomicShareable, Kind, SegmentError, SharedRef};

use crate::wait::SyncError;
use crate::{shared, LockError, RawLock};

#[repr(C)]
#[derive(Debug, Default)]
struct State {
    lock: RawLock,
    /// How many times the owning thread holds it; only the owner touches it.
    depth: AtomicU32,
}

// SAFETY: a RawLock and an AtomicU32 (plus padding never read); all zero is unlocked.
unsafe impl AtomicShareable for State {}

const TYPE_NAME: &str = "shmproc::RLock";

impl shared::State for State {
    const KIND: Kind = Kind::RLock;
    const TYPE_NAME: &'static str = TYPE_NAME;
}

/// A re-entrant process-shared lock (Python's `multiprocessing.RLock`): the thread holding it
/// may acquire it again; it is released when every guard is dropped.
///
/// # Examples
/// ```
/// use shmproc_sync::RLock;
/// let rlock = RLock::new()?;
/// let outer = rlock.acquire().unwrap();
/// let inner = rlock.acquire().unwrap(); // same thread: fine
/// drop(inner);
/// assert!(rlock.is_locked());
/// drop(outer);
/// assert!(!rlock.is_locked());
/// assert!(rlock.release().is_err());     // not held: an error, never undefined behaviour
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// As for [`Lock`](crate::Lock): the next acquirer gets [`LockError::OwnerDied`] holding it
/// once (depth 1), whatever depth the dead owner had.
#[derive(Clone)]
pub struct RLock {
    state: SharedRef<State>,
}

impl RLock {
    /// A new anonymous re-entrant lock.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new() -> Result<RLock, SegmentError> {
        Ok(RLock {
            state: shared::create(Kind::RLock, TYPE_NAME, None, |_: &State| {})?,
        })
    }

    /// A new named re-entrant lock.
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str) -> Result<RLock, SegmentError> {
        Ok(RLock {
            state: shared::create(Kind::RLock, TYPE_NAME, Some(name), |_: &State| {})?,
        })
    }

    /// Opens a named re-entrant lock.
    ///
    /// # Errors
    /// Any [`SegmentError`].
    pub fn open(name: &str) -> Result<RLock, SegmentError> {
        Ok(RLock {
            state: shared::open(Kind::RLock, TYPE_NAME, name)?,
        })
    }

    /// Acquires (again, if this thread holds it already).
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the lock) if the previous owner died.
    pub fn acquire(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.acquire_until(None)
    }

    /// Like [`acquire`](RLock::acquire), giving up with [`LockError::Timeout`].
    ///
    /// # Errors
    /// As `acquire`, plus `Timeout`.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.acquire_until(Some(Instant::now() + timeout))
    }

    /// Acquires if free (or held by this thread) right now.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] if another thread holds it; `OwnerDied` as for `acquire`.
    pub fn try_acquire(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.enter(|lock| lock.try_acquire())
    }

    fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.enter(|lock| lock.acquire_until(deadline))
    }

    fn enter<'a>(
        &'a self,
        lock_raw: impl FnOnce(
            &'a RawLock,
        ) -> Result<crate::RawGuard<'a>, LockError<crate::RawGuard<'a>>>,
    ) -> Result<RLockGuard<'a>, LockError<RLockGuard<'a>>> {
        let s = &*self.state;
        if s.lock.is_held_by_current_thread() {
            s.depth.fetch_add(1, Ordering::Relaxed);
            return Ok(self.guard());
        }
        // The raw guard's release is taken over by the RLock guard (depth counting).
        let adopt = |raw: crate::RawGuard<'a>| {
            std::mem::forget(raw);
            s.depth.store(1, Ordering::Relaxed);
            self.guard()
        };
        lock_raw(&s.lock).map(adopt).map_err(|e| e.map(adopt))
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            rlock: self,
            _not_send: PhantomData,
        }
    }

    /// Releases one level held by this thread — for code that `forget`s guards, Python style.
    /// Guards call this on drop.
    ///
    /// # Errors
    /// [`SyncError::NotOwner`] if the calling thread does not hold the lock.
    pub fn release(&self) -> Result<(), SyncError> {
        let s = &*self.state;
        if !s.lock.is_held_by_current_thread() {
            return Err(SyncError::NotOwner);
        }
        if s.depth.load(Ordering::Relaxed) <= 1 {
            s.depth.store(0, Ordering::Relaxed);
            // SAFETY: checked above that this thread holds the raw lock.
            let _ = unsafe { s.lock.unlock() };
        } else {
            s.depth.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether any thread holds it (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.lock.is_locked()
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.state.segment().name()
    }
}

shared::serde_via_state!(RLock, |state| RLock { state });

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("name", &self.name())
            .field("owner_tid", &self.state.lock.owner_tid())
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases that level on drop. Not `Send`.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    rlock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // Cannot fail: a guard exists only while its thread holds the lock.
        let _ = self.rlock.release();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
