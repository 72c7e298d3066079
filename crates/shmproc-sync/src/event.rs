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
    /// Bit 0: the flag; bits 1–31: how many times it went from clear to set (wrapping). The
    /// futex word. The count lets a waiter that was blocked when `set` happened return `true`
    /// even if `clear` came before it woke (Python's behaviour).
    word: AtomicU32,
    /// Waiters asleep: `set` makes the wake syscall only when there are some.
    sleepers: AtomicU32,
}

// SAFETY: only AtomicU32s; every bit pattern is a flag and a count.
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
/// A waiter that was blocked when `set` happened returns (with `true`) even if `clear` follows
/// at once, as in Python.
///
/// # When a process dies
/// Nothing is held, so nothing is lost: a waiter keeps waiting for some other process to
/// `set` (use `wait_timeout` if the setter might die). A setter killed between setting the flag
/// and waking the waiters still releases them (within about
/// [`LIVENESS_POLL`](crate::LIVENESS_POLL)).
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
        let set_now = self
            .state
            .word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w & 1 == 0).then_some((w | 1).wrapping_add(2))
            })
            .is_ok();
        if set_now {
            wake(&self.state.word, &self.state.sleepers, u32::MAX);
        }
        Ok(())
    }

    /// Clears the flag.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity.
    pub fn clear(&self) -> Result<(), SyncError> {
        self.state.word.fetch_and(!1, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the flag is set (a snapshot).
    pub fn is_set(&self) -> bool {
        self.state.word.load(Ordering::Acquire) & 1 != 0
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
        let word = &self.state.word;
        let start = word.load(Ordering::Acquire);
        // Set now, or set (and maybe cleared again) since we began waiting.
        let happened = || {
            let now = word.load(Ordering::Acquire);
            now & 1 != 0 || now >> 1 != start >> 1
        };
        block_on(word, &self.state.sleepers, happened, deadline)
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
