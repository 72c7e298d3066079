//! `Condition`: a process-shared condition variable with its own (or a given) lock.

use std::fmt;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc_shm::{sys, AtomicShareable, Kind, SegmentError, SharedRef};

use crate::wait::{deadline_in, sleep, Slept, SyncError};
use crate::{shared, Lock, LockError, RawGuard, RawLock};

#[repr(C)]
#[derive(Debug, Default)]
struct State {
    /// The condition's own lock (unused when built over a given `Lock`).
    lock: RawLock,
    words: Words,
}

#[repr(C)]
#[derive(Debug, Default)]
struct Words {
    /// Bumped by every notify; waiters sleep while it is unchanged.
    seq: AtomicU32,
    /// Waiters asleep: notify makes the wake syscall only when there are some.
    sleepers: AtomicU32,
    /// Wakes owed by notifies made while holding the condition's own lock; paid when the lock
    /// is released, so a woken waiter finds the lock free instead of sleeping again on it.
    pending: AtomicU32,
}

// SAFETY: a RawLock and AtomicU32s (plus padding never read); all zero is a fresh condition.
unsafe impl AtomicShareable for State {}
// SAFETY: only AtomicU32s.
unsafe impl AtomicShareable for Words {}

const TYPE_NAME: &str = "shmproc::Condition";

impl shared::State for State {
    const KIND: Kind = Kind::Condition;
    const TYPE_NAME: &'static str = TYPE_NAME;
}
/// Spins of a waiter before it sleeps.
const SPINS: u32 = 100;

/// A process-shared condition variable (Python's `multiprocessing.Condition`): wait, holding
/// its lock, until another process changes shared state and notifies.
///
/// Waits may wake spuriously; use [`wait_while`](Condition::wait_while) to wait for a predicate.
/// No wake-up is lost: a notify after a waiter released the lock always reaches it.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmproc_sync::Condition;
/// let cond = Condition::new()?;
/// let guard = cond.lock().unwrap();
/// let (guard, notified) = cond.wait_timeout(guard, Duration::from_millis(1)).unwrap();
/// assert!(!notified); // nobody notified
/// drop(guard);
/// cond.notify_all()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// Holding the lock: the next `lock`/`wait` return gets [`LockError::OwnerDied`] with the
/// guard. Waiting: nothing happens to the others. A process that dies instead of notifying
/// cannot be detected by the condition: use the `_timeout` forms if that can happen.
#[derive(Clone)]
pub struct Condition {
    state: SharedRef<State>,
    lock: SharedRef<RawLock>,
    words: SharedRef<Words>,
    /// The `Lock` it was built over; `None` when it uses its own (then every holder has a
    /// [`ConditionGuard`]).
    external: Option<Lock>,
}

impl Condition {
    /// A new anonymous condition with its own lock.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new() -> Result<Condition, SegmentError> {
        Condition::from_state(
            shared::create(Kind::Condition, TYPE_NAME, None, |_: &State| {})?,
            None,
        )
    }

    /// A new anonymous condition over an existing `lock` (Python's `Condition(lock)`).
    ///
    /// # Errors
    /// As [`new`](Condition::new).
    pub fn with_lock(lock: &Lock) -> Result<Condition, SegmentError> {
        Condition::from_state(
            shared::create(Kind::Condition, TYPE_NAME, None, |_: &State| {})?,
            Some(lock),
        )
    }

    /// A new named condition with its own lock.
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str) -> Result<Condition, SegmentError> {
        Condition::from_state(
            shared::create(Kind::Condition, TYPE_NAME, Some(name), |_: &State| {})?,
            None,
        )
    }

    /// Opens a named condition that uses its own lock.
    ///
    /// # Errors
    /// Any [`SegmentError`].
    pub fn open(name: &str) -> Result<Condition, SegmentError> {
        Condition::from_state(shared::open(Kind::Condition, TYPE_NAME, name)?, None)
    }

    fn from_state(state: SharedRef<State>, lock: Option<&Lock>) -> Result<Condition, SegmentError> {
        let seg = Arc::clone(state.segment());
        Ok(Condition {
            lock: match lock {
                Some(lock) => lock.shared_raw(),
                None => SharedRef::new(Arc::clone(&seg), offset_of!(State, lock))?,
            },
            words: SharedRef::new(seg, offset_of!(State, words))?,
            external: lock.cloned(),
            state,
        })
    }

    fn adopt<'a>(
        &'a self,
        acquired: Result<RawGuard<'a>, LockError<RawGuard<'a>>>,
    ) -> Result<ConditionGuard<'a>, LockError<ConditionGuard<'a>>> {
        let adopt = |raw: RawGuard<'a>| {
            // The condition guard releases the lock itself (paying pending wakes first).
            std::mem::forget(raw);
            ConditionGuard {
                cond: self,
                _not_send: PhantomData,
            }
        };
        acquired.map(adopt).map_err(|e| e.map(adopt))
    }

    /// Releases the lock held through a guard, then makes the wakes notifies deferred.
    fn unlock(&self) {
        let owed = self.words.pending.swap(0, Ordering::Relaxed);
        // SAFETY: called only from a ConditionGuard's drop, whose thread holds the lock.
        let _ = unsafe { self.lock.unlock() };
        if owed > 0 {
            sys::futex_wake(&self.words.seq, owed);
        }
    }

    /// Acquires the condition's lock.
    ///
    /// # Errors
    /// As [`Lock::acquire`].
    pub fn lock(&self) -> Result<ConditionGuard<'_>, LockError<ConditionGuard<'_>>> {
        self.adopt(self.lock.acquire())
    }

    /// Acquires the condition's lock, giving up after `timeout`.
    ///
    /// # Errors
    /// As [`Lock::acquire_timeout`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_>, LockError<ConditionGuard<'_>>> {
        self.adopt(self.lock.acquire_timeout(timeout))
    }

    /// Acquires the condition's lock if free right now.
    ///
    /// # Errors
    /// As [`Lock::try_acquire`].
    pub fn try_lock(&self) -> Result<ConditionGuard<'_>, LockError<ConditionGuard<'_>>> {
        self.adopt(self.lock.try_acquire())
    }

    /// Releases the lock, sleeps until notified (or spuriously woken), re-acquires the lock.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard) if a holder died meanwhile.
    ///
    /// # Panics
    /// If `guard` belongs to another lock.
    pub fn wait<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
    ) -> Result<ConditionGuard<'a>, LockError<ConditionGuard<'a>>> {
        self.wait_until(guard, None).map(|(g, _)| g)
    }

    /// Like [`wait`](Condition::wait) for at most `timeout`; the flag is `false` if the timeout
    /// elapsed (Python's `wait(timeout)`). The lock is held again either way.
    ///
    /// # Errors
    /// As `wait`.
    ///
    /// # Panics
    /// If `guard` belongs to another lock.
    pub fn wait_timeout<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        timeout: Duration,
    ) -> Result<(ConditionGuard<'a>, bool), LockError<ConditionGuard<'a>>> {
        self.wait_until(guard, deadline_in(timeout))
    }

    /// Waits while `condition()` is true (Python's `wait_for(not condition)`), checking it with
    /// the lock held.
    ///
    /// # Errors
    /// As `wait`.
    ///
    /// # Panics
    /// If `guard` belongs to another lock.
    pub fn wait_while<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        condition: impl FnMut() -> bool,
    ) -> Result<ConditionGuard<'a>, LockError<ConditionGuard<'a>>> {
        self.wait_while_until(guard, condition, None)
            .map(|(g, _)| g)
    }

    /// Like [`wait_while`](Condition::wait_while) for at most `timeout`; the flag is `false` if
    /// the timeout elapsed with `condition()` still true.
    ///
    /// # Errors
    /// As `wait`.
    ///
    /// # Panics
    /// If `guard` belongs to another lock.
    pub fn wait_while_timeout<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        condition: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<(ConditionGuard<'a>, bool), LockError<ConditionGuard<'a>>> {
        self.wait_while_until(guard, condition, deadline_in(timeout))
    }

    fn wait_while_until<'a>(
        &'a self,
        mut guard: ConditionGuard<'a>,
        mut condition: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<(ConditionGuard<'a>, bool), LockError<ConditionGuard<'a>>> {
        while condition() {
            let (g, in_time) = self.wait_until(guard, deadline)?;
            guard = g;
            if !in_time {
                let done = !condition();
                return Ok((guard, done));
            }
        }
        Ok((guard, true))
    }

    fn wait_until<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        deadline: Option<Instant>,
    ) -> Result<(ConditionGuard<'a>, bool), LockError<ConditionGuard<'a>>> {
        assert!(
            std::ptr::eq(&*guard.cond.lock, &*self.lock),
            "Condition::wait called with the guard of another condition's lock"
        );
        let words = &*self.words;
        let seq = words.seq.load(Ordering::Relaxed);
        // Counted before the lock is released: a notifier that runs after we unlock sees us.
        words.sleepers.fetch_add(1, Ordering::SeqCst);
        drop(guard);
        // A notify often follows within a few hundred nanoseconds: spin before sleeping.
        let notified_early = (0..SPINS).any(|_| {
            std::hint::spin_loop();
            words.seq.load(Ordering::Acquire) != seq
        });
        let slept = if notified_early {
            Ok(Slept::Woken)
        } else {
            sleep_until_notified(&words.seq, seq, deadline)
        };
        words.sleepers.fetch_sub(1, Ordering::Relaxed);
        let guard = self.adopt(self.lock.acquire())?;
        match slept {
            Ok(Slept::Deadline) => Ok((guard, false)),
            Ok(_) => Ok((guard, true)),
            Err(SyncError::Io(e)) => Err(LockError::Io(e)),
            Err(_) => Ok((guard, true)),
        }
    }

    /// Wakes one waiter, if any.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity.
    pub fn notify_one(&self) -> Result<(), SyncError> {
        self.notify(1)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    /// None in practice; `Result` for uniformity.
    pub fn notify_all(&self) -> Result<(), SyncError> {
        self.notify(u32::MAX)
    }

    fn notify(&self, n: u32) -> Result<(), SyncError> {
        let words = &*self.words;
        words.seq.fetch_add(1, Ordering::SeqCst);
        if words.sleepers.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        if self.external.is_none() && self.lock.is_held_by_current_thread() {
            // Waking now would only make the waiter sleep again on the lock we hold.
            let owed = words.pending.load(Ordering::Relaxed);
            words
                .pending
                .store(owed.saturating_add(n), Ordering::Relaxed);
        } else {
            sys::futex_wake(&words.seq, n);
        }
        Ok(())
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.words.segment().name()
    }
}

/// A condition travels as its segment plus, when built over a given `Lock`, that lock (see
/// [`Lock`]'s serde notes).
/// Sleeps until `seq` moves past `seen` (a notify) or the deadline. Untimed sleeps are watched:
/// a notify whose waker died before waking anyone (a wake deferred to the unlock of a notifier
/// killed holding the lock) still ends the sleep.
fn sleep_until_notified(
    seq: &AtomicU32,
    seen: u32,
    deadline: Option<Instant>,
) -> Result<Slept, SyncError> {
    loop {
        match sleep(seq, seen, deadline, None)? {
            Slept::Deadline => return Ok(Slept::Deadline),
            _ if seq.load(Ordering::Acquire) != seen => return Ok(Slept::Woken),
            _ => {} // a nap or a spurious wake-up: not notified yet
        }
    }
}

impl serde::Serialize for Condition {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serde::Serialize::serialize(
            &(shared::Handle(self.state.clone()), &self.external),
            serializer,
        )
    }
}

impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (handle, external): (shared::Handle<State>, Option<Lock>) =
            serde::Deserialize::deserialize(deserializer)?;
        Condition::from_state(handle.0, external.as_ref()).map_err(serde::de::Error::custom)
    }
}

/// Holds a [`Condition`]'s lock; releases it on drop (then wakes the waiters that notifies
/// made meanwhile). Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        self.cond.unlock();
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("name", &self.name())
            .field("sleepers", &self.words.sleepers.load(Ordering::Relaxed))
            .finish()
    }
}
