//! `Pool`: a fixed set of worker processes running registered entries (Python's
//! `multiprocessing.Pool` / `concurrent.futures.ProcessPoolExecutor`).

mod manager;
mod task;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;

pub use manager::WorkerKind;
pub use task::{as_completed, AsCompleted, Task};

use crate::entry::{encode, Entry};
use crate::worker::Op;
use crate::ProcessError;
use manager::{Job, Shared};
use task::Slot;

/// Chunks per worker that `map` splits its input into: few enough that trivial items cost
/// little, enough that uneven items balance.
const CHUNKS_PER_WORKER: usize = 4;

/// A pool of worker processes.
///
/// Workers are spawned copies of the program by default ([`WorkerKind::Forked`] on request).
/// A task that panics fails only itself; a worker that dies (killed, `abort`, out of memory)
/// fails its running task with [`ProcessError::WorkerDied`] and is replaced. Dropping the pool
/// shuts it down, waiting for submitted tasks.
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

impl Pool {
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
        let size = workers.max(1);
        let shared = Arc::new(Shared::new(size, kind)?);
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
    /// # Errors
    /// [`ProcessError::Encode`] if `arg` cannot be serialized; [`ProcessError::ShutDown`]
    /// after [`shutdown`](Pool::shutdown).
    pub fn submit<E: Entry>(&self, entry: E, arg: E::Arg) -> Result<Task<E::Ret>, ProcessError> {
        let _ = entry;
        self.submit_raw(Op::Call, E::KEY, &arg)
    }

    fn submit_raw<A: Serialize + ?Sized, R: serde::de::DeserializeOwned>(
        &self,
        op: Op,
        key: &'static str,
        arg: &A,
    ) -> Result<Task<R>, ProcessError> {
        let arg = encode(arg).map_err(ProcessError::Encode)?;
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
    /// # Errors
    /// The first failing chunk's error: a panic ([`ProcessError::Panicked`]), a dead worker
    /// ([`ProcessError::WorkerDied`]), or as [`submit`](Pool::submit).
    pub fn map<E, I>(&self, entry: E, items: I) -> Result<Vec<E::Ret>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        let _ = entry;
        let items: Vec<E::Arg> = items.into_iter().collect();
        let chunk = items.len().div_ceil(self.size * CHUNKS_PER_WORKER).max(1);
        let tasks = items
            .chunks(chunk)
            .map(|c| self.submit_raw::<_, Vec<E::Ret>>(Op::CallMany, E::KEY, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(items.len());
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

    /// Stops accepting tasks, lets submitted ones finish, and stops the workers. Called by
    /// `drop` too; calling it again does nothing.
    ///
    /// # Errors
    /// [`ProcessError::Failed`] if the manager thread panicked.
    pub fn shutdown(&self) -> Result<(), ProcessError> {
        self.stop(false)
    }

    /// Stops at once: kills the workers; running and queued tasks fail with
    /// [`ProcessError::ShutDown`].
    ///
    /// # Errors
    /// As [`shutdown`](Pool::shutdown).
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.stop(true)
    }

    fn stop(&self, kill: bool) -> Result<(), ProcessError> {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            state.terminating |= kill;
        }
        self.shared.wake();
        let manager = self
            .manager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match manager.map(JoinHandle::join) {
            Some(Err(_)) => Err(ProcessError::Failed(
                "the pool's manager thread panicked".into(),
            )),
            _ => Ok(()),
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
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}
