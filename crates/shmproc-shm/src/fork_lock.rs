//! [`ForkLock`]: a process-local spin lock that `fork` never leaves held in the child.
//!
//! A `std::sync::Mutex` that another thread holds at the moment of a `fork` stays locked forever
//! in the child, whose copy of that thread does not exist. Lists a fork child must still use
//! (the barrier seats it leaves, the children it stops at exit) therefore live behind a
//! `ForkLock`: one at-fork handler takes every such lock before `fork` and releases them after
//! it, in the parent and in the child, so the child finds each list consistent and unlocked.
//! Nobody holds one for long (no blocking, no allocation-heavy work under it).

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::hooks::Hooks;

/// A spin lock around a `T`, held across `fork` (see the module docs). For `static`s.
///
/// # Examples
/// ```
/// use shmproc_shm::ForkLock;
///
/// static NAMES: ForkLock<Vec<&str>> = ForkLock::new(Vec::new());
/// NAMES.lock().push("a");
/// assert_eq!(NAMES.lock().len(), 1);
/// ```
pub struct ForkLock<T> {
    locked: AtomicBool,
    /// Whether this lock is in [`HELD_ACROSS_FORK`] (0: not yet; see `register_once`).
    registered: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only touched through a guard, which exists only while `locked` is held by
// its thread (acquire on taking, release on leaving); `T: Send` because the guard hands `&mut T`
// to whichever thread holds the lock.
unsafe impl<T: Send> Sync for ForkLock<T> {}

/// The locks the at-fork handlers take, by the address of their `locked` flag.
static HELD_ACROSS_FORK: Hooks<16> = Hooks::new();
/// Whether the at-fork handlers are registered.
static HANDLERS: AtomicU32 = AtomicU32::new(0);

extern "C" fn lock_all_before_fork() {
    for addr in HELD_ACROSS_FORK.each() {
        // SAFETY: only `&'static AtomicBool`s of `ForkLock` statics are added (see `register`).
        let flag = unsafe { &*(addr as *const AtomicBool) };
        while flag
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }
}

extern "C" fn unlock_all_after_fork() {
    // In the parent: release what `lock_all_before_fork` took. In the child: the forking thread
    // (the child's only thread) took them, so every list is consistent; release them.
    for addr in HELD_ACROSS_FORK.each() {
        // SAFETY: as in `lock_all_before_fork`.
        let flag = unsafe { &*(addr as *const AtomicBool) };
        flag.store(false, Ordering::Release);
    }
}

impl<T> ForkLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> ForkLock<T> {
        ForkLock {
            locked: AtomicBool::new(false),
            registered: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, yielding while another thread holds it.
    pub fn lock(&'static self) -> ForkLockGuard<T> {
        self.register();
        loop {
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            std::thread::yield_now();
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&'static self) -> Option<ForkLockGuard<T>> {
        self.register();
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| ForkLockGuard { lock: self }) // lazily: a guard built and dropped would unlock
    }

    /// Takes the lock within `tries` attempts (yielding between them): for paths such as an
    /// `atexit` handler that must not wait without bound.
    pub fn lock_within(&'static self, tries: u32) -> Option<ForkLockGuard<T>> {
        for _ in 0..tries {
            if let Some(guard) = self.try_lock() {
                return Some(guard);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Puts this lock in the at-fork handlers' list (once). Unsupported targets only fail to
    /// register the handlers: they cannot fork, so there is no child to protect.
    fn register(&'static self) {
        if self.registered.load(Ordering::Acquire) == u32::MAX {
            return;
        }
        crate::register_once(&HANDLERS, || {
            crate::sys::at_fork(
                lock_all_before_fork,
                unlock_all_after_fork,
                unlock_all_after_fork,
            )
            .is_ok()
        });
        crate::register_once(&self.registered, || {
            HELD_ACROSS_FORK.add(&self.locked as *const AtomicBool as usize);
            true
        });
    }
}

impl<T> std::fmt::Debug for ForkLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkLock")
            .field("locked", &self.locked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The held lock of a [`ForkLock`]; released on drop.
pub struct ForkLockGuard<T: 'static> {
    lock: &'static ForkLock<T>,
}

impl<T> Deref for ForkLockGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other thread touches the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for ForkLockGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for ForkLockGuard<T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ForkLockGuard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static COUNTER: ForkLock<u64> = ForkLock::new(0);

    #[test]
    fn excludes_other_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).for_each(|_| *COUNTER.lock() += 1)))
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*COUNTER.lock(), 40_000);
    }

    static BUSY: ForkLock<()> = ForkLock::new(());

    #[test]
    fn bounded_attempts_give_up_while_held() {
        let held = BUSY.lock();
        assert!(BUSY.lock_within(10).is_none());
        drop(held);
        assert!(BUSY.lock_within(10).is_some());
    }
}
