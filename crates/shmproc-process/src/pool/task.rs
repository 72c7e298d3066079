//! `Task<R>`: the handle of a submitted Pool task, and `as_completed`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::completions::Completions;
use super::manager::Shared;
use crate::entry::decode_reply;
use crate::transport::Frame;
use crate::ProcessError;

/// Where a task's outcome lands (filled by the pool's manager thread).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    /// The link of the worker running the task, once it runs: a waiter takes the reply there.
    runner: Mutex<Option<Arc<dyn Runner>>>,
    /// The task's handle was dropped before it finished: nobody can receive its outcome.
    abandoned: AtomicBool,
    /// The `as_completed` / `wait_any` lists to tell when the outcome lands, with this slot's
    /// index in each.
    listeners: Mutex<Vec<(Arc<Completions>, usize)>>,
    /// Threads sleeping on `ready` (changed and read under `state`'s lock), so that waking
    /// nobody costs no system call.
    sleepers: AtomicU32,
    /// Set once the outcome is in `state`: what a spinning waiter polls, lock-free.
    done: AtomicBool,
    /// A thread pool's task: the CPU of the thread that runs it (or, queued, that last waited
    /// for work), plus one; a waiter on another CPU polls `done` a moment before it sleeps.
    /// 0: never poll (a process pool's task: its waiter takes the reply from the link).
    peer_cpu: AtomicU32,
    /// The outcome comes from another host (a broker pool): shared-memory handles in it are
    /// refused, as a name there means another segment here.
    off_host: AtomicBool,
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
    /// A slot whose outcome comes from another host (see `off_host`).
    pub(crate) fn off_host() -> Slot {
        let slot = Slot::default();
        slot.off_host.store(true, Ordering::Relaxed);
        slot
    }

    /// The slot of a thread pool's task, to be run on a thread that last ran on `peer_cpu`
    /// (plus one; 0: unknown).
    pub(crate) fn on_thread(peer_cpu: u32) -> Slot {
        Slot {
            peer_cpu: AtomicU32::new(peer_cpu),
            ..Slot::default()
        }
    }

    /// Notes that the thread running the task is on `cpu` (plus one).
    pub(crate) fn run_on(&self, cpu: u32) {
        if self.peer_cpu.load(Ordering::Relaxed) != cpu {
            self.peer_cpu.store(cpu, Ordering::Relaxed);
        }
    }

    /// Stores the outcome (the first one wins) and wakes every waiter.
    pub(crate) fn complete(&self, outcome: Result<Frame, ProcessError>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Waiting) {
            *state = SlotState::Done(outcome);
            self.notify_sleepers();
            drop(state);
            // After the unlock: a spinning waiter that sees it takes the lock uncontended.
            self.done.store(true, Ordering::Release);
            lock(&self.runner).take();
            let listeners = std::mem::take(&mut *lock(&self.listeners));
            for (list, index) in listeners {
                list.push(index);
            }
        }
    }

    /// Records the link of the worker the task runs on, and wakes waiters so they use it.
    pub(crate) fn set_runner(&self, runner: Arc<dyn Runner>) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Waiting) {
            *lock(&self.runner) = Some(runner);
            self.notify_sleepers();
        }
    }

    fn runner(&self) -> Option<Arc<dyn Runner>> {
        lock(&self.runner).clone()
    }

    /// Wakes threads in [`nap`](Slot::nap); call with `state` locked.
    fn notify_sleepers(&self) {
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.ready.notify_all();
        }
    }

    /// Marks the slot as one nobody will take, unless its outcome is there already. `true` if
    /// it did.
    fn abandon(&self) -> bool {
        if self.done.load(Ordering::Acquire) {
            return false;
        }
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

    pub(crate) fn is_done(&self) -> bool {
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

    /// A thread pool's task whose thread runs on another CPU: polls for the outcome for at
    /// most `budget` (a wake-up across CPUs can cost tens of microseconds, far more than a
    /// short task). Whether it is there. Never polls while the peer shares our CPU (polling
    /// would only keep it from running) or for a process pool's task.
    fn spin_for_outcome(&self, budget: Duration) -> bool {
        let mine = cpu_tag();
        let elsewhere = || {
            let peer = self.peer_cpu.load(Ordering::Relaxed);
            peer != 0 && (mine == 0 || peer != mine)
        };
        elsewhere()
            && spin_until(
                budget,
                || self.done.load(Ordering::Acquire),
                || !elsewhere(),
            )
    }

    /// Sleeps until the outcome is there or `nap` passed.
    pub(crate) fn nap(&self, nap: Duration) {
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

    /// Has `list` told `index` when the outcome lands, or at once if it is there already.
    pub(crate) fn listen(&self, list: &Arc<Completions>, index: usize) {
        // Under the state lock: `complete` sets the outcome under it before it reads the
        // listeners, so a listener is either seen by `complete` or sees the outcome here.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Waiting) {
            lock(&self.listeners).push((Arc::clone(list), index));
        } else {
            list.push(index);
        }
    }

    /// Stops telling `list` (a `wait_any` that returned).
    pub(crate) fn unlisten(&self, list: &Arc<Completions>) {
        lock(&self.listeners).retain(|(l, _)| !Arc::ptr_eq(l, list));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a thread of (or waiting on) a thread pool polls before it sleeps: longer than a
/// short task's round trip, far shorter than a time slice. A futex wake-up across CPUs costs
/// tens of microseconds on a VM, so a sleep on the common path would cost more than this.
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(20);

/// Polls between checks of the clock and of `give_up`.
const SPIN_CHUNK: u32 = 32;

/// Polls `ready` until it holds (`true`), `budget` passed or `give_up` holds (`false`).
/// Never yields: on a loaded machine a yield may hand the CPU away for a whole time slice.
pub(crate) fn spin_until(
    budget: Duration,
    mut ready: impl FnMut() -> bool,
    mut give_up: impl FnMut() -> bool,
) -> bool {
    let mut start = None;
    loop {
        for _ in 0..SPIN_CHUNK {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        let now = Instant::now();
        let start = *start.get_or_insert(now);
        if give_up() || now.duration_since(start) >= budget {
            return ready();
        }
    }
}

/// The CPU the calling thread runs on, plus one (0: unknown), as the pool records CPUs.
pub(crate) fn cpu_tag() -> u32 {
    crate::sys::current_cpu().map_or(0, |c| c.wrapping_add(1))
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
    /// The queue the task waits in until it runs (either backend), for `cancel`.
    queue: Weak<dyn CancelQueued>,
    _result: PhantomData<fn() -> R>,
}

/// A pool backend's queue, from which a task not yet running can be taken out.
pub(crate) trait CancelQueued: Send + Sync {
    /// Removes `slot`'s job if it is still queued, completing it with
    /// [`ProcessError::Cancelled`]. `false` if it runs or ran already.
    fn cancel_queued(&self, slot: &Arc<Slot>) -> bool;
}

impl<R: DeserializeOwned> Task<R> {
    pub(crate) fn new(slot: Arc<Slot>, pool: Weak<Shared>) -> Task<R> {
        let queue: Weak<dyn CancelQueued> = pool.clone();
        Task {
            slot,
            pool,
            queue,
            _result: PhantomData,
        }
    }

    /// A task of a pool without worker processes (no channel to watch): `queue` is its pool.
    pub(crate) fn queued_in(slot: Arc<Slot>, queue: Weak<dyn CancelQueued>) -> Task<R> {
        Task {
            slot,
            pool: Weak::new(),
            queue,
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
        let reply = self.take(None)?;
        self.decode(reply)
    }

    /// Waits at most `timeout`; after [`ProcessError::Timeout`] the task can still be waited.
    ///
    /// # Errors
    /// As [`wait`](Task::wait), plus `Timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<R, ProcessError> {
        let reply = self.take(Some(timeout))?;
        self.decode(reply)
    }

    /// The result in `reply` (handles in it refused if it came from another host).
    fn decode(&self, reply: Frame) -> Result<R, ProcessError> {
        if self.slot.off_host.load(Ordering::Relaxed) {
            shmproc_shm::deserialize_off_host(|| decode_reply(reply))
        } else {
            decode_reply(reply)
        }
    }

    /// Waits for the outcome. While the task runs, this thread takes the reply from its
    /// worker's pipe itself (no hop through the manager thread); queued, it sleeps until the
    /// task is handed to a worker or the manager completes it. A thread pool's task is polled
    /// for a moment first.
    fn take(&self, timeout: Option<Duration>) -> Result<Frame, ProcessError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // A thread pool's task: poll first (a short task is done within microseconds, a
        // wake-up across CPUs costs tens), then sleep below.
        self.slot
            .spin_for_outcome(timeout.map_or(SPIN_FOR, |t| t.min(SPIN_FOR)));
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

    /// Cancels the task if it has not started (Python's `Future.cancel`): it is taken out of
    /// the queue and never runs, and its waiter gets [`ProcessError::Cancelled`]. `false` if it
    /// is running or finished already (it then completes as usual), or its pool is gone.
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
    /// let pool = shmproc::Pool::new(1)?;
    /// let long = pool.submit(nap, 200)?;
    /// let queued = pool.submit(nap, 0)?;      // waits behind `long` on the only worker
    /// assert!(queued.cancel());
    /// assert!(matches!(queued.wait(), Err(shmproc::ProcessError::Cancelled)));
    /// assert_eq!(long.wait()?, 200);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.queue
            .upgrade()
            .is_some_and(|queue| queue.cancel_queued(&self.slot))
    }

    /// Where the outcome lands (for `as_completed` and `wait_any`).
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
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
