//! The pool's manager thread: hands queued jobs to idle workers, collects replies, notices
//! dead workers (end of stream on their channel, or their pidfd) and replaces them.
//!
//! Shutting down, it keeps going until the pool is idle, or its deadline passes, or it is told
//! to terminate; when dropping, it also cancels tasks whose handles are gone (see the table on
//! `Pool`). It leaves through [`Cleanup`], which stops and reaps every worker in bounded time.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::config::PoolConfig;
use super::link::{Heard, Link};
use super::task::Slot;
use crate::spawn::start_child;
use crate::transport::{Channel, Frame};
use crate::worker::{serve, Op};
use crate::{sys, Process, ProcessError};

/// How pool workers are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// A fresh copy of the program (`Process::spawn`'s way): safe in multi-threaded programs.
    Spawned,
    /// `fork` of the calling process: faster to start, inherits its memory; the usual caveats
    /// of forking a multi-threaded program apply.
    Forked,
    /// Threads in this process, no worker processes ([`Pool::threads`](crate::Pool::threads)):
    /// the same entries and calls, no process to start or copy to, no isolation (a task that
    /// crashes the process takes the pool with it; a panic fails only its task).
    Threads,
}

/// One job waiting for, or running on, a worker.
pub(crate) struct Job {
    pub op: Op,
    pub key: &'static str,
    pub arg: Frame,
    pub slot: Arc<Slot>,
}

pub(crate) struct Worker {
    process: Process<()>,
    /// Its pipe and socket; also says which job runs on it (see `link`).
    link: Arc<Link>,
}

pub(crate) struct State {
    pub queue: VecDeque<Job>,
    workers: Vec<Worker>,
    /// No new tasks; the manager leaves once idle.
    pub closing: bool,
    /// Leave at once, killing the workers.
    pub terminating: bool,
    /// Dropping: cancel tasks whose `Task` handles are gone (queued ones never run, running ones
    /// lose their worker).
    pub cancel_abandoned: bool,
    /// Past this instant, terminate.
    pub deadline: Option<Instant>,
    /// Unfinished tasks the manager failed on leaving (set by [`Cleanup`]).
    pub abandoned: usize,
    size: usize,
    kind: WorkerKind,
    /// The pool's settings (initializer, tasks per worker, queue bound).
    config: PoolConfig,
    started: u64,
    /// A worker's initializer failed with this message: no more workers are started, and
    /// tasks fail with [`ProcessError::InitializerFailed`].
    init_failed: Option<String>,
    /// Signalled when queued jobs leave the queue (submitters blocked at the queue bound).
    pub space: Arc<Condvar>,
    /// Submitters blocked at the queue bound (`space` is signalled only if there are any).
    pub space_waiters: usize,
    /// Respawn back-off after workers died idle (see [`State::note_death`]).
    respawn: Backoff,
    /// Jobs handed to workers so far, and the count at the last worker death: equal means
    /// the workers started since then served nothing.
    handed_out: (u64, u64),
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub wake: OwnedFd,
}

impl Shared {
    pub fn new(config: PoolConfig) -> Result<Shared, ProcessError> {
        let (size, kind) = (config.workers, config.kind);
        let mut state = State {
            queue: VecDeque::new(),
            workers: Vec::with_capacity(size),
            closing: false,
            terminating: false,
            cancel_abandoned: false,
            deadline: None,
            abandoned: 0,
            size,
            kind,
            config,
            started: 0,
            init_failed: None,
            space: Arc::default(),
            space_waiters: 0,
            respawn: Backoff::default(),
            handed_out: (0, 0),
        };
        for _ in 0..size {
            let worker = state.start_worker()?;
            state.workers.push(worker);
        }
        Ok(Shared {
            state: Mutex::new(state),
            wake: sys::eventfd()?,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wake(&self) {
        sys::eventfd_signal(self.wake.as_fd());
    }

    /// A waiter took its task's reply: its worker is free for a queued job.
    pub fn worker_freed(&self) {
        let mut state = self.lock();
        if !state.queue.is_empty() {
            state.dispatch_queued();
        }
    }
}

impl State {
    fn start_worker(&mut self) -> Result<Worker, ProcessError> {
        self.started += 1;
        let name = format!("PoolWorker-{}", self.started);
        let (process, channel) = match self.kind {
            WorkerKind::Spawned => {
                let (pid, channel) = start_child(&name)?;
                let process = Process::started(pid, name, crate::process::ResultLink::Forked);
                (process, channel)
            }
            WorkerKind::Forked => {
                let (ours, theirs) = Channel::pair()?;
                let process = Process::fork_named(name, move || serve(&theirs))?;
                (process, ours)
            }
            WorkerKind::Threads => {
                // `Pool` runs a thread pool itself and never starts this manager for one.
                return Err(ProcessError::Failed(
                    "internal: a thread pool has no worker processes".into(),
                ));
            }
        };
        let init = self.config.initializer.as_ref().map(|i| (i.key, &i.arg));
        let max_tasks = self.config.max_tasks_per_child.map(|n| n.get());
        match Link::start(channel, process.pid(), max_tasks, init) {
            Ok(link) => Ok(Worker {
                process,
                link: Arc::new(link),
            }),
            Err(e) => {
                let _ = process.kill();
                let _ = process.join_timeout(REAP_AFTER_KILL);
                Err(e)
            }
        }
    }

    /// Hands `job` to an idle worker, or queues it. `true` if it was queued.
    pub fn dispatch(&mut self, job: Job) -> bool {
        if let Some(msg) = &self.init_failed {
            job.slot
                .complete(Err(ProcessError::InitializerFailed(msg.clone())));
            return false;
        }
        match self.workers.iter_mut().find(|w| w.link.is_idle()) {
            Some(worker) => {
                worker.run(job);
                self.handed_out.0 += 1;
                false
            }
            None => {
                self.queue.push_back(job);
                true
            }
        }
    }

    pub(crate) fn dispatch_queued(&mut self) {
        let queued = self.queue.len();
        self.dispatch_queued_jobs();
        if self.queue.len() < queued {
            self.handed_out.0 += (queued - self.queue.len()) as u64;
            self.freed_space();
        }
    }

    fn dispatch_queued_jobs(&mut self) {
        while !self.queue.is_empty() {
            let Some(worker) = self.workers.iter_mut().find(|w| w.link.is_idle()) else {
                return;
            };
            let job = self.queue.pop_front().expect("not empty");
            if self.cancel_abandoned && job.slot.is_abandoned() {
                job.slot.complete(Err(ProcessError::ShutDown));
                continue;
            }
            worker.run(job);
        }
    }

    /// Cancels the tasks nobody can receive any more: drops them from the queue, and kills
    /// (and reaps) the workers running them.
    fn cancel_abandoned_tasks(&mut self) {
        self.queue.retain(|job| {
            let keep = !job.slot.is_abandoned();
            if !keep {
                job.slot.complete(Err(ProcessError::ShutDown));
            }
            keep
        });
        let mut i = 0;
        while i < self.workers.len() {
            if self.workers[i]
                .link
                .running()
                .is_some_and(|slot| slot.is_abandoned())
            {
                self.workers.swap_remove(i).stop_now();
            } else {
                i += 1;
            }
        }
    }

    /// Starts workers in place of dead ones: up to the pool's size while it runs; while it
    /// closes, only as many as queued tasks still need (each one started then runs a task or
    /// fails it by dying, so a worker that dies at start-up cannot keep shutdown going).
    /// `false` if a start failed.
    fn replenish(&mut self) -> bool {
        if self.respawn_postponed() {
            return false; // the manager polls again shortly
        }
        while self.workers.len() < self.size
            && !self.terminating
            && self.init_failed.is_none()
            && (!self.closing || self.idle_workers() < self.queue.len())
        {
            match self.start_worker() {
                Ok(worker) => self.workers.push(worker),
                Err(e) => {
                    if self.workers.is_empty() {
                        // Nobody can run the queue: fail it rather than hang its waiters.
                        let msg = e.to_string();
                        for job in self.queue.drain(..) {
                            job.slot.complete(Err(ProcessError::Failed(format!(
                                "no pool worker could be started: {msg}"
                            ))));
                        }
                    }
                    return false;
                }
            }
        }
        true
    }

    fn idle_workers(&self) -> usize {
        self.workers.iter().filter(|w| w.link.is_idle()).count()
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.workers.iter().all(|w| !w.link.is_busy())
    }

    /// A worker's initializer failed: fail every queued task, start no more workers.
    fn initializer_failed(&mut self, msg: String) {
        for job in self.queue.drain(..) {
            job.slot
                .complete(Err(ProcessError::InitializerFailed(msg.clone())));
        }
        self.init_failed = Some(msg);
    }

    /// Whether a submitter must wait: `queue_bound` jobs are queued and no worker is idle.
    pub fn queue_at_bound(&self) -> bool {
        self.config
            .queue_bound
            .is_some_and(|bound| self.queue.len() >= bound && self.idle_workers() == 0)
    }

    /// Wakes submitters blocked at the queue bound (jobs left the queue).
    fn freed_space(&self) {
        if self.space_waiters > 0 {
            self.space.notify_all();
        }
    }

    /// Takes `slot`'s job out of the queue, failing it with `Cancelled`. `false` if it is not
    /// queued (running, finished, or never submitted here).
    pub fn cancel_queued(&mut self, slot: &Arc<Slot>) -> bool {
        let Some(i) = self.queue.iter().position(|j| Arc::ptr_eq(&j.slot, slot)) else {
            return false;
        };
        if let Some(job) = self.queue.remove(i) {
            job.slot.complete(Err(ProcessError::Cancelled));
        }
        self.freed_space();
        true
    }

    /// Notes that a worker died, for the respawn back-off: it counts as dying before serving
    /// if it ran no task and no worker was handed one since the last death (so a worker
    /// retired after its `max_tasks_per_child` does not count).
    fn note_death(&mut self, running: bool) {
        let (handed, at_last_death) = self.handed_out;
        self.handed_out.1 = handed;
        self.respawn
            .death(!running && handed == at_last_death, Instant::now());
    }

    /// Whether the respawn back-off says to wait before starting a worker.
    fn respawn_postponed(&self) -> bool {
        self.respawn.postponed(Instant::now())
    }
}

impl Worker {
    fn run(&mut self, job: Job) {
        self.link.run(job);
    }

    /// Kills the worker and reaps it. Its running task (if any) fails with `ShutDown`, unless
    /// its reply has arrived already. `true` if a task was left unfinished.
    fn stop_now(self) -> bool {
        self.link.take_leftover();
        let _ = self.process.kill();
        let unfinished = self.link.running().map(|slot| {
            slot.complete(Err(ProcessError::ShutDown));
        });
        // SIGKILL ends any process short of one stuck in the kernel: bounded either way.
        let _ = self.process.join_timeout(REAP_AFTER_KILL);
        unfinished.is_some()
    }

    /// Reaps a worker that ended: a reply it sent before (a worker that retires after its
    /// last task) completes its task; otherwise the running task fails because it died.
    fn bury(self) {
        self.link.take_leftover();
        let status = self.process.join_timeout(REAP_AFTER_KILL).ok().flatten();
        let how = match status {
            Some(s) => match (s.code(), s.signal()) {
                (_, Some(sig)) => format!("killed by {}", sys::signal_name(sig)),
                (Some(code), _) => format!("exited with code {code}"),
                _ => s.to_string(),
            },
            None => {
                let _ = self.process.kill();
                "stopped answering; killed".to_owned()
            }
        };
        let error = match self.link.init_failure() {
            Some(msg) => ProcessError::InitializerFailed(msg),
            None => ProcessError::WorkerDied {
                pid: self.process.pid(),
                how,
            },
        };
        if let Some(slot) = self.link.running() {
            slot.complete(Err(error));
        }
    }
}

/// How long a killed worker (or one told to exit) gets to be reaped.
const REAP_AFTER_KILL: Duration = Duration::from_secs(5);

/// Longest poll while something needs checking again soon (a failed restart, no pidfd).
const SHORT_POLL: Duration = Duration::from_millis(50);

/// The manager thread's body.
pub(crate) fn run(shared: Arc<Shared>) {
    let _cleanup = Cleanup(&shared);
    let mut restart_failed = false;
    loop {
        let (fds, wait) = {
            let mut state = shared.lock();
            if state.cancel_abandoned {
                state.cancel_abandoned_tasks();
                restart_failed |= !state.replenish();
                state.dispatch_queued();
            }
            let now = Instant::now();
            if state.deadline.is_some_and(|d| now >= d) {
                state.terminating = true;
            }
            if state.terminating || (state.closing && state.is_idle()) {
                return;
            }
            let mut fds = vec![std::os::fd::AsRawFd::as_raw_fd(&shared.wake)];
            for w in &state.workers {
                fds.push(w.link.socket().raw_fd());
                fds.push(w.process.pidfd_raw().unwrap_or(-1));
            }
            let short = restart_failed
                || state
                    .workers
                    .iter()
                    .any(|w| w.process.pidfd_raw().is_none());
            let mut wait = short.then_some(SHORT_POLL);
            if let Some(deadline) = state.deadline {
                let left = deadline.saturating_duration_since(now);
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            (fds, wait)
        };
        let ready = match sys::poll_readable(&fds, wait) {
            Ok(ready) => ready,
            Err(_) => {
                // Out of memory or similar: nothing is known to be ready; retry shortly.
                std::thread::sleep(Duration::from_millis(10));
                vec![false; fds.len()]
            }
        };
        if ready[0] {
            sys::eventfd_drain(shared.wake.as_fd());
        }
        let mut state = shared.lock();
        restart_failed = !collect(&mut state, &fds[1..], &ready[1..]);
        state.dispatch_queued();
    }
}

/// Hears ready workers (notices, end of stream, initializer failures: see `link`) and
/// replaces dead ones. `false` if a replacement failed.
fn collect(state: &mut State, fds: &[RawFd], ready: &[bool]) -> bool {
    let mut dead = Vec::new();
    let mut init_failed = None;
    for (i, worker) in state.workers.iter_mut().enumerate() {
        // Pairs of (socket, pidfd) in the order they were listed; match by descriptor, as the
        // list was taken before the lock was dropped (only this thread changes `workers`).
        let Some(pos) = fds
            .iter()
            .position(|fd| *fd == worker.link.socket().raw_fd())
        else {
            continue;
        };
        let (socket_ready, exited) = (ready[pos], ready.get(pos + 1).copied().unwrap_or(false));
        let exited = exited || (worker.process.pidfd_raw().is_none() && !worker.process.is_alive());
        let heard = if socket_ready || exited {
            worker.link.hear()
        } else {
            Heard::Nothing
        };
        match heard {
            Heard::Nothing if !exited => {}
            Heard::InitFailed(msg) => {
                init_failed = Some(msg);
                dead.push(i);
            }
            _ => dead.push(i),
        }
    }
    if let Some(msg) = init_failed {
        state.initializer_failed(msg);
    }
    for i in dead.into_iter().rev() {
        let worker = state.workers.swap_remove(i);
        state.note_death(worker.link.is_busy());
        worker.bury();
    }
    state.replenish()
}

/// On leaving the manager (normally or by panic): stop the workers, fail what is left, and
/// count it in `State::abandoned`. Bounded: idle workers get [`REAP_AFTER_KILL`] in all to exit
/// when asked, then are killed; killed ones get as long again to be reaped.
struct Cleanup<'a>(&'a Shared);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closing = true;
        let mut abandoned = 0;
        for job in state.queue.drain(..) {
            job.slot.complete(Err(ProcessError::ShutDown));
            abandoned += 1;
        }
        // Normally idle when not terminating; after a panic of the manager, maybe not.
        let kill = state.terminating || state.workers.iter().any(|w| w.link.is_busy());
        let workers = std::mem::take(&mut state.workers);
        drop(state);
        if kill {
            for worker in workers {
                abandoned += usize::from(worker.stop_now());
            }
        } else {
            for worker in &workers {
                worker.link.send_exit();
            }
            let deadline = Instant::now() + REAP_AFTER_KILL;
            for worker in workers {
                let left = deadline.saturating_duration_since(Instant::now());
                if worker.process.join_timeout(left).ok().flatten().is_none() {
                    worker.stop_now();
                }
            }
        }
        self.0.lock().abandoned += abandoned;
    }
}
