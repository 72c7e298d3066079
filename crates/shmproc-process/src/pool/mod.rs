//! `Pool`: a fixed set of worker processes (or threads) running registered entries (Python's
//! `multiprocessing.Pool` / `concurrent.futures.ProcessPoolExecutor` / `ThreadPoolExecutor`).
//!
//! `mod.rs` is the public surface and picks the backend (`processes`: the manager thread and
//! its workers; `threads`); `map`, `imap`, `builder` and `wait` add calls that work on both.

mod backoff;
mod builder;
mod completions;
mod config;
mod imap;
pub(crate) mod link;
mod manager;
mod map;
mod processes;
pub mod remote;
mod task;
mod threads;
mod wait;

use std::time::{Duration, Instant};

pub use builder::PoolBuilder;
pub use imap::{Imap, ImapUnordered};
pub use manager::WorkerKind;
pub use task::Task;
pub use wait::{as_completed, as_completed_timeout, wait_any, AsCompleted};

use crate::entry::{check_registered, encode, Entry, Registered};
use crate::transport::Frame;
use crate::worker::Op;
use crate::ProcessError;
use config::{PoolConfig, Stop};
use processes::Processes;
use threads::{RunFn, Threads};
use wait::Admit;

/// A pool of worker processes, or of threads ([`Pool::threads`]).
///
/// Workers are spawned copies of the program by default ([`WorkerKind::Forked`] on request;
/// [`Pool::builder`] sets the initializer, tasks per worker and queue bound). Every call works
/// the same on a thread pool. A task that panics fails only itself; a worker that dies (killed, `abort`, out of memory)
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
/// A thread pool ([`Pool::threads`]) follows the same table, except that a running task cannot
/// be killed: where a worker would be killed, its waiter gets [`ProcessError::ShutDown`] at
/// once, and the task finishes in the background with its result discarded.
///
/// # More than `map` and `submit`
/// Lazy maps over any iterator ([`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered)),
/// chunk sizes ([`map_chunked`](Pool::map_chunked)), per-worker set-up and recycling
/// ([`Pool::builder`]), cancelling ([`Task::cancel`]), waiting for the first of many
/// ([`wait_any`], [`as_completed_timeout`]) and a bounded queue
/// ([`try_submit`](Pool::try_submit), [`submit_timeout`](Pool::submit_timeout)).
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
    backend: Backend,
    size: usize,
}

/// Where a pool's tasks run.
enum Backend {
    Processes(Processes),
    Threads(Threads),
    /// Tasks go through a broker to workers elsewhere (see `remote`).
    Remote(std::sync::Arc<remote::Remote>),
}

/// How a job names its entry: by key for a worker process, by function for a thread.
#[derive(Clone, Copy)]
struct Call {
    op: Op,
    key: &'static str,
    run: RunFn,
}

impl Call {
    /// `E` on one argument.
    fn one<E: Entry>() -> Call {
        Call {
            op: Op::Call,
            key: E::KEY,
            run: Registered::of::<E>().run,
        }
    }

    /// `E` on each argument of a batch (see `encode_batches`).
    fn many<E: Entry>() -> Call {
        Call {
            op: Op::CallMany,
            key: E::KEY,
            run: Registered::of::<E>().run_many,
        }
    }
}

impl Pool {
    /// How long dropping a pool waits for tasks whose [`Task`] handles are still held before it
    /// terminates them (see the table on [`Pool`]): long enough for a task someone waits for to
    /// finish in the usual case, short enough that a stuck one fails a test run rather than
    /// hanging it. Call [`shutdown`](Pool::shutdown) first to wait without a bound.
    pub const DROP_TIMEOUT: Duration = Duration::from_secs(30);

    /// Chunks per worker that [`map`](Pool::map) splits its input into: few enough that
    /// trivial items cost little, enough that uneven items balance. `map` over `n` items on
    /// `w` workers sends chunks of `ceil(n / (w * CHUNKS_PER_WORKER))` items;
    /// [`map_chunked`](Pool::map_chunked) picks another size.
    pub const CHUNKS_PER_WORKER: usize = 4;

    /// A pool of `workers` spawned worker processes (at least one).
    ///
    /// # Errors
    /// [`ProcessError::Io`] if the OS cannot start the workers or the manager thread.
    pub fn new(workers: usize) -> Result<Pool, ProcessError> {
        Pool::with_kind(workers, WorkerKind::Spawned)
    }

    /// A pool of `workers` workers started the given way.
    ///
    /// # Errors
    /// As [`new`](Pool::new).
    pub fn with_kind(workers: usize, kind: WorkerKind) -> Result<Pool, ProcessError> {
        Pool::with_config(PoolConfig::new(workers, kind))
    }

    /// A pool of `threads` threads in this process (at least one; Python's
    /// `ThreadPoolExecutor`): the same entries and the same calls as a process pool, with no
    /// process to start and no copy between processes (arguments and results are still
    /// serialized, so handles behave as with processes).
    ///
    /// Threads share this process: a task that panics fails only itself, but one that aborts
    /// or crashes takes the program with it, and running tasks cannot be killed — on
    /// [`terminate`](Pool::terminate) (or a timed-out shutdown, or a drop) they finish in the
    /// background and their results are discarded, while queued ones fail at once.
    ///
    /// # Examples
    /// ```
    /// #[shmproc::entry]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let pool = shmproc::Pool::threads(4)?;
    /// assert_eq!(pool.map(square, 0..5)?, [0, 1, 4, 9, 16]);
    /// assert_eq!(pool.submit(square, 12)?.wait()?, 144);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::Io`] if a thread cannot be started.
    pub fn threads(threads: usize) -> Result<Pool, ProcessError> {
        Pool::with_kind(threads, WorkerKind::Threads)
    }

    fn with_config(config: PoolConfig) -> Result<Pool, ProcessError> {
        let size = config.workers;
        let backend = match config.kind {
            WorkerKind::Threads => Backend::Threads(Threads::new(config)?),
            WorkerKind::Spawned | WorkerKind::Forked => Backend::Processes(Processes::new(config)?),
        };
        Ok(Pool { backend, size })
    }

    /// Number of workers (processes or threads).
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
        self.submit_as(entry, arg, Admit::Block)
    }

    /// Like [`submit`](Pool::submit), waiting at most `timeout` (monotonic clock) for room in
    /// a full queue (see [`PoolBuilder::queue_bound`]).
    ///
    /// # Errors
    /// [`ProcessError::QueueFull`] if the queue stayed full for `timeout` (nothing was
    /// submitted); as [`submit`](Pool::submit) otherwise.
    pub fn submit_timeout<E: Entry>(
        &self,
        entry: E,
        arg: E::Arg,
        timeout: Duration,
    ) -> Result<Task<E::Ret>, ProcessError> {
        let how = Instant::now()
            .checked_add(timeout)
            .map_or(Admit::Block, Admit::Until);
        self.submit_as(entry, arg, how)
    }

    /// Like [`submit`](Pool::submit), but fails at once instead of waiting for room in a full
    /// queue (see [`PoolBuilder::queue_bound`]).
    ///
    /// # Examples
    /// ```
    /// # use std::time::Duration;
    /// #[shmproc::entry]
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = shmproc::Pool::builder().workers(1).queue_bound(1).build()?;
    /// let running = pool.submit(nap, 300)?;  // the worker takes it
    /// let queued = pool.submit(nap, 0)?;     // it waits in the queue, which is now full
    /// assert!(matches!(pool.try_submit(nap, 0), Err(shmproc::ProcessError::QueueFull)));
    /// assert_eq!((running.wait()?, queued.wait()?), (300, 0));
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::QueueFull`] if the queue is full (nothing was submitted); as
    /// [`submit`](Pool::submit) otherwise.
    pub fn try_submit<E: Entry>(
        &self,
        entry: E,
        arg: E::Arg,
    ) -> Result<Task<E::Ret>, ProcessError> {
        self.submit_as(entry, arg, Admit::Never)
    }

    fn submit_as<E: Entry>(
        &self,
        entry: E,
        arg: E::Arg,
        how: Admit,
    ) -> Result<Task<E::Ret>, ProcessError> {
        let _ = entry;
        check_registered(E::KEY)?;
        let arg = self
            .encoding(|| encode(&arg))
            .map_err(ProcessError::Encode)?;
        self.submit_call(Call::one::<E>(), arg, how)
    }

    /// Runs `encode` as this pool's tasks must be encoded: for a broker pool, whose tasks may
    /// run on another host, any shared-memory handle in them (named ones too) is refused.
    fn encoding<T>(&self, encode: impl FnOnce() -> T) -> T {
        match &self.backend {
            Backend::Remote(_) => shmproc_shm::serialize_off_host(encode),
            Backend::Processes(_) | Backend::Threads(_) => encode(),
        }
    }

    fn submit_call<R: serde::de::DeserializeOwned>(
        &self,
        call: Call,
        arg: Frame,
        how: Admit,
    ) -> Result<Task<R>, ProcessError> {
        match &self.backend {
            Backend::Processes(p) => p.submit(call.op, call.key, arg, how),
            Backend::Threads(t) => t.submit(call.run, arg, how),
            Backend::Remote(r) => r.submit(call, arg),
        }
    }

    /// Yields the results of `tasks` in the order they finish; the same as the free function
    /// [`as_completed`], here for the `pool.as_completed(tasks)` spelling.
    pub fn as_completed<R: serde::de::DeserializeOwned>(
        &self,
        tasks: Vec<Task<R>>,
    ) -> AsCompleted<R> {
        as_completed(tasks)
    }

    /// [`as_completed`] with a time limit; the same as the free function
    /// [`as_completed_timeout`]: past `timeout`, the last item is [`ProcessError::Timeout`].
    pub fn as_completed_timeout<R: serde::de::DeserializeOwned>(
        &self,
        tasks: Vec<Task<R>>,
        timeout: Duration,
    ) -> AsCompleted<R> {
        as_completed_timeout(tasks, timeout)
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

    /// Stops the pool `how` and returns how many tasks it left unfinished (0 if another call
    /// stopped the pool).
    fn stop(&self, how: Stop) -> Result<usize, ProcessError> {
        match &self.backend {
            Backend::Processes(p) => p.stop(how),
            Backend::Threads(t) => t.stop(how),
            Backend::Remote(r) => r.stop(how),
        }
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
        let kind = match &self.backend {
            Backend::Processes(_) => "processes".to_owned(),
            Backend::Threads(_) => "threads".to_owned(),
            Backend::Remote(r) => r.0.describe(),
        };
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}
