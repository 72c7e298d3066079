//! # shmproc — Python's `multiprocessing`, for Rust
//!
//! Cross-process [`Value`], [`Array`] and [`Lock`] backed by validated shared-memory segments and
//! robust process-shared locks, [`Queue`] and [`Pipe`] over shared-memory rings, plus [`Process`]
//! to start children (forked, or spawned fresh to run a [`#[shmproc::entry]`](entry) function)
//! and a [`Pool`] of worker processes. A process that dies holding a lock never hangs the
//! others: they get [`LockError::OwnerDied`] and carry on; a pool worker that dies fails only
//! its task; a pipe whose peer dies reports it instead of blocking.
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
//! Spawned processes and pools run registered entries; shared handles passed to them are shared,
//! not copied:
//!
//! ```
//! use shmproc::{Pool, Process, Value};
//!
//! #[shmproc::entry]
//! fn deposit((balance, times): (Value<i64>, u32)) -> i64 {
//!     for _ in 0..times {
//!         *balance.lock().unwrap() += 1;
//!     }
//!     i64::from(times)
//! }
//!
//! let balance = Value::new(400_i64)?;
//! let child = Process::spawn(deposit, (balance.clone(), 100))?; // a fresh copy of this program
//! assert_eq!(child.join_result()?, 100);
//! let pool = Pool::new(2)?;
//! let done = pool.map(deposit, (0..4).map(|_| (balance.clone(), 25)))?;
//! assert_eq!(done, [25; 4]);
//! assert_eq!(balance.get()?, 600);
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
//! | `Process(target=f, args=(x,))` with the spawn start method | `#[shmproc::entry] fn f(..)`, [`Process::spawn(f, x)`](Process::spawn), [`join_result()`](Process::join_result) |
//! | `Pool(4).map(f, items)` | [`Pool::new(4)?.map(f, items)?`](Pool::map) (input order) |
//! | `apply_async` / `executor.submit(f, x)`, `.result(timeout)` | [`pool.submit(f, x)?`](Pool::submit), [`task.wait_timeout(d)`](Task::wait_timeout), [`task.wait()`](Task::wait) |
//! | `concurrent.futures.as_completed(fs)` | [`as_completed(tasks)`](as_completed) |
//! | `as_completed(fs, timeout=t)` | [`as_completed_timeout(tasks, d)`](as_completed_timeout): the last item is a timeout error |
//! | `pool.imap(f, xs)`, `pool.imap_unordered(f, xs)` | [`pool.imap(f, xs)?`](Pool::imap), [`pool.imap_unordered(f, xs)?`](Pool::imap_unordered): lazy, bounded in flight, any iterator |
//! | `pool.map(f, xs, chunksize)`, `imap(f, xs, chunksize)` | [`pool.map_chunked(f, xs, n)?`](Pool::map_chunked), [`pool.imap_chunked(f, xs, n)?`](Pool::imap_chunked) |
//! | `Pool(4, initializer=f, initargs=(x,))` | [`Pool::builder()`](Pool::builder)`.workers(4)`[`.initializer(f, x)`](PoolBuilder::initializer)`.build()?` |
//! | `Pool(maxtasksperchild=100)` | [`.max_tasks_per_child(100)`](PoolBuilder::max_tasks_per_child) on the builder |
//! | `future.cancel()` | [`task.cancel()`](Task::cancel): a queued task never runs, its waiter gets [`ProcessError::Cancelled`] |
//! | `wait(fs, timeout, return_when=FIRST_COMPLETED)` | [`wait_any(&tasks, d)?`](wait_any): the index of a finished task |
//! | `ray.util.multiprocessing.Pool(ray_address=...)`: the same Pool on a cluster | `Pool::builder().broker("redis://host:6379/0").queue("jobs").build()?` with `use shmproc::cluster::BrokerExt;` (feature `cluster`; workers: the same binary with `SHMPROC_WORKER` set) |
//! | `ThreadPoolExecutor(4)` | [`Pool::threads(4)?`](Pool::threads): the same entries and calls, on threads |
//! | a `submit` queue that grows without bound | [`.queue_bound(n)`](PoolBuilder::queue_bound): [`submit`](Pool::submit) blocks, [`try_submit`](Pool::try_submit) fails with [`ProcessError::QueueFull`] |
//! | a killed pool worker hangs `Pool.map` | [`ProcessError::WorkerDied`] for its task; the worker is replaced |
//! | `p.join()`, `p.join(timeout)` | [`p.join()`](Process::join), [`p.join_timeout(d)`](Process::join_timeout) |
//! | `p.terminate()`, `p.kill()`, `p.is_alive()` | the same names on [`Process`] |
//! | `cpu_count()`, `current_process()` | [`cpu_count()`], [`current_process()`] |
//! | `Process(target=f, name=..., daemon=True)` | [`Process::builder().name(..).daemon(true).fork(f)`](ProcessBuilder) (or `.spawn(f, x)`) |
//! | `p.exitcode` | [`p.exit_code()`](Process::exit_code) (`None` running, `-9` after SIGKILL) |
//! | `active_children()`, `parent_process()` | [`active_children()`], [`parent_process()`] |
//! | `RLock()`, `Semaphore(3)`, `BoundedSemaphore(3)` | [`RLock::new()`](RLock::new), [`Semaphore::new(3)`](Semaphore::new), [`BoundedSemaphore::new(3)`](BoundedSemaphore::new) |
//! | `Event()`: `set`, `clear`, `is_set`, `wait(timeout)` | [`Event`]: the same names, [`wait_timeout`](Event::wait_timeout) |
//! | `Condition()`: `wait`, `wait_for`, `notify`, `notify_all` | [`Condition`]: [`wait`](Condition::wait), [`wait_while`](Condition::wait_while), [`notify_one`](Condition::notify_one), [`notify_all`](Condition::notify_all) |
//! | `Barrier(n)`: `wait`, `abort`, `reset` | [`Barrier`]: the same names; a dead participant breaks it instead of hanging |
//! | `Queue()`, `q.put(x)`, `q.get(timeout=1)` | [`Queue::new()`](Queue::new), [`q.put(&x)?`](Queue::put), [`q.get_timeout(d)?`](Queue::get_timeout) |
//! | `q.close()` (this process puts no more) | [`q.close()`](Queue::close); later puts from it fail with [`SendError::Closed`] |
//! | `q.shutdown()` (`queue.Queue`, 3.13: ends the queue for everyone) | [`q.shutdown()`](Queue::shutdown); drained gets then fail with [`RecvError::Disconnected`] |
//! | `q.qsize()` (approximate), `q.empty()` | [`q.len()`](Queue::len) (exact), [`q.is_empty()`](Queue::is_empty) |
//! | `JoinableQueue()`, `task_done()`, `join()` | [`JoinableQueue::new()`](JoinableQueue::new), [`jq.task_done()?`](JoinableQueue::task_done), [`jq.join()?`](JoinableQueue::join) / [`join_timeout(d)`](JoinableQueue::join_timeout) |
//! | `SimpleQueue()`: `put`, `get`, `empty`, `close` | [`SimpleQueue::new()`](SimpleQueue::new): [`put`](SimpleQueue::put), [`get`](SimpleQueue::get), [`is_empty`](SimpleQueue::is_empty), [`close`](SimpleQueue::close) |
//! | `a, b = Pipe()`, `a.send(x)`, `b.recv()`, `b.poll(t)` | [`Pipe::duplex()`](Pipe::duplex), [`a.send(&x)?`](Connection::send), [`b.recv()?`](Connection::recv), [`b.poll(d)?`](Connection::poll) |
//! | `Pipe(duplex=False)` | [`Pipe::simplex()`](Pipe::simplex) → ([`Sender`], [`Receiver`]) |
//! | `Manager().dict()`, `d[k] = v`, `d.get(k)` | [`SharedMap::new(n)`](SharedMap::new), [`m.insert(k, v)?`](SharedMap::insert), [`m.get(&k)?`](SharedMap::get) |
//! | `with lock: d[k] += 1` on a manager dict | [`m.update(k, \|old\| old.unwrap_or(0) + 1)?`](SharedMap::update) (one atomic step) |
//! | `Manager().list()`, `l.append(x)` | [`SharedVec::new(n)`](SharedVec::new), [`v.push(x)?`](SharedVec::push) |
//! | a dead lock holder hangs everyone | [`LockError::OwnerDied`] for the next acquirer |
//! | `EOFError` from `recv` once the other end is closed | [`RecvError::Disconnected`], or [`RecvError::PeerDied`] if it was killed |
//!
//! Named segments ([`Value::create`] / [`Value::open`], likewise for the others) live in
//! `/dev/shm/shmproc.NAME`; the `shmproc` CLI lists (`ls`) and removes stale ones (`clean`).

pub use shmproc_channel::{Connection, Pipe, Queue, Receiver, RecvError, SendError, Sender};
pub use shmproc_channel::{JoinableQueue, SimpleQueue, TaskError};
pub use shmproc_collections::{CollectionError, SharedMap, SharedVec};
pub use shmproc_macros::entry;
pub use shmproc_process::{
    active_children, as_completed, as_completed_timeout, cpu_count, current_process,
    parent_process, wait_any, AsCompleted, Entry, Imap, ImapUnordered, Pool, PoolBuilder, Process,
    ProcessBuilder, ProcessError, ProcessInfo, Task, WorkerKind, PANIC_EXIT_CODE,
};
pub use shmproc_shm::{Kind, OpenOptions, SegmentError, Shareable};
pub use shmproc_sync::{
    Barrier, BarrierWaitResult, BoundedSemaphore, Condition, ConditionGuard, Event, Lock,
    LockError, LockGuard, RLock, RLockGuard, RawLock, Roster, Semaphore, SyncError,
};
pub use shmproc_value::{AccessError, Array, ArrayGuard, Value, ValueGuard};

/// What `#[shmproc::entry]` expands to refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use shmproc_process::__private::*;
}

/// Lower layers, for building new primitives and tools.
pub mod raw {
    pub use shmproc_shm::sys;
    pub use shmproc_shm::{
        clean, collect_fds, inspect, list, remove, take_transfer_error, with_received_fds,
        AtomicShareable, HeaderSummary, Segment, SegmentInfo, SharedRef, Spec, TypeInfo,
    };
    pub use shmproc_shm::{leave_all, liveness, watcher, RosterFull, Seat, ROSTER_SLOTS};
    pub use shmproc_sync::{RawGuard, LIVENESS_POLL};

    /// Fault injection for tests (not a public API).
    #[doc(hidden)]
    pub use shmproc_channel::test_hooks;

    /// Fault injection for the shared collections' tests (not a public API).
    #[doc(hidden)]
    pub use shmproc_collections::test_hooks as collection_hooks;
}

/// The same [`Pool`] on many hosts through a Redis broker (feature `cluster`): bring
/// [`cluster::BrokerExt`] into scope and write `Pool::builder().broker(url).build()`.
#[cfg(feature = "cluster")]
pub use shmproc_cluster as cluster;
