//! # shmproc — Python's `multiprocessing`, for Rust
//!
//! Cross-process [`Value`], [`Array`] and [`Lock`] backed by validated shared-memory segments and
//! robust process-shared locks, plus [`Process`] to start children. A process that dies holding
//! a lock never hangs the others: they get [`LockError::OwnerDied`] and carry on.
//!
//! ```
//! use shmproc::{Process, Value};
//!
//! let balance = Value::new(400_i64)?;
//! let b = balance.clone();
//! let child = Process::fork(move || {
//!     for _ in 0..1000 {
//!         *b.lock().unwrap() += 1; // one locked read-modify-write: never loses an update
//!     }
//! })?;
//! assert!(child.join()?.success());
//! assert_eq!(balance.get()?, 1400);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Coming from Python's `multiprocessing`
//! | Python | shmproc |
//! |---|---|
//! | `Value('q', 400)` | [`Value::new(400_i64)`](Value::new) |
//! | `v.value` / `v.value = x` | [`v.get()?`](Value::get) / [`v.set(x)?`](Value::set) |
//! | `with v.get_lock(): v.value += 1` | `*v.lock()? += 1` |
//! | `Array('i', [1, 2, 3])` | [`Array::from_slice(&[1_i32, 2, 3])`](Array::from_slice) |
//! | `Lock()`, `acquire()`, `release()` | [`Lock::new()`](Lock::new), [`acquire()`](Lock::acquire), drop the guard |
//! | `lock.acquire(timeout=0.1)` | [`lock.acquire_timeout(Duration::from_millis(100))`](Lock::acquire_timeout) |
//! | `Process(target=f).start()` | [`Process::fork(f)`](Process::fork) |
//! | `p.join()`, `p.join(timeout)` | [`p.join()`](Process::join), [`p.join_timeout(d)`](Process::join_timeout) |
//! | `p.terminate()`, `p.kill()`, `p.is_alive()` | the same names on [`Process`] |
//! | `cpu_count()`, `current_process()` | [`cpu_count()`], [`current_process()`] |
//! | `RLock()`, `Semaphore(3)`, `BoundedSemaphore(3)` | [`RLock::new()`](RLock::new), [`Semaphore::new(3)`](Semaphore::new), [`BoundedSemaphore::new(3)`](BoundedSemaphore::new) |
//! | `Event()`: `set`, `clear`, `is_set`, `wait(timeout)` | [`Event`]: the same names, [`wait_timeout`](Event::wait_timeout) |
//! | `Condition()`: `wait`, `wait_for`, `notify`, `notify_all` | [`Condition`]: [`wait`](Condition::wait), [`wait_while`](Condition::wait_while), [`notify_one`](Condition::notify_one), [`notify_all`](Condition::notify_all) |
//! | `Barrier(n)`: `wait`, `abort`, `reset` | [`Barrier`]: the same names; a dead participant breaks it instead of hanging |
//! | a dead lock holder hangs everyone | [`LockError::OwnerDied`] for the next acquirer |
//!
//! Named segments ([`Value::create`] / [`Value::open`], likewise for the others) live in
//! `/dev/shm/shmproc.NAME`; the `shmproc` CLI lists (`ls`) and removes stale ones (`clean`).

pub use shmproc_process::{cpu_count, current_process, Process, ProcessInfo, PANIC_EXIT_CODE};
pub use shmproc_shm::{Kind, SegmentError, Shareable};
pub use shmproc_sync::{
    Barrier, BarrierWaitResult, BoundedSemaphore, Condition, ConditionGuard, Event, Lock,
    LockError, LockGuard, RLock, RLockGuard, RawLock, Roster, Semaphore, SyncError,
};
pub use shmproc_value::{AccessError, Array, ArrayGuard, Value, ValueGuard};

/// Lower layers, for building new primitives and tools.
pub mod raw {
    pub use shmproc_shm::sys;
    pub use shmproc_shm::{
        clean, inspect, list, remove, AtomicShareable, HeaderSummary, Segment, SegmentInfo,
        SharedRef, Spec, TypeInfo,
    };
    pub use shmproc_sync::{RawGuard, LIVENESS_POLL};
}
