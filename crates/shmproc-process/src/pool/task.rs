//! `Task<R>`: the handle of a submitted Pool task, and `as_completed`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::manager::Shared;
use crate::entry::decode_reply;
use crate::transport::Frame;
use crate::ProcessError;

/// Counts completed tasks in this process, so `as_completed` can sleep until one finishes.
static COMPLETIONS: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());
/// Threads sleeping on `COMPLETIONS` (changed and read under its lock): a completion with
/// none makes no system call.
static COMPLETION_SLEEPERS: AtomicU32 = AtomicU32::new(0);

/// Where a task's outcome lands (filled by the pool's manager thread).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    /// The link of the worker running the task, once it runs: a waiter takes the reply there.
    runner: Mutex<Option<Arc<dyn Runner>>>,
    /// The task's handle was dropped before it finished: nobody can receive its outcome.
    abandoned: AtomicBool,
    /// Threads sleeping on `ready` (changed and read under `state`'s lock), so that waking
    /// nobody costs no system call.
    sleepers: AtomicU32,
}

/// How [`Runner::wait_reply`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The reply was taken (by this thread or another): the slot is, or is about to be, done.
    Collected,
    /// Nothing yet within the nap.
    Pending,
    /// The worker is gone without a reply: the manager fails the task.
    Gone,
}

/// Where a waiting thread takes its running task's reply itself (a worker's link).
pub(crate) trait Runner: Send + Sync + std::fmt::Debug {
    /// Waits at most `nap` for `slot`'s reply and completes `slot` with it.
    fn wait_reply(&self, slot: &Arc<Slot>, nap: Duration) -> Waited;
}

#[derive(Debug, Default)]
enum SlotState {
    #[default]
    Waiting,
    Done(Result<Frame, ProcessError>),
    Taken,
}

impl Slot {
    /// Stores the outcome (the first one wins) and wakes every waiter.
    pub(crate) fn complete(&self, outcome: Result<Frame, ProcessError>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Waiting) {
            *state = SlotState::Done(outcome);
            self.notify_sleepers();
            drop(state);
            self.runner.lock().unwrap_or_else(|e| e.into_inner()).take();
            let mut count = COMPLETIONS.0.lock().unwrap_or_else(|e| e.into_inner());
            *count += 1;
            if COMPLETION_SLEEPERS.load(Ordering::Relaxed) > 0 {
                COMPLETIONS.1.notify_all();
            }
        }
    }

    /// Records the link of the worker the task runs on, and wakes waiters so they use it.
    pub(crate) fn set_runner(&self, runner: Arc<dyn Runner>) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Waiting) {
            *self.runner.lock().unwrap_or_else(|e| e.into_inner()) = Some(runner);
            self.notify_sleepers();
        }
    }

    /// Wakes threads in [`nap`](Slot::nap); call with `state` locked.
    fn notify_sleepers(&self) {
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.ready.notify_all();
        }
    }

    fn runner(&self) -> Option<Arc<dyn Runner>> {
        self.runner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the slot as one nobody will take, unless its outcome is there already. `true` if
    /// it did.
    fn abandon(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = matches!(*state, SlotState::Waiting);
        if waiting {
            self.abandoned.store(true, Ordering::Relaxed);
        }
        waiting
    }

    /// Whether the task's handle was dropped before the task finished.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    fn is_done(&self) -> bool {
        !matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            SlotState::Waiting
        )
    }

    /// Takes the outcome if there is one (or says it was taken).
    fn try_take(&self) -> Option<Result<Frame, ProcessError>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, SlotState::Taken) {
            SlotState::Done(outcome) => Some(outcome),
            SlotState::Taken => Some(Err(ProcessError::ResultTaken)),
            SlotState::Waiting => {
                *state = SlotState::Waiting;
                None
            }
        }
    }

    /// Sleeps until the outcome is there or `nap` passed.
    fn nap(&self, nap: Duration) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Waiting) {
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            let (_state, _) = self
                .ready
                .wait_timeout(state, nap)
                .unwrap_or_else(|e| e.into_inner());
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Longest sleep between checks while waiting (the manager wakes waiters sooner).
const NAP: Duration = Duration::from_millis(50);

/// A task submitted to a [`Pool`](crate::Pool) (like `concurrent.futures.Future`).
///
/// Dropping it discards the result. The task still runs while the pool runs, and
/// [`Pool::shutdown`](crate::Pool::shutdown) still waits for it; but a pool that is *dropped*
/// cancels it: not started, it never runs; running, its worker is killed (see the table on
/// [`Pool`](crate::Pool)). Keep the handle to have a dropped pool wait for the task.
#[derive(Debug)]
#[must_use = "a dropped Pool cancels tasks whose handles are gone; keep the Task, or call Pool::shutdown"]
pub struct Task<R> {
    slot: Arc<Slot>,
    pool: Weak<Shared>,
    _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> Task<R> {
    pub(crate) fn new(slot: Arc<Slot>, pool: Weak<Shared>) -> Task<R> {
        Task {
            slot,
            pool,
            _result: PhantomData,
        }
    }

    /// Whether the task has finished (successfully or not); `wait` then returns at once.
    pub fn is_ready(&self) -> bool {
        self.slot.is_done()
    }

    /// Waits for the task's result.
    ///
    /// # Errors
    /// [`ProcessError::Panicked`] if the entry panicked, [`ProcessError::WorkerDied`] if its
    /// worker died, [`ProcessError::ShutDown`] if the pool was terminated (or its shutdown
    /// timed out) before the task finished,
    /// [`ProcessError::ResultTaken`] if `wait_timeout` already returned it.
    pub fn wait(self) -> Result<R, ProcessError> {
        decode_reply(self.take(None)?)
    }

    /// Waits at most `timeout`; after [`ProcessError::Timeout`] the task can still be waited.
    ///
    /// # Errors
    /// As [`wait`](Task::wait), plus `Timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<R, ProcessError> {
        decode_reply(self.take(Some(timeout))?)
    }

    /// Waits for the outcome. While the task runs, this thread takes the reply from its
    /// worker's pipe itself (no hop through the manager thread); queued, it sleeps until the
    /// task is handed to a worker or the manager completes it.
    fn take(&self, timeout: Option<Duration>) -> Result<Frame, ProcessError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(outcome) = self.slot.try_take() {
                return outcome;
            }
            let nap = match deadline {
                None => NAP,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ProcessError::Timeout);
                    }
                    left.min(NAP)
                }
            };
            let Some(runner) = self.slot.runner() else {
                self.slot.nap(nap);
                continue;
            };
            match runner.wait_reply(&self.slot, nap) {
                Waited::Collected => {
                    if let Some(pool) = self.pool.upgrade() {
                        pool.worker_freed();
                    }
                    // Completed by now, or about to be by whoever took the reply.
                    self.slot.nap(nap);
                }
                Waited::Pending => {}
                // The manager notices the death (pidfd) and fails the task.
                Waited::Gone => self.slot.nap(nap),
            }
        }
    }
}

impl<R> Drop for Task<R> {
    fn drop(&mut self) {
        if self.slot.abandon() {
            if let Some(pool) = self.pool.upgrade() {
                // A pool being dropped cancels the task now, not when it would have finished.
                if pool.lock().cancel_abandoned {
                    pool.wake();
                }
            }
        }
    }
}

/// Yields the results of `tasks` in the order they finish (like
/// `concurrent.futures.as_completed`).
///
/// # Examples
/// ```
/// #[shmproc::entry]
/// fn double(n: u32) -> u32 {
///     n * 2
/// }
///
/// let pool = shmproc::Pool::new(2)?;
/// let tasks = (0..4).map(|n| pool.submit(double, n)).collect::<Result<Vec<_>, _>>()?;
/// let mut results = shmproc::as_completed(tasks).collect::<Result<Vec<u32>, _>>()?;
/// results.sort();
/// assert_eq!(results, [0, 2, 4, 6]);
/// # Ok::<(), shmproc::ProcessError>(())
/// ```
pub fn as_completed<R: DeserializeOwned>(tasks: Vec<Task<R>>) -> AsCompleted<R> {
    AsCompleted { tasks }
}

/// The iterator of [`as_completed`].
#[derive(Debug)]
pub struct AsCompleted<R> {
    tasks: Vec<Task<R>>,
}

impl<R: DeserializeOwned> Iterator for AsCompleted<R> {
    type Item = Result<R, ProcessError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.tasks.is_empty() {
            return None;
        }
        loop {
            // Read the count before scanning: a completion after the scan changes it, so the
            // wait below cannot miss it.
            let seen = *COMPLETIONS.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = self.tasks.iter().position(Task::is_ready) {
                return Some(self.tasks.swap_remove(i).wait());
            }
            let count = COMPLETIONS.0.lock().unwrap_or_else(|e| e.into_inner());
            if *count == seen {
                // Bounded nap: robust even if a completion were somehow not counted.
                COMPLETION_SLEEPERS.fetch_add(1, Ordering::Relaxed);
                let _ = COMPLETIONS
                    .1
                    .wait_timeout(count, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner());
                COMPLETION_SLEEPERS.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.tasks.len(), Some(self.tasks.len()))
    }
}
