//! The thread backend of `Pool` ([`Pool::threads`](crate::Pool::threads)): the same entries
//! and calls, run on threads of this process (Python's `ThreadPoolExecutor`).
//!
//! Jobs carry the entry's `run`/`run_many` function (frame in, frame out), so arguments and
//! results go through the same encoding and the same `Task` decode path as with processes, and
//! no key is looked up per task. A task that panics fails only itself (`catch_unwind`).
//!
//! | a thread …                      | leaves when                                            |
//! |---------------------------------|--------------------------------------------------------|
//! | idle                            | the pool shuts down (queue empty) or is terminated     |
//! | running a task                  | after the task, if the pool stopped meanwhile; a       |
//! |                                 | terminated pool has failed the task already and the    |
//! |                                 | result is discarded                                    |
//! | that ran `max_tasks_per_child`  | after starting its replacement (which runs the         |
//! |                                 | initializer again)                                     |
//!
//! Waiting for work, a thread polls a moment (`SPIN_FOR`) before it sleeps, and so does a
//! task's waiter (`Task::wait`): a futex wake-up across CPUs costs tens of microseconds on a
//! VM, far more than a short task. Neither polls while the other side last ran on its own CPU.

use std::any::Any;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::config::{PoolConfig, Stop};
use super::task::{cpu_tag, spin_until, CancelQueued, Slot, Task, SPIN_FOR};
use super::wait::{admit, Admit, AdmitState};

use crate::entry::{find, REPLY_FAILED, REPLY_OK, REPLY_PANIC};
use crate::transport::Frame;
use crate::ProcessError;

/// An entry's frame-in, frame-out function (`Registered::run` or `run_many`).
pub(crate) type RunFn = fn(Frame) -> Result<Frame, String>;

/// Longest sleep of a stopping pool between checks (a task handle dropped meanwhile).
const STOP_NAP: Duration = Duration::from_millis(50);

struct Job {
    run: RunFn,
    arg: Frame,
    slot: Arc<Slot>,
}

/// The thread backend: the state its threads share.
pub(crate) struct Threads {
    inner: Arc<Inner>,
}

struct Inner {
    /// Bumped after a job is queued while threads spin for work (what they poll, lock-free).
    signal: AtomicU32,
    /// The CPU a task was last submitted from, plus one (0: unknown). A thread waiting for
    /// work there sleeps at once: spinning would only keep the submitter from running.
    client_cpu: AtomicU32,
    /// The CPU a thread last waited for work on, plus one: where a new task's waiter expects
    /// it to run.
    worker_cpu: AtomicU32,
    state: Mutex<State>,
    /// Jobs were queued, or the pool is stopping.
    work: Condvar,
    /// A task finished or a thread left while the pool stops.
    changed: Condvar,
    /// Jobs left the queue (submitters blocked at the bound).
    space: Condvar,
    initializer: Option<(RunFn, Frame)>,
    max_tasks: Option<NonZeroUsize>,
    /// Most threads polling for work at once (one CPU fewer than we may use, at least one),
    /// so that a large pool's idle threads do not crowd out the rest of the process.
    max_spinning: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Slots of the tasks running now.
    running: Vec<Arc<Slot>>,
    /// Threads waiting for work, polling `signal` a moment first.
    spinning: usize,
    /// Threads waiting for work, asleep on `work`.
    sleeping: usize,
    /// Threads alive (serving or about to).
    threads: usize,
    /// No new tasks; threads leave once the queue is empty.
    closing: bool,
    /// Threads leave after their current task; queued and running tasks have been failed.
    stopped: bool,
    /// Dropping: queued tasks whose handles are gone never run.
    cancel_abandoned: bool,
    space_waiters: usize,
    /// The queue bound (`None`: no bound).
    bound: Option<usize>,
    /// Threads started so far (names).
    started: u64,
}

impl AdmitState for State {
    fn closing(&self) -> bool {
        self.closing
    }
    fn queue_full(&self) -> bool {
        // Each idle thread takes a job as soon as it wakes.
        self.bound
            .is_some_and(|b| self.queue.len() >= b + self.spinning + self.sleeping)
    }
    fn space_waiters(&mut self) -> &mut usize {
        &mut self.space_waiters
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells threads spinning for work to look at the queue.
    fn poke(&self) {
        self.signal.fetch_add(1, Ordering::Release);
    }

    /// Fails every queued and running task with `ShutDown` and tells threads to leave.
    /// Returns how many tasks it failed.
    fn fail_all(&self, state: &mut State) -> usize {
        state.stopped = true;
        let mut failed = 0;
        for job in state.queue.drain(..) {
            job.slot.complete(Err(ProcessError::ShutDown));
            failed += 1;
        }
        for slot in state.running.drain(..) {
            slot.complete(Err(ProcessError::ShutDown));
            failed += 1;
        }
        self.work.notify_all();
        self.space.notify_all();
        self.poke();
        failed
    }
}

impl CancelQueued for Inner {
    fn cancel_queued(&self, slot: &Arc<Slot>) -> bool {
        let mut state = self.lock();
        let Some(i) = state.queue.iter().position(|j| Arc::ptr_eq(&j.slot, slot)) else {
            return false;
        };
        if let Some(job) = state.queue.remove(i) {
            job.slot.complete(Err(ProcessError::Cancelled));
        }
        if state.space_waiters > 0 {
            self.space.notify_all();
        }
        true
    }
}

impl Threads {
    /// Starts `config.workers` threads.
    ///
    /// # Errors
    /// [`ProcessError::Failed`] if the initializer's entry is not registered exactly once;
    /// [`ProcessError::Io`] if a thread cannot be started.
    pub fn new(config: PoolConfig) -> Result<Threads, ProcessError> {
        let initializer = match config.initializer {
            Some(init) => Some((find(init.key).map_err(ProcessError::Failed)?.run, init.arg)),
            None => None,
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                bound: config.queue_bound,
                ..State::default()
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
            space: Condvar::new(),
            initializer,
            max_tasks: config.max_tasks_per_child,
            max_spinning: std::thread::available_parallelism()
                .map_or(1, |n| n.get() - 1)
                .max(1),
            signal: AtomicU32::new(0),
            client_cpu: AtomicU32::new(0),
            worker_cpu: AtomicU32::new(0),
        });
        let threads = Threads { inner };
        for _ in 0..config.workers {
            if let Err(e) = start_thread(&threads.inner) {
                let _ = threads.stop(Stop::Now);
                return Err(e.into());
            }
        }
        Ok(threads)
    }

    /// Queues `run(arg)` once `how` admits it.
    pub fn submit<R: DeserializeOwned>(
        &self,
        run: RunFn,
        arg: Frame,
        how: Admit,
    ) -> Result<Task<R>, ProcessError> {
        let inner = &self.inner;
        note_cpu(&inner.client_cpu);
        let slot = Arc::new(Slot::on_thread(inner.worker_cpu.load(Ordering::Relaxed)));
        let mut state = admit(inner.lock(), &inner.space, how)?;
        state.queue.push_back(Job {
            run,
            arg,
            slot: Arc::clone(&slot),
        });
        let poke = state.spinning > 0;
        // A spinning thread takes the job without a wake-up (a system call).
        let wake = state.sleeping > 0 && state.queue.len() > state.spinning;
        drop(state);
        // After the unlock: the thread that sees it takes the lock uncontended.
        if poke {
            inner.poke();
        }
        if wake {
            inner.work.notify_one();
        }
        let queue: Weak<dyn CancelQueued> = Arc::downgrade(&self.inner) as Weak<Inner>;
        Ok(Task::queued_in(slot, queue))
    }

    /// Stops as `how` says (see the table on `Pool`; running tasks cannot be killed: they
    /// finish in the background). Returns how many tasks it failed.
    pub fn stop(&self, how: Stop) -> Result<usize, ProcessError> {
        let inner = &self.inner;
        let mut state = inner.lock();
        if state.stopped {
            return Ok(0);
        }
        state.closing = true;
        inner.work.notify_all();
        inner.space.notify_all();
        inner.poke();
        let deadline = match how {
            Stop::Now => return Ok(inner.fail_all(&mut state)),
            Stop::Wait => None,
            Stop::Until(deadline) => Some(deadline),
            Stop::Drop(deadline) => {
                state.cancel_abandoned = true;
                for job in &state.queue {
                    if job.slot.is_abandoned() {
                        job.slot.complete(Err(ProcessError::ShutDown));
                    }
                }
                state.queue.retain(|job| !job.slot.is_abandoned());
                Some(deadline)
            }
        };
        loop {
            let held = |s: &Arc<Slot>| !s.is_abandoned();
            let done = if state.cancel_abandoned {
                !state.queue.iter().any(|j| held(&j.slot)) && !state.running.iter().any(held)
            } else {
                state.threads == 0
            };
            if done || state.stopped {
                let failed = if state.stopped {
                    0
                } else {
                    inner.fail_all(&mut state)
                };
                return Ok(failed);
            }
            let mut nap = STOP_NAP;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(inner.fail_all(&mut state));
                }
                nap = nap.min(left);
            }
            state = inner
                .changed
                .wait_timeout(state, nap)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Starts one serving thread.
fn start_thread(inner: &Arc<Inner>) -> std::io::Result<()> {
    let mut state = inner.lock();
    state.started += 1;
    let name = format!("shmproc-pool-thread-{}", state.started);
    state.threads += 1;
    drop(state);
    let for_thread = Arc::clone(inner);
    let started = std::thread::Builder::new()
        .name(name)
        .spawn(move || serve(&for_thread));
    if started.is_err() {
        inner.lock().threads -= 1;
    }
    started.map(drop)
}

/// A thread's body: the initializer, then tasks until the pool stops or the thread has run
/// `max_tasks` of them.
fn serve(inner: &Arc<Inner>) {
    crate::entry::serve_requests_for(std::process::id()); // results stay in this process
    let init_failed = inner.initializer.as_ref().and_then(|(run, arg)| {
        let reply =
            copy_frame(arg).map_or_else(|e| Err(e.to_string()), |arg| Ok(run_job(*run, arg)));
        match reply {
            Ok(reply) if reply.bytes.first() == Some(&REPLY_OK) => None,
            Ok(reply) => Some(String::from_utf8_lossy(&reply.bytes[1..]).into_owned()),
            Err(e) => Some(e),
        }
    });
    let mut served = 0_usize;
    let mut state = inner.lock();
    loop {
        let job;
        (state, job) = next_job(inner, state);
        let Some(job) = job else { break };
        drop(state);
        let outcome = match &init_failed {
            None => Ok(run_job(job.run, job.arg)),
            Some(e) => Err(ProcessError::Failed(format!(
                "the pool's initializer failed on this thread: {e}"
            ))),
        };
        job.slot.complete(outcome);
        served += 1;
        state = inner.lock();
        state.running.retain(|s| !Arc::ptr_eq(s, &job.slot));
        if state.closing {
            inner.changed.notify_all();
        }
        if inner.max_tasks.is_some_and(|max| served >= max.get()) && !state.closing {
            drop(state);
            // Retire once the replacement runs; if it cannot start, carry on.
            let replaced = start_thread(inner).is_ok();
            state = inner.lock();
            if replaced {
                break;
            }
            served = 0;
        }
    }
    state.threads -= 1;
    inner.changed.notify_all();
}

/// The next job to run (marked running), or `None` once the thread should leave.
fn next_job<'a>(
    inner: &'a Inner,
    mut state: MutexGuard<'a, State>,
) -> (MutexGuard<'a, State>, Option<Job>) {
    let mut spun = false;
    loop {
        if state.stopped {
            return (state, None);
        }
        if let Some(job) = state.queue.pop_front() {
            if state.space_waiters > 0 {
                inner.space.notify_all();
            }
            if state.cancel_abandoned && job.slot.is_abandoned() {
                job.slot.complete(Err(ProcessError::ShutDown));
                continue;
            }
            job.slot.run_on(cpu_tag());
            state.running.push(Arc::clone(&job.slot));
            return (state, Some(job));
        }
        if state.closing {
            return (state, None);
        }
        // Poll a moment first (the next task of a submitter waiting for each result comes
        // within microseconds), unless the submitter last ran on this CPU or enough threads
        // poll already.
        let cpu = note_cpu(&inner.worker_cpu);
        if !spun
            && state.spinning < inner.max_spinning
            && (cpu == 0 || inner.client_cpu.load(Ordering::Relaxed) != cpu)
        {
            spun = true;
            let seen = inner.signal.load(Ordering::Acquire);
            state.spinning += 1;
            drop(state);
            spin_until(
                SPIN_FOR,
                || inner.signal.load(Ordering::Acquire) != seen,
                || false,
            );
            state = inner.lock();
            state.spinning -= 1;
            continue;
        }
        state.sleeping += 1;
        state = inner.work.wait(state).unwrap_or_else(|e| e.into_inner());
        state.sleeping -= 1;
        spun = false;
    }
}

/// Records the calling thread's CPU (plus one) in `word`, writing only when it changed so
/// that the other side's reads stay cache hits; returns it.
fn note_cpu(word: &AtomicU32) -> u32 {
    let cpu = cpu_tag();
    if word.load(Ordering::Relaxed) != cpu {
        word.store(cpu, Ordering::Relaxed);
    }
    cpu
}

/// Runs one job; the reply is framed as a worker process's: `[status][payload]`.
pub(crate) fn run_job(run: RunFn, arg: Frame) -> Frame {
    let (status, mut reply) = match catch_unwind(AssertUnwindSafe(|| run(arg))) {
        Ok(Ok(reply)) => (REPLY_OK, reply),
        Ok(Err(msg)) => (REPLY_FAILED, text_frame(msg)),
        Err(payload) => (REPLY_PANIC, text_frame(panic_message(&*payload))),
    };
    reply.bytes.insert(0, status);
    reply
}

fn text_frame(text: String) -> Frame {
    Frame {
        bytes: text.into_bytes(),
        fds: Vec::new(),
    }
}

/// A panic's message (as a worker process reports it).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

/// A copy of `frame` with its own descriptors (each thread's initializer consumes one).
fn copy_frame(frame: &Frame) -> std::io::Result<Frame> {
    Ok(Frame {
        bytes: frame.bytes.clone(),
        fds: frame
            .fds
            .iter()
            .map(|fd| fd.try_clone())
            .collect::<Result<_, _>>()?,
    })
}
