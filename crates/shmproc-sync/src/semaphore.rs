//! `Semaphore` and `BoundedSemaphore`: a process-shared counter of permits.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmproc_shm::{AtomicShareable, Kind, SegmentError, SharedRef};

use crate::shared;
use crate::wait::{block_on, deadline_in, wake, SyncError};

#[repr(C)]
#[derive(Debug, Default)]
struct State {
    /// Permits available now; the futex word.
    value: AtomicU32,
    /// Processes/threads asleep in `acquire`: release wakes only when there are some.
    sleepers: AtomicU32,
    /// 0 for a plain semaphore; the bound for a bounded one.
    max: AtomicU32,
}

// SAFETY: only AtomicU32s; every bit pattern is a valid (if odd) count.
unsafe impl AtomicShareable for State {}

const TYPE_NAME: &str = "shmproc::Semaphore";

impl shared::State for State {
    const KIND: Kind = Kind::Semaphore;
    const TYPE_NAME: &'static str = TYPE_NAME;
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`).
///
/// # Examples
/// ```
/// use shmproc_sync::Semaphore;
/// let sem = Semaphore::new(2)?;
/// sem.acquire()?;
/// sem.acquire()?;
/// assert!(sem.try_acquire().is_err()); // no permit left
/// sem.release()?;
/// assert_eq!(sem.value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// Permits have no owner: a process that dies after `acquire` never gives its permit back (as
/// in Python). Waiters are unaffected otherwise.
#[derive(Clone)]
pub struct Semaphore {
    state: SharedRef<State>,
}

impl Semaphore {
    /// A new anonymous semaphore with `value` permits, shared with children forked afterwards.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new(value: u32) -> Result<Semaphore, SegmentError> {
        Semaphore::make(None, value, 0)
    }

    /// A new named semaphore any process of this user can [`open`](Semaphore::open).
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str, value: u32) -> Result<Semaphore, SegmentError> {
        Semaphore::make(Some(name), value, 0)
    }

    /// Opens a named semaphore (plain or bounded).
    ///
    /// # Errors
    /// Any [`SegmentError`].
    pub fn open(name: &str) -> Result<Semaphore, SegmentError> {
        Ok(Semaphore {
            state: shared::open(Kind::Semaphore, TYPE_NAME, name)?,
        })
    }

    fn make(name: Option<&str>, value: u32, max: u32) -> Result<Semaphore, SegmentError> {
        let state = shared::create::<State>(Kind::Semaphore, TYPE_NAME, name, |s| {
            s.value.store(value, Ordering::Relaxed);
            s.max.store(max, Ordering::Relaxed);
        })?;
        Ok(Semaphore { state })
    }

    /// Takes a permit, waiting as long as it takes.
    ///
    /// # Errors
    /// [`SyncError::Io`] only if the futex call fails.
    pub fn acquire(&self) -> Result<(), SyncError> {
        self.acquire_until(None)
    }

    /// Takes a permit, giving up with [`SyncError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// `Timeout`, or as [`acquire`](Semaphore::acquire).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), SyncError> {
        self.acquire_until(deadline_in(timeout))
    }

    /// Takes a permit if one is free right now.
    ///
    /// # Errors
    /// [`SyncError::WouldBlock`] if none is.
    pub fn try_acquire(&self) -> Result<(), SyncError> {
        if self.take() {
            Ok(())
        } else {
            Err(SyncError::WouldBlock)
        }
    }

    fn take(&self) -> bool {
        let value = &self.state.value;
        let mut v = value.load(Ordering::Relaxed);
        while v > 0 {
            match value.compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<(), SyncError> {
        let s = &*self.state;
        if block_on(&s.value, &s.sleepers, || self.take(), deadline)? {
            Ok(())
        } else {
            Err(SyncError::Timeout)
        }
    }

    /// Gives a permit back, waking one waiter if any sleeps.
    ///
    /// # Errors
    /// [`SyncError::OverRelease`] for a bounded semaphore already at its initial value.
    pub fn release(&self) -> Result<(), SyncError> {
        let max = self.state.max.load(Ordering::Relaxed);
        let value = &self.state.value;
        let mut v = value.load(Ordering::Relaxed);
        loop {
            if (max != 0 && v >= max) || v == u32::MAX {
                return Err(SyncError::OverRelease { max });
            }
            match value.compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        wake(value, &self.state.sleepers, 1);
        Ok(())
    }

    /// Permits available now (a snapshot).
    pub fn value(&self) -> u32 {
        self.state.value.load(Ordering::Relaxed)
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.state.segment().name()
    }
}

shared::serde_via_state!(Semaphore, |state| Semaphore { state });

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name())
            .field("value", &self.value())
            .finish()
    }
}

/// A semaphore that refuses to be released above its initial value (Python's
/// `BoundedSemaphore`): an over-release is [`SyncError::OverRelease`], catching the bug of
/// releasing twice. Derefs to [`Semaphore`] for everything else.
///
/// # Examples
/// ```
/// use shmproc_sync::BoundedSemaphore;
/// let sem = BoundedSemaphore::new(1)?;
/// sem.acquire()?;
/// sem.release()?;
/// assert!(sem.release().is_err()); // beyond the initial value
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// A new anonymous bounded semaphore with `value` permits (also its maximum).
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory, or with
    /// `ErrorKind::InvalidInput` when `value` is 0.
    pub fn new(value: u32) -> Result<BoundedSemaphore, SegmentError> {
        BoundedSemaphore::make(None, value)
    }

    /// A new named bounded semaphore; open it with [`Semaphore::open`].
    ///
    /// # Errors
    /// As [`Semaphore::create`].
    pub fn create(name: &str, value: u32) -> Result<BoundedSemaphore, SegmentError> {
        BoundedSemaphore::make(Some(name), value)
    }

    fn make(name: Option<&str>, value: u32) -> Result<BoundedSemaphore, SegmentError> {
        if value == 0 {
            return Err(SegmentError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a bounded semaphore needs at least one permit",
            )));
        }
        Ok(BoundedSemaphore {
            inner: Semaphore::make(name, value, value)?,
        })
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.inner
    }
}
