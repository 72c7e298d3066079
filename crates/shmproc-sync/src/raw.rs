//! The robust process-shared lock word every shmproc lock builds on.
//!
//! # The lock word (one `AtomicU64`)
//! | bits   | meaning |
//! |--------|---------|
//! | 0–30   | owner process's liveness token (0 with everything else 0 = unlocked) |
//! | 31     | CONTENDED: someone may sleep on the futex; unlock must wake |
//! | 32–63  | owner thread id (tells threads of one process apart) |
//!
//! The futex is the low 32 bits (token + CONTENDED), so a sleeper re-checks exactly what an
//! unlock changes. Fast paths are one CAS to lock and one CAS to unlock (from the caller's own
//! identity: a guard never releases a lock someone else holds), as a plain futex mutex. A
//! waiter without a deadline sleeps untimed but watched ([`shmproc_shm::watcher`]: the
//! process's watcher thread wakes it within a [`LIVENESS_POLL`] if the owner dies — no timer
//! armed per sleep, which cost a contended lock about a tenth of its throughput); a waiter with
//! a deadline naps [`LIVENESS_POLL`] at a time. Either then checks whether the owner still runs — through the kernel-held liveness of its token
//! ([`shmproc_shm::liveness`]), never a pid lookup, so a live owner in another PID namespace is
//! never taken for dead; if it is dead, the waiter takes the lock over with one CAS from the dead
//! owner's exact word (so only one waiter wins) and reports `OwnerDied`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmproc_shm::sys::{self, WaitOutcome};
use shmproc_shm::watcher;
use shmproc_shm::AtomicShareable;

use crate::{owner, LockError};

const CONTENDED: u64 = 1 << 31;
pub use shmproc_shm::watcher::LIVENESS_POLL;
/// Spins before sleeping: a short critical section in another process usually ends first.
const SPINS: u32 = 100;

/// A robust, process-shared mutual-exclusion lock word (64 bytes, one cache line). All zeroes
/// is a valid unlocked lock, so a fresh segment needs no initialisation.
///
/// # Examples
/// ```
/// use shmproc_sync::RawLock;
/// let lock = RawLock::new();
/// {
///     let _guard = lock.acquire().unwrap();
///     assert!(lock.is_locked());
/// }
/// assert!(!lock.is_locked());
/// ```
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct RawLock {
    word: AtomicU64,
}

// SAFETY: a single AtomicU64 (plus alignment padding that is never read); zero is unlocked and
// every other bit pattern is handled (an unknown owner is checked for liveness).
unsafe impl AtomicShareable for RawLock {}

enum Acquired {
    Clean,
    OwnerDied,
}

impl RawLock {
    /// An unlocked lock.
    pub const fn new() -> RawLock {
        RawLock {
            word: AtomicU64::new(0),
        }
    }

    /// Blocks until the lock is acquired.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the lock) if the previous owner died;
    /// [`LockError::Deadlock`] if this thread holds it already.
    #[inline]
    pub fn acquire(&self) -> Result<RawGuard<'_>, LockError<RawGuard<'_>>> {
        self.acquire_until(None)
    }

    /// Like [`acquire`](Self::acquire), giving up with [`LockError::Timeout`] after `timeout`
    /// (monotonic clock).
    ///
    /// # Errors
    /// As `acquire`, plus `Timeout`.
    #[inline]
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RawGuard<'_>, LockError<RawGuard<'_>>> {
        self.acquire_until(Some(Instant::now() + timeout))
    }

    /// Acquires without waiting. When the lock is held, this checks (a liveness query, about a
    /// microsecond) that the holder still runs, so don't spin on it: use `acquire_timeout`.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] if the lock is held by a live owner (or by this thread);
    /// [`LockError::OwnerDied`] if its owner is dead (the caller now holds it).
    pub fn try_acquire(&self) -> Result<RawGuard<'_>, LockError<RawGuard<'_>>> {
        let me = owner::current();
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur == 0 {
                if self.cas(0, me) {
                    return Ok(self.guard());
                }
                continue;
            }
            if cur & !CONTENDED != me && self.take_over_if_dead(cur, me) {
                return Err(LockError::OwnerDied(self.guard()));
            }
            return Err(LockError::WouldBlock);
        }
    }

    /// Blocks until the lock is acquired or `deadline` (if any) passes.
    ///
    /// # Errors
    /// As [`acquire_timeout`](Self::acquire_timeout).
    #[inline]
    pub fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<RawGuard<'_>, LockError<RawGuard<'_>>> {
        let me = owner::current();
        let outcome = if self.cas(0, me) {
            Ok(Acquired::Clean)
        } else {
            self.lock_contended(me, deadline)
        };
        match outcome {
            Ok(Acquired::Clean) => Ok(self.guard()),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(self.guard())),
            Err(e) => Err(e),
        }
    }

    /// Whether anyone holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    /// Whether the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.word.load(Ordering::Relaxed) & !CONTENDED == owner::current()
    }

    /// The thread id of the current owner, if locked (a snapshot, for diagnostics).
    pub fn owner_tid(&self) -> Option<u32> {
        let w = self.word.load(Ordering::Relaxed);
        (w != 0).then(|| owner::tid_of(w))
    }

    /// Releases the lock if the calling thread holds it; returns whether it did. A lock that
    /// was taken over meanwhile (its holder was judged dead) is left to its new holder.
    ///
    /// # Safety
    /// The calling thread must hold the lock through a guard it then forgets (dropping that
    /// guard as well would release a critical section begun later by this same thread).
    #[inline]
    pub unsafe fn unlock(&self) -> bool {
        let me = owner::current();
        if self
            .word
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        self.unlock_contended(me)
    }

    #[cold]
    fn unlock_contended(&self, me: u64) -> bool {
        let released = self
            .word
            .compare_exchange(me | CONTENDED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if released {
            sys::futex_wake_low(&self.word, 1);
        }
        released
    }

    #[inline]
    fn cas(&self, from: u64, to: u64) -> bool {
        self.word
            .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn guard(&self) -> RawGuard<'_> {
        RawGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock from a dead owner: succeeds only if the word still is `cur`.
    fn take_over_if_dead(&self, cur: u64, me: u64) -> bool {
        !owner::owner_alive(cur & !CONTENDED) && self.cas(cur, me | CONTENDED)
    }

    #[cold]
    fn lock_contended(
        &self,
        me: u64,
        deadline: Option<Instant>,
    ) -> Result<Acquired, LockError<RawGuard<'_>>> {
        // Spin while the holder runs a short critical section and nobody sleeps yet.
        for _ in 0..SPINS {
            let cur = self.word.load(Ordering::Relaxed);
            if cur == 0 {
                if self.cas(0, me) {
                    return Ok(Acquired::Clean);
                }
            } else if cur & CONTENDED != 0 {
                break;
            }
            std::hint::spin_loop();
        }
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur == 0 {
                // Others may be asleep: keep CONTENDED so our unlock wakes one of them.
                if self.cas(0, me | CONTENDED) {
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if cur & !CONTENDED == me {
                return Err(LockError::Deadlock);
            }
            let expected = cur | CONTENDED;
            if cur != expected
                && self
                    .word
                    .compare_exchange(cur, expected, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let mut nap = LIVENESS_POLL;
            let mut last_chance = false;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    last_chance = true;
                } else {
                    nap = nap.min(left);
                }
            }
            let outcome = if last_chance {
                WaitOutcome::TimedOut
            } else if let Some(slept) = deadline
                .is_none()
                .then(|| watcher::sleep_watched_unless(&self.word, expected as u32, owner_dead))
                .flatten()
            {
                // No timer to arm: the watcher wakes us if the owner dies. Woken with the word
                // unchanged (that, or a spurious wake-up): look at the owner ourselves.
                slept.map_err(LockError::Io)?;
                if self.word.load(Ordering::Relaxed) == expected {
                    WaitOutcome::TimedOut
                } else {
                    WaitOutcome::Woken
                }
            } else {
                sys::futex_wait_low(&self.word, expected as u32, Some(nap))
                    .map_err(LockError::Io)?
            };
            if outcome == WaitOutcome::TimedOut {
                if self.take_over_if_dead(expected, me) {
                    return Ok(Acquired::OwnerDied);
                }
                if last_chance {
                    return Err(LockError::Timeout);
                }
            }
        }
    }
}

/// For the watcher: whether the owner of lock word `word` is dead (the wait for it is hopeless).
fn owner_dead(word: u64) -> bool {
    word != 0 && !owner::owner_alive(word & !CONTENDED)
}

/// Proof of holding a [`RawLock`]; releases it on drop. Not `Send`: a lock is owned by a thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct RawGuard<'a> {
    lock: &'a RawLock,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared `&RawGuard` only allows reading the (atomic) lock, which is Sync.
unsafe impl Sync for RawGuard<'_> {}

impl RawGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &RawLock {
        self.lock
    }
}

impl Drop for RawGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its thread holds the lock.
        let _ = unsafe { self.lock.unlock() };
    }
}
