//! The locks shmproc is measured against, each usable across `fork` from shared memory (except
//! parking_lot, the in-process reference).

use std::sync::atomic::{AtomicU32, Ordering};

use shmproc::raw::sys;
use shmproc::raw::AtomicShareable;

/// A lock that can guard a counter in the benchmarks.
pub trait BenchLock {
    /// Runs `f` with the lock held.
    fn with<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// The classic three-state futex mutex (Drepper's "mutex2", as in std): 0 free, 1 locked, 2
/// locked with waiters. Not robust: a dead holder hangs everyone. The physical reference for
/// what a process-shared lock can cost.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct PlainFutexMutex {
    state: AtomicU32,
}

// SAFETY: one AtomicU32 plus alignment padding; zero is unlocked, any value is handled.
unsafe impl AtomicShareable for PlainFutexMutex {}

impl PlainFutexMutex {
    /// Acquires.
    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..100 {
            let s = self.state.load(Ordering::Relaxed);
            if s == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if s == 2 {
                break;
            }
            std::hint::spin_loop();
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            let _ = sys::futex_wait(&self.state, 2, None);
        }
    }

    /// Releases.
    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            sys::futex_wake(&self.state, 1);
        }
    }
}

impl BenchLock for PlainFutexMutex {
    #[inline]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock();
        let r = f();
        self.unlock();
        r
    }
}

impl BenchLock for shmproc::RawLock {
    #[inline]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        let guard = self.acquire().unwrap_or_else(|e| {
            e.into_guard()
                .expect("benchmark lock: only OwnerDied is expected")
        });
        let r = f();
        drop(guard);
        r
    }
}

/// A robust, process-shared pthread mutex (what glibc offers for owner death), in shared memory.
#[repr(C, align(64))]
pub struct RobustPthreadMutex {
    inner: std::cell::UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a pthread mutex initialised PTHREAD_PROCESS_SHARED is designed for shared memory and
// concurrent use from many threads/processes; all access goes through pthread calls.
unsafe impl Sync for RobustPthreadMutex {}

impl RobustPthreadMutex {
    /// Initialises a robust, process-shared mutex at `place`.
    ///
    /// # Safety
    /// `place` must be valid, aligned, writable memory that stays mapped (at the same address
    /// in every process using it) for as long as the mutex is used, and not in use yet.
    pub unsafe fn init(place: *mut RobustPthreadMutex) -> &'static RobustPthreadMutex {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: standard attribute initialisation on our own stack memory; the mutex memory is
        // valid and unused by the caller's contract.
        unsafe {
            libc::pthread_mutexattr_init(attr.as_mut_ptr());
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
            libc::pthread_mutex_init((*place).inner.get(), attr.as_ptr());
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            &*place
        }
    }
}

impl BenchLock for RobustPthreadMutex {
    #[inline]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: initialised by `init`; the owner-died result is made consistent at once.
        unsafe {
            if libc::pthread_mutex_lock(self.inner.get()) == libc::EOWNERDEAD {
                libc::pthread_mutex_consistent(self.inner.get());
            }
        }
        let r = f();
        // SAFETY: this thread holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.inner.get()) };
        r
    }
}

#[cfg(feature = "baselines")]
/// raw_sync's process-shared mutex inside a `shared_memory` segment (the crates people glue
/// together today). Hangs forever if a holder is SIGKILLed.
pub struct RawSyncMutex {
    lock: Box<dyn raw_sync::locks::LockImpl>,
    _shmem: shared_memory::Shmem,
}

#[cfg(feature = "baselines")]
impl RawSyncMutex {
    /// Creates the segment and the mutex in it.
    ///
    /// # Errors
    /// When shared_memory or raw_sync fail (their errors as text).
    pub fn new() -> Result<RawSyncMutex, String> {
        use raw_sync::locks::{LockInit, Mutex};
        let shmem = shared_memory::ShmemConf::new()
            .size(4096)
            .create()
            .map_err(|e| e.to_string())?;
        let base = shmem.as_ptr();
        // SAFETY: the segment is 4096 bytes, enough for a pthread mutex and a data word after
        // it; it stays mapped as long as `_shmem` lives, which outlives `lock`.
        let (lock, _) = unsafe { Mutex::new(base, base.add(1024)) }.map_err(|e| e.to_string())?;
        Ok(RawSyncMutex {
            lock,
            _shmem: shmem,
        })
    }
}

#[cfg(feature = "baselines")]
impl BenchLock for RawSyncMutex {
    #[inline]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        let guard = self.lock.lock().expect("raw_sync lock failed");
        let r = f();
        drop(guard);
        r
    }
}

#[cfg(feature = "baselines")]
impl BenchLock for parking_lot::Mutex<()> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.lock();
        f()
    }
}
