//! Waiting for the first of many tasks: `as_completed`, `as_completed_timeout`, `wait_any`.
//!
//! Each task's [`Slot`](super::task::Slot) tells a shared [`Completions`] list its index when
//! its outcome lands, so finding the next finished task costs O(1), not a scan of all of them.

use std::sync::{Arc, Condvar, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::completions::Completions;
use super::task::Task;
use crate::ProcessError;

/// Tasks to be taken as they finish (the state of `as_completed` and `imap_unordered`).
#[derive(Debug)]
pub(crate) struct TaskSet<R> {
    tasks: Vec<Option<Task<R>>>,
    free: Vec<usize>,
    done: Arc<Completions>,
    len: usize,
}

impl<R: DeserializeOwned> TaskSet<R> {
    pub(crate) fn new() -> TaskSet<R> {
        TaskSet {
            tasks: Vec::new(),
            free: Vec::new(),
            done: Arc::default(),
            len: 0,
        }
    }

    /// Adds `task`; returns its index (reused once taken).
    pub(crate) fn insert(&mut self, task: Task<R>) -> usize {
        let index = self.free.pop().unwrap_or(self.tasks.len());
        task.slot().listen(&self.done, index);
        if index == self.tasks.len() {
            self.tasks.push(Some(task));
        } else {
            self.tasks[index] = Some(task);
        }
        self.len += 1;
        index
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes the next task to finish, with its index, waiting until `deadline`; `None` if
    /// there is none left or the deadline passed first.
    pub(crate) fn next_done(&mut self, deadline: Option<Instant>) -> Option<(usize, Task<R>)> {
        if self.len == 0 {
            return None;
        }
        let index = self.done.next(deadline)?;
        let task = self.tasks.get_mut(index)?.take()?;
        self.free.push(index);
        self.len -= 1;
        Some((index, task))
    }

    /// Cancels the tasks not started yet (see [`Task::cancel`]).
    pub(crate) fn cancel_all(&self) {
        for task in self.tasks.iter().flatten() {
            task.cancel();
        }
    }
}

/// Yields the results of `tasks` in the order they finish (like
/// `concurrent.futures.as_completed`). Each step costs O(1): finished tasks announce
/// themselves rather than being searched for.
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
    let mut set = TaskSet::new();
    for task in tasks {
        set.insert(task);
    }

    AsCompleted {
        set,
        deadline: None,
    }
}

/// [`as_completed`] with a time limit (Python's `as_completed(fs, timeout)`): once `timeout`
/// (monotonic clock, from this call) has passed with tasks unfinished, the next item is
/// [`ProcessError::Timeout`] and the iteration ends. The unfinished tasks are dropped with the
/// iterator: they still run, unless the pool is dropped (see the table on
/// [`Pool`](crate::Pool)).
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
/// let pool = shmproc::Pool::new(2)?;
/// let tasks = vec![pool.submit(nap, 0)?, pool.submit(nap, 60_000)?];
/// let items: Vec<_> = shmproc::as_completed_timeout(tasks, Duration::from_millis(500)).collect();
/// assert!(matches!(items[..], [Ok(0), Err(shmproc::ProcessError::Timeout)]));
/// pool.terminate()?;
/// # Ok::<(), shmproc::ProcessError>(())
/// ```
pub fn as_completed_timeout<R: DeserializeOwned>(
    tasks: Vec<Task<R>>,
    timeout: Duration,
) -> AsCompleted<R> {
    let mut iter = as_completed(tasks);
    // A deadline past what the clock can say is no deadline.
    iter.deadline = Instant::now().checked_add(timeout);
    iter
}

/// The iterator of [`as_completed`] and [`as_completed_timeout`].
#[derive(Debug)]
pub struct AsCompleted<R> {
    set: TaskSet<R>,
    deadline: Option<Instant>,
}

impl<R: DeserializeOwned> Iterator for AsCompleted<R> {
    type Item = Result<R, ProcessError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.set.len() == 0 {
            return None;
        }
        match self.set.next_done(self.deadline) {
            Some((_, task)) => Some(task.wait()),
            None => {
                // Timed out: say so once, then end.
                self.set = TaskSet::new();
                Some(Err(ProcessError::Timeout))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.set.len();
        match self.deadline {
            None => (len, Some(len)),
            // A timeout may cut it short, then adds its error.
            Some(_) => (len.min(1), Some(len + 1)),
        }
    }
}

/// Waits until one of `tasks` has finished and returns its index (Python's
/// `wait(fs, timeout, return_when=FIRST_COMPLETED)`); the tasks stay where they are, so take
/// the result with `tasks.swap_remove(i).wait()`. Returns at once if one has finished already
/// (the lowest such index is not guaranteed; any finished one is).
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
/// let pool = shmproc::Pool::new(2)?;
/// let mut tasks = vec![pool.submit(nap, 60_000)?, pool.submit(nap, 1)?];
/// let first = shmproc::wait_any(&tasks, Duration::from_secs(30))?;
/// assert_eq!(first, 1);
/// assert_eq!(tasks.swap_remove(first).wait()?, 1);
/// pool.terminate()?;
/// # Ok::<(), shmproc::ProcessError>(())
/// ```
///
/// # Errors
/// [`ProcessError::Timeout`] if none finished within `timeout` (monotonic clock), at once for
/// an empty list (nothing can finish); every task can still be waited for.
pub fn wait_any<R: DeserializeOwned>(
    tasks: &[Task<R>],
    timeout: Duration,
) -> Result<usize, ProcessError> {
    if tasks.is_empty() {
        return Err(ProcessError::Timeout);
    }
    let done = Arc::new(Completions::default());
    for (index, task) in tasks.iter().enumerate() {
        task.slot().listen(&done, index);
    }
    let first = done.next(Instant::now().checked_add(timeout));
    for task in tasks {
        task.slot().unlisten(&done);
    }
    first.ok_or(ProcessError::Timeout)
}

/// How a submission waits at the queue bound.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Admit {
    /// Until there is room (`submit`).
    Block,
    /// Until there is room or the deadline passes (`submit_timeout`).
    Until(Instant),
    /// Not at all (`try_submit`).
    Never,
}

/// The queue-bound view of a backend's state.
pub(crate) trait AdmitState {
    /// No new tasks are taken.
    fn closing(&self) -> bool;
    /// The queue holds as many tasks as its bound allows (never without a bound).
    fn queue_full(&self) -> bool;
    /// Submitters blocked in [`admit`] (so the backend signals `space` only when needed).
    fn space_waiters(&mut self) -> &mut usize;
}

/// Longest sleep of a blocked submitter between checks (robust if a signal were missed).
const ADMIT_NAP: Duration = Duration::from_millis(100);

/// Waits, as `how` says, until the queue has room; returns the state locked for
/// the submission.
///
/// # Errors
/// [`ProcessError::ShutDown`] once the pool stops taking tasks (also while blocked);
/// [`ProcessError::QueueFull`] if the queue stayed full for as long as `how` allows.
pub(crate) fn admit<'a, S: AdmitState>(
    mut state: MutexGuard<'a, S>,
    space: &Condvar,
    how: Admit,
) -> Result<MutexGuard<'a, S>, ProcessError> {
    loop {
        if state.closing() {
            return Err(ProcessError::ShutDown);
        }
        if !state.queue_full() {
            return Ok(state);
        }
        let nap = match how {
            Admit::Block => ADMIT_NAP,
            Admit::Never => return Err(ProcessError::QueueFull),
            Admit::Until(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ProcessError::QueueFull);
                }
                left.min(ADMIT_NAP)
            }
        };
        *state.space_waiters() += 1;
        state = space
            .wait_timeout(state, nap)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        *state.space_waiters() -= 1;
    }
}
