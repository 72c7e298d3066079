//! The error of the synchronisation family, and one futex sleep helper they all use.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};
use std::{fmt, io};

use shmproc_shm::sys::{self, WaitOutcome};
use shmproc_shm::watcher::{sleep_watched, Word, LIVENESS_POLL};
use shmproc_shm::RosterFull;

/// Why a semaphore, event, condition or barrier operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncError {
    /// The timeout of a `_timeout` call elapsed.
    Timeout,
    /// A `try_` call would have had to wait.
    WouldBlock,
    /// A `BoundedSemaphore` was released more often than acquired.
    OverRelease {
        /// The semaphore's initial (and maximum) value.
        max: u32,
    },
    /// The calling thread does not hold the (re-entrant) lock it tried to release.
    NotOwner,
    /// A barrier participant process died (or was seen dead) while others waited: the round can
    /// never complete. The barrier stays broken until `reset`.
    ParticipantDied {
        /// The dead participant's pid.
        pid: u32,
    },
    /// The barrier was broken earlier (a participant died, or `abort` was called).
    Broken,
    /// The barrier already has as many member processes as it can track
    /// ([`ROSTER_SLOTS`](shmproc_shm::ROSTER_SLOTS) live ones): this process cannot join.
    TooManyProcesses(RosterFull),
    /// A constructor argument is out of range.
    InvalidArgument(&'static str),
    /// A futex call failed.
    Io(io::Error),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Timeout => f.write_str("timed out"),
            SyncError::WouldBlock => f.write_str("would have to wait"),
            SyncError::OverRelease { max } => write!(
                f,
                "bounded semaphore released more times than acquired (its maximum is {max})"
            ),
            SyncError::NotOwner => f.write_str("releasing a lock this thread does not hold"),
            SyncError::ParticipantDied { pid } => write!(
                f,
                "barrier participant process {pid} died: the round cannot complete (reset the \
                 barrier to use it again)"
            ),
            SyncError::Broken => {
                f.write_str("the barrier is broken (a participant died or it was aborted)")
            }
            SyncError::TooManyProcesses(full) => full.fmt(f),
            SyncError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            SyncError::Io(e) => write!(f, "futex wait failed: {e}"),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Io(e) => Some(e),
            SyncError::TooManyProcesses(full) => Some(full),
            _ => None,
        }
    }
}

/// How a [`sleep`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slept {
    /// Woken, or the word had changed already.
    Woken,
    /// The nap elapsed: time to check on peers.
    Nap,
    /// The deadline has passed.
    Deadline,
}

/// Sleeps on `word` while it equals `expected`, until woken, `deadline`, or a nap elapses: `nap`
/// if given (callers that check on peers after each), else [`LIVENESS_POLL`]. A sleep with
/// neither a deadline nor a nap is untimed but *watched* (see [`shmproc_shm::watcher`]): woken
/// once `word` changed, even if whoever changed it died before waking anyone.
pub(crate) fn sleep(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
    nap: Option<Duration>,
) -> Result<Slept, SyncError> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if left.is_some_and(|l| l.is_zero()) {
        return Ok(Slept::Deadline);
    }
    if left.is_none() && nap.is_none() {
        if let Some(slept) = sleep_watched(Word::Narrow(word), expected, None) {
            slept.map_err(SyncError::Io)?;
            return Ok(Slept::Woken);
        }
    }
    let nap = nap.unwrap_or(LIVENESS_POLL);
    let timeout = left.map_or(nap, |l| l.min(nap));
    match sys::futex_wait(word, expected, Some(timeout)).map_err(SyncError::Io)? {
        WaitOutcome::Woken => Ok(Slept::Woken),
        WaitOutcome::TimedOut if deadline.is_some_and(|d| Instant::now() >= d) => {
            Ok(Slept::Deadline)
        }
        WaitOutcome::TimedOut => Ok(Slept::Nap),
    }
}

/// A deadline `timeout` from now.
pub(crate) fn deadline_in(timeout: Duration) -> Option<Instant> {
    Some(Instant::now() + timeout)
}

/// Waits until `ready()` succeeds: spins briefly, then sleeps on `word` (whatever value it holds
/// once this waiter is counted in `sleepers`, so wakers skip the syscall when nobody sleeps).
/// A waker changes `word`, then calls [`wake`]. Returns `Ok(false)` at the deadline.
pub(crate) fn block_on(
    word: &AtomicU32,
    sleepers: &AtomicU32,
    mut ready: impl FnMut() -> bool,
    deadline: Option<Instant>,
) -> Result<bool, SyncError> {
    for _ in 0..100 {
        if ready() {
            return Ok(true);
        }
        std::hint::spin_loop();
    }
    loop {
        sleepers.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // SeqCst pairs with the waker's store + `sleepers` load: either it sees us counted, or
        // we see its change in `seen` (or the futex sees it) and do not sleep.
        let seen = word.load(std::sync::atomic::Ordering::SeqCst);
        let slept = if ready() {
            sleepers.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(true);
        } else {
            sleep(word, seen, deadline, None)
        };
        sleepers.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if ready() {
            return Ok(true);
        }
        if slept? == Slept::Deadline {
            return Ok(false);
        }
    }
}

/// Wakes `n` sleepers of `word` if [`block_on`] counted any.
pub(crate) fn wake(word: &AtomicU32, sleepers: &AtomicU32, n: u32) {
    if sleepers.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        sys::futex_wake(word, n);
    }
}
