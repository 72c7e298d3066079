//! `Pool`: a fixed set of worker processes running registered entries (Python's
//! `multiprocessing.Pool` / `concurrent.futures.ProcessPoolExecutor`).

mod config;
#[doc(hidden)]
pub mod lifecycle;
pub(crate) mod link;
mod manager;
mod task;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use manager::WorkerKind;
pub use task::{as_completed, AsCompleted, Task};

use crate::entry::{check_registered, encode, encode_batches, Entry};
use crate::transport::Frame;
use crate::worker::Op;
use crate::ProcessError;
use config::PoolConfig;
use manager::{Job, Shared};
use task::Slot;

/// Chunks per worker that `map` splits its input into: few enough that trivial items cost
/// little, enough that uneven items balance.
const CHUNKS_PER_WORKER: usize = 4;

/// A pool of worker processes.
///
/// Workers are spawned copies of the program by default ([`WorkerKind::Forked`] on request).
/// A task that panics fails only itself; a worker that dies (killed, `abort`, out of memory)
/// fails its running task with [`ProcessError::WorkerDied`] and is replaced.
///
/// # Shutting down
/// Every way of stopping a pool refuses new tasks ([`ProcessError::ShutDown`]) and ends with
/// every worker stopped and reaped. They differ in what happens to submitted tasks, by whether
/// someone still holds the task's [`Task`] handle ("held") or dropped it ("abandoned"):
///
/// | | queued | running | waits at most |
/// |---|---|---|---|
/// | [`shutdown`](Pool::shutdown) | runs | finishes | as long as the tasks take |
/// | [`shutdown_timeout(d)`](Pool::shutdown_timeout) | runs until `d`, then fails | finishes until `d`, then its worker is killed | `d` |
/// | drop, held tasks | runs until [`DROP_TIMEOUT`](Pool::DROP_TIMEOUT), then fails | likewise | [`DROP_TIMEOUT`](Pool::DROP_TIMEOUT) |
/// | drop, abandoned tasks | cancelled: never runs | its worker is killed at once | — |
/// | drop while panicking, [`terminate`](Pool::terminate) | fails | its worker is killed at once | — |
///
/// "Fails" means its waiter gets [`ProcessError::ShutDown`]. So dropping a pool never hangs: it
/// waits only for tasks someone can still receive, and for those at most `DROP_TIMEOUT`; a
/// panic unwinding past the pool (a failing test) terminates it at once. Stopped workers then
/// get a few seconds to be reaped after `SIGKILL`, which ends any process not stuck in the
/// kernel. To run fire-and-forget tasks (handles dropped) to the end, call `shutdown` before
/// the pool is dropped.
///
/// # Examples
/// ```
/// #[shmproc::entry]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// let pool = shmproc::Pool::new(2)?;
/// assert_eq!(pool.map(square, 0..5)?, [0, 1, 4, 9, 16]);     // input order
/// let task = pool.submit(square, 12)?;
/// assert_eq!(task.wait()?, 144);
/// pool.shutdown()?;
/// # Ok::<(), shmproc::ProcessError>(())
/// ```
pub struct Pool {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
    size: usize,
}

/// How [`Pool::stop`] stops (see the table on [`Pool`]).
#[derive(Clone, Copy)]
enum Stop {
    /// Let every submitted task finish.
    Wait,
    /// Let them finish until the deadline, then terminate.
    Until(Instant),
    /// Cancel abandoned tasks, let held ones finish until the deadline, then terminate.
    Drop(Instant),
    /// Kill the workers now.
    Now,
}

impl Pool {
    /// How long dropping a pool waits for tasks whose [`Task`] handles are still held before it
    /// terminates them (see the table on [`Pool`]): long enough for a task someone waits for to
    /// finish in the usual case, short enough that a stuck one fails a test run rather than
    /// hanging it. Call [`shutdown`](Pool::shutdown) first to wait without a bound.
    pub const DROP_TIMEOUT: Duration = Duration::from_secs(30);

    /// A pool of `workers` spawned worker processes (at least one).
    ///
    /// # Errors
    /// [`ProcessError::Io`] if the OS cannot start the workers or the manager thread.
    pub fn new(workers: usize) -> Result<Pool, ProcessError> {
        Pool::with_kind(workers, WorkerKind::Spawned)
    }

    /// A pool of `workers` worker processes started the given way.
    ///
    /// # Errors
    /// As [`new`](Pool::new).
    pub fn with_kind(workers: usize, kind: WorkerKind) -> Result<Pool, ProcessError> {
        Pool::with_config(PoolConfig::new(workers, kind))
    }

    /// A pool built with `config` (the builder's settings).
    pub(crate) fn with_config(config: PoolConfig) -> Result<Pool, ProcessError> {
        let size = config.workers;
        let shared = Arc::new(Shared::new(config)?);
        let for_thread = Arc::clone(&shared);
        let manager = std::thread::Builder::new()
            .name("shmproc-pool".into())
            .spawn(move || manager::run(for_thread))?;
        Ok(Pool {
            shared,
            manager: Mutex::new(Some(manager)),
            size,
        })
    }

    /// Number of workers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `entry(arg)` on a worker (Python's `submit` / `apply_async`).
    ///
    /// Keep the returned [`Task`]: a pool that is dropped cancels tasks whose handles are gone
    /// (see the table on [`Pool`]).
    ///
    /// # Errors
    /// [`ProcessError::Encode`] if `arg` cannot be serialized; [`ProcessError::ShutDown`]
    /// after [`shutdown`](Pool::shutdown); [`ProcessError::Failed`] if two entries are
    /// registered under `entry`'s key (the message names both).
    pub fn submit<E: Entry>(&self, entry: E, arg: E::Arg) -> Result<Task<E::Ret>, ProcessError> {
        let _ = entry;
        check_registered(E::KEY)?;
        let arg = encode(&arg).map_err(ProcessError::Encode)?;
        self.submit_frame(Op::Call, E::KEY, arg)
    }

    fn submit_frame<R: serde::de::DeserializeOwned>(
        &self,
        op: Op,
        key: &'static str,
        arg: Frame,
    ) -> Result<Task<R>, ProcessError> {
        let slot = Arc::new(Slot::default());
        let job = Job {
            op,
            key,
            arg,
            slot: Arc::clone(&slot),
        };
        let mut state = self.shared.lock();
        if state.closing {
            return Err(ProcessError::ShutDown);
        }
        let queued = state.dispatch(job);
        drop(state);
        if queued {
            self.shared.wake();
        }
        Ok(Task::new(slot, Arc::downgrade(&self.shared)))
    }

    /// Runs `entry` on every item and returns the results in input order (Python's `map`).
    /// Items are sent in a few chunks per worker, so even trivial tasks run fast.
    ///
    /// Anonymous handles in the items travel as file descriptors, and one message carries a
    /// limited number of them, so a chunk is also cut where its items' descriptors would go
    /// over that limit: any number of items may carry handles. Every item is serialized before
    /// anything is sent. Results travel back a chunk at a time: results carrying anonymous
    /// handles (an entry returning a `Value::new`) are limited per chunk in the same way, and
    /// a chunk whose results carry too many fails with an error saying so — [`submit`]
    /// them one by one instead.
    ///
    /// [`submit`]: Pool::submit
    ///
    /// # Errors
    /// The first failing chunk's error: a panic ([`ProcessError::Panicked`]), a dead worker
    /// ([`ProcessError::WorkerDied`]), or as [`submit`](Pool::submit) (an item that alone
    /// carries more handles than one message can is an [`ProcessError::Encode`] error).
    pub fn map<E, I>(&self, entry: E, items: I) -> Result<Vec<E::Ret>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        let _ = entry;
        check_registered(E::KEY)?;
        let items: Vec<E::Arg> = items.into_iter().collect();
        let count = items.len();
        let chunk = items.len().div_ceil(self.size * CHUNKS_PER_WORKER).max(1);
        let batches = encode_batches(&items, chunk).map_err(ProcessError::Encode)?;
        drop(items);
        let tasks = batches
            .into_iter()
            .map(|batch| self.submit_frame::<Vec<E::Ret>>(Op::CallMany, E::KEY, batch))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(count);
        for task in tasks {
            out.extend(task.wait()?);
        }
        Ok(out)
    }

    /// Yields the results of `tasks` in the order they finish; the same as the free function
    /// [`as_completed`], here for the `pool.as_completed(tasks)` spelling.
    pub fn as_completed<R: serde::de::DeserializeOwned>(
        &self,
        tasks: Vec<Task<R>>,
    ) -> AsCompleted<R> {
        as_completed(tasks)
    }

    /// Stops accepting tasks, lets every submitted one finish (also those whose [`Task`] was
    /// dropped), and stops the workers (Python's `shutdown(wait=True)` / `close` + `join`).
    /// Waits as long as the tasks take: use [`shutdown_timeout`](Pool::shutdown_timeout) to
    /// bound it. Calling it again (or after another way of stopping) does nothing.
    ///
    /// # Errors
    /// [`ProcessError::Failed`] if the manager thread panicked.
    pub fn shutdown(&self) -> Result<(), ProcessError> {
        self.stop(Stop::Wait).map(drop)
    }

    /// Like [`shutdown`](Pool::shutdown), waiting at most `timeout` (monotonic clock): then it
    /// terminates the workers, and tasks not finished by then fail with
    /// [`ProcessError::ShutDown`].
    ///
    /// # Examples
    /// ```
    /// # use std::time::Duration;
    /// #[shmproc::entry]
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(Duration::from_millis(ms));
    /// }
    ///
    /// let pool = shmproc::Pool::new(1)?;
    /// let task = pool.submit(nap, 60_000)?;
    /// match pool.shutdown_timeout(Duration::from_millis(50)) {
    ///     Err(shmproc::ProcessError::ShutdownTimeout { abandoned }) => assert_eq!(abandoned, 1),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(matches!(task.wait(), Err(shmproc::ProcessError::ShutDown)));
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::ShutdownTimeout`] with the number of tasks left unfinished if any were;
    /// as `shutdown` otherwise.
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), ProcessError> {
        let deadline = Instant::now().checked_add(timeout);
        let how = deadline.map_or(Stop::Wait, Stop::Until);
        match self.stop(how)? {
            0 => Ok(()),
            abandoned => Err(ProcessError::ShutdownTimeout { abandoned }),
        }
    }

    /// Stops at once: kills the workers; running and queued tasks fail with
    /// [`ProcessError::ShutDown`] (Python's `terminate`).
    ///
    /// # Errors
    /// As [`shutdown`](Pool::shutdown).
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.stop(Stop::Now).map(drop)
    }

    /// Stops the pool `how`, waits for the manager thread to leave, and returns how many tasks
    /// it left unfinished (0 if another call stopped the pool).
    fn stop(&self, how: Stop) -> Result<usize, ProcessError> {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            let earliest = |d: Instant| Some(state.deadline.map_or(d, |e| e.min(d)));
            match how {
                Stop::Wait => {}
                Stop::Until(deadline) => state.deadline = earliest(deadline),
                Stop::Drop(deadline) => {
                    state.deadline = earliest(deadline);
                    state.cancel_abandoned = true;
                }
                Stop::Now => state.terminating = true,
            }
        }
        self.shared.wake();
        // Held while joining, so a concurrent call returns only once the pool has stopped.
        let mut manager = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        let Some(handle) = manager.take() else {
            return Ok(0);
        };
        if handle.join().is_err() {
            return Err(ProcessError::Failed(
                "the pool's manager thread panicked".into(),
            ));
        }
        let abandoned = self.shared.lock().abandoned;
        Ok(abandoned)
    }
}

impl Default for Pool {
    /// A pool with one worker per CPU ([`cpu_count`](crate::cpu_count)).
    ///
    /// # Panics
    /// If the OS cannot start the workers (use [`Pool::new`] to get the error instead).
    fn default() -> Pool {
        Pool::new(crate::cpu_count()).expect("shmproc: could not start the pool's workers")
    }
}

impl Drop for Pool {
    /// Stops the pool as the table on [`Pool`] says: waits for held tasks at most
    /// [`DROP_TIMEOUT`](Pool::DROP_TIMEOUT), cancels abandoned ones, and terminates at once
    /// while the thread panics.
    fn drop(&mut self) {
        let how = if std::thread::panicking() {
            Stop::Now
        } else {
            Stop::Drop(Instant::now() + Pool::DROP_TIMEOUT)
        };
        let _ = self.stop(how);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}
