//! `Event`: a process-shared flag that processes can wait for.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmproc_shm::{AtomicShareable, Kind, SegmentError, SharedRef};

use crate::shared;
use crate::wait::{block_on, deadline_in, wake, SyncError};

#[repr(C)]
#[derive(Debug, Default)]
struct State {
    /// 0 clear, 1 set; the futex word.
    flag: AtomicU32,
    /// Waiters asleep: `set` makes the wake syscall only when there are some.
    sleepers: AtomicU32,
}

// SAFETY: only AtomicU32s; any non-zero flag reads as set.
unsafe impl AtomicShareable for State {}

const TYPE_NAME: &str = "shmproc::Event";

impl shared::State for State {
    const KIND: Kind = Kind::Event;
    const TYPE_NAME: &'static str = TYPE_NAME;
}

/// A process-shared event flag (Python's `multiprocessing.Event`): `wait` blocks until some
/// process calls `set`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmproc_sync::Event;
/// let ev = Event::new()?;
/// assert!(!ev.wait_timeout(Duration::from_millis(1))?); // not set: false after the timeout
/// ev.set()?;
/// assert!(ev.is_set());
/// ev.wait()?;                                           // returns at once
/// ev.clear()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// Nothing is held, so nothing is lost: a waiter keeps waiting for some other process to
/// `set` (use `wait_timeout` if the setter might die).
#[derive(Clone)]
pub struct Event {
    state: SharedRef<State>,
}

impl Event {
    /// A new anonymous event, initially clear.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new() -> Result<Event, SegmentError> {
        Ok(Event {
            state: shared::create(Kind::Event, TYPE_NAME, None, |_: &State| {})?,
        })
    }

    /// A new named event, initially clear.
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str) -> Result<Event, SegmentError> {
        Ok(Event {
            state: shared::create(Kind::Event, TYPE_NAME, Some(name), |_: &State| {})?,
        })
    }

    /// Opens a named event.
    ///
    /// # Errors
    /// Any [`SegmentError`].
    pub fn open(name: &str) -> Result<Event, SegmentError> {
        Ok(Event {
            state: shared::open(Kind::Event, TYPE_NAME, name)?,
        })
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity with the other primitives.
    pub fn set(&self) -> Result<(), SyncError> {
        if self.state.flag.swap(1, Ordering::SeqCst) == 0 {
            wake(&self.state.flag, &self.state.sleepers, u32::MAX);
        }
        Ok(())
    }

    /// Clears the flag.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity.
    pub fn clear(&self) -> Result<(), SyncError> {
        self.state.flag.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the flag is set (a snapshot).
    pub fn is_set(&self) -> bool {
        self.state.flag.load(Ordering::Acquire) != 0
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    /// [`SyncError::Io`] only if the futex call fails.
    pub fn wait(&self) -> Result<(), SyncError> {
        self.wait_until(None).map(drop)
    }

    /// Waits at most `timeout`; returns whether the flag was set (Python's `wait(timeout)`).
    ///
    /// # Errors
    /// [`SyncError::Io`] only if the futex call fails.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
        self.wait_until(deadline_in(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool, SyncError> {
        block_on(
            &self.state.flag,
            &self.state.sleepers,
            || self.is_set(),
            deadline,
        )
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.state.segment().name()
    }
}

shared::serde_via_state!(Event, |state| Event { state });

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("is_set", &self.is_set())
            .finish()
    }
}
