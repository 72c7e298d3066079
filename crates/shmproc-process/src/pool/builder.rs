//! `PoolBuilder`: a pool with settings beyond its size (Python's `Pool(processes,
//! initializer, initargs, maxtasksperchild)` plus a bounded queue).

use std::num::NonZeroUsize;

use super::config::{Initializer, PoolConfig};
use super::{Pool, WorkerKind};
use crate::entry::{check_registered, encode, Entry};
use crate::ProcessError;

/// Settings for a [`Pool`], from [`Pool::builder`].
///
/// # Examples
/// ```
/// #[shmproc::entry]
/// fn setup(greeting: String) {
///     // Runs once in every worker before its first task, e.g. to open a connection.
///     let _ = greeting;
/// }
///
/// #[shmproc::entry]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// let pool = shmproc::Pool::builder()
///     .workers(2)
///     .kind(shmproc::WorkerKind::Spawned)
///     .initializer(setup, "hello".to_owned())
///     .max_tasks_per_child(100)
///     .queue_bound(1_000)
///     .build()?;
/// assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
/// # Ok::<(), shmproc::ProcessError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    config: PoolConfig,
    /// The first setting that could not be taken (reported by `build`).
    failed: Option<ProcessError>,
}

impl Pool {
    /// A builder for a pool with more settings than its size: one spawned worker per CPU, no
    /// initializer, workers never replaced, no queue bound until set.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            config: PoolConfig::new(crate::cpu_count(), WorkerKind::Spawned),
            failed: None,
        }
    }
}

impl PoolBuilder {
    /// Number of workers (processes or threads; at least one).
    pub fn workers(mut self, workers: usize) -> PoolBuilder {
        self.config.workers = workers.max(1);
        self
    }

    /// How workers are started: spawned or forked processes, or threads of this process
    /// ([`WorkerKind::Threads`], as [`Pool::threads`]).
    pub fn kind(mut self, kind: WorkerKind) -> PoolBuilder {
        self.config.kind = kind;
        self
    }

    /// Runs `entry(arg)` once in every worker before its first task, also in workers started
    /// later to replace others (Python's `initializer=`, `initargs=`): for per-worker state
    /// such as a connection or a cache in a `static`. On a thread pool it runs on each thread.
    ///
    /// A thread whose initializer fails (panics) fails every task it takes with
    /// [`ProcessError::Failed`] naming the cause, rather than being restarted in a loop.
    pub fn initializer<E: Entry>(mut self, entry: E, arg: E::Arg) -> PoolBuilder {
        let _ = entry;
        match encode(&arg) {
            Ok(arg) => {
                self.config.initializer = Some(Initializer { key: E::KEY, arg });
            }
            Err(e) => {
                self.failed.get_or_insert(ProcessError::Encode(e));
            }
        }
        self
    }

    /// Replaces a worker after it has run `tasks` tasks (Python's `maxtasksperchild`): a
    /// fresh process, or a fresh thread (its thread-locals start over) that runs the
    /// initializer again. 0 means never (the default). `map` chunks count as one task each.
    pub fn max_tasks_per_child(mut self, tasks: usize) -> PoolBuilder {
        self.config.max_tasks_per_child = NonZeroUsize::new(tasks);
        self
    }

    /// Holds at most `tasks` tasks queued (submitted, not yet running; at least 1): then
    /// [`submit`](Pool::submit) blocks until one starts, [`submit_timeout`](Pool::submit_timeout)
    /// waits a bounded time, and [`try_submit`](Pool::try_submit) fails with
    /// [`ProcessError::QueueFull`]. Blocked submitters return [`ProcessError::ShutDown`] when
    /// the pool stops. `map`'s chunks count as tasks. Without it the queue is unbounded.
    pub fn queue_bound(mut self, tasks: usize) -> PoolBuilder {
        self.config.queue_bound = Some(tasks.max(1));
        self
    }

    /// The number of workers set so far (one per CPU unless [`workers`](PoolBuilder::workers)
    /// was called): what a backend crate's builder (see [`Pool::remote`]) takes as its size.
    pub fn worker_count(&self) -> usize {
        self.config.workers
    }

    /// Starts the pool.
    ///
    /// # Errors
    /// [`ProcessError::Encode`] if the initializer's argument could not be serialized;
    /// [`ProcessError::Failed`] if the initializer's entry is registered twice; as
    /// [`Pool::new`] otherwise.
    pub fn build(self) -> Result<Pool, ProcessError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Some(init) = &self.config.initializer {
            check_registered(init.key)?;
        }
        Pool::with_config(self.config)
    }
}
