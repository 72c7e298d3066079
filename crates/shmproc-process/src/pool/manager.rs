//! The pool's manager thread: hands queued jobs to idle workers, collects replies, notices
//! dead workers (end of stream on their channel, or their pidfd) and replaces them.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::task::Slot;
use crate::spawn::{send_job, start_child};
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
    channel: Channel,
    running: Option<Arc<Slot>>,
}

pub(crate) struct State {
    pub queue: VecDeque<Job>,
    workers: Vec<Worker>,
    pub closing: bool,
    pub terminating: bool,
    size: usize,
    kind: WorkerKind,
    started: u64,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub wake: OwnedFd,
}

impl Shared {
    pub fn new(size: usize, kind: WorkerKind) -> Result<Shared, ProcessError> {
        let mut state = State {
            queue: VecDeque::new(),
            workers: Vec::with_capacity(size),
            closing: false,
            terminating: false,
            size,
            kind,
            started: 0,
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
        };
        Ok(Worker {
            process,
            channel,
            running: None,
        })
    }

    /// Hands `job` to an idle worker, or queues it. `true` if it was queued.
    pub fn dispatch(&mut self, job: Job) -> bool {
        match self.workers.iter_mut().find(|w| w.running.is_none()) {
            Some(worker) => {
                worker.run(job);
                false
            }
            None => {
                self.queue.push_back(job);
                true
            }
        }
    }

    fn dispatch_queued(&mut self) {
        while !self.queue.is_empty() {
            let Some(worker) = self.workers.iter_mut().find(|w| w.running.is_none()) else {
                return;
            };
            let job = self.queue.pop_front().expect("not empty");
            worker.run(job);
        }
    }

    /// The channel of the worker running `slot`, if it runs now.
    pub fn channel_running(&self, slot: &Arc<Slot>) -> Option<RawFd> {
        self.workers
            .iter()
            .find(|w| w.running.as_ref().is_some_and(|s| Arc::ptr_eq(s, slot)))
            .map(|w| w.channel.raw_fd())
    }

    /// Takes `slot`'s reply if it has arrived (a waiting thread does this itself, saving the
    /// manager thread's hop). `false` if there was none (the manager handles a dead worker).
    pub fn try_collect(&mut self, slot: &Arc<Slot>) -> bool {
        let Some(worker) = self
            .workers
            .iter_mut()
            .find(|w| w.running.as_ref().is_some_and(|s| Arc::ptr_eq(s, slot)))
        else {
            return false;
        };
        if !worker.take_reply() {
            return false;
        }
        self.dispatch_queued();
        true
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.workers.iter().all(|w| w.running.is_none())
    }
}

impl Worker {
    /// Reads a reply if one is there right now and completes the running slot with it.
    /// Never blocks waiting for a reply to start (a waiting thread may have taken it already).
    /// `false` if there was none, or the stream ended (the worker is dying).
    fn take_reply(&mut self) -> bool {
        let ready = sys::poll_readable(&[self.channel.raw_fd()], Some(Duration::ZERO));
        if !ready.is_ok_and(|r| r[0]) {
            return false;
        }
        match self.channel.recv(None) {
            Ok(Some(reply)) => {
                if let Some(slot) = self.running.take() {
                    slot.complete(Ok(reply));
                }
                true
            }
            _ => false,
        }
    }

    fn run(&mut self, job: Job) {
        // A worker that is gone is no error here (`send_job` says Ok): the manager notices its
        // death and fails the job. Anything else (nothing was sent) fails the job now.
        match send_job(&self.channel, job.op, job.key, &job.arg) {
            Ok(()) => self.running = Some(job.slot),
            Err(e) => job.slot.complete(Err(ProcessError::Io(e))),
        }
    }

    /// Fails the running job (if any) because the worker died, reaping it to say how.
    fn bury(self) {
        let status = self
            .process
            .join_timeout(Duration::from_secs(5))
            .ok()
            .flatten();
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
        if let Some(slot) = self.running {
            slot.complete(Err(ProcessError::WorkerDied {
                pid: self.process.pid(),
                how,
            }));
        }
    }
}

/// The manager thread's body.
pub(crate) fn run(shared: Arc<Shared>) {
    let _cleanup = Cleanup(&shared);
    let mut restart_failed = false;
    loop {
        let (fds, wait) = {
            let state = shared.lock();
            if state.terminating || (state.closing && state.is_idle()) {
                return;
            }
            let mut fds = vec![std::os::fd::AsRawFd::as_raw_fd(&shared.wake)];
            for w in &state.workers {
                fds.push(w.channel.raw_fd());
                fds.push(w.process.pidfd_raw().unwrap_or(-1));
            }
            let short = restart_failed
                || state
                    .workers
                    .iter()
                    .any(|w| w.process.pidfd_raw().is_none());
            (fds, short.then_some(Duration::from_millis(50)))
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

/// Reads replies of ready workers and replaces dead ones. `false` if a replacement failed.
fn collect(state: &mut State, fds: &[RawFd], ready: &[bool]) -> bool {
    let mut dead = Vec::new();
    for (i, worker) in state.workers.iter_mut().enumerate() {
        // Pairs of (channel, pidfd) in the order they were listed; match by descriptor, as the
        // list was taken before the lock was dropped (only this thread changes `workers`).
        let Some(pos) = fds.iter().position(|fd| *fd == worker.channel.raw_fd()) else {
            continue;
        };
        let (chan_ready, exited) = (ready[pos], ready.get(pos + 1).copied().unwrap_or(false));
        let exited = exited || (worker.process.pidfd_raw().is_none() && !worker.process.is_alive());
        if chan_ready && !worker.take_reply() {
            // Readable but no reply: end of stream (dead), or a waiter took the reply already.
            if exited || ended(&worker.channel) {
                dead.push(i);
            }
        } else if !chan_ready && exited {
            dead.push(i);
        }
    }
    for i in dead.into_iter().rev() {
        state.workers.swap_remove(i).bury();
    }
    let mut ok = true;
    while state.workers.len() < state.size && !state.closing && !state.terminating {
        match state.start_worker() {
            Ok(worker) => state.workers.push(worker),
            Err(e) => {
                ok = false;
                if state.workers.is_empty() {
                    // Nobody can run the queue: fail it rather than hang its waiters.
                    let msg = e.to_string();
                    for job in state.queue.drain(..) {
                        job.slot.complete(Err(ProcessError::Failed(format!(
                            "no pool worker could be started: {msg}"
                        ))));
                    }
                }
                break;
            }
        }
    }
    ok
}

/// Whether the peer closed the stream (readable with nothing to read).
fn ended(channel: &Channel) -> bool {
    sys::poll_readable(&[channel.raw_fd()], Some(Duration::ZERO)).is_ok_and(|r| r[0])
        && channel.peek_eof()
}

/// On leaving the manager (normally or by panic): stop the workers, fail what is left.
struct Cleanup<'a>(&'a Shared);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closing = true;
        for job in state.queue.drain(..) {
            job.slot.complete(Err(ProcessError::ShutDown));
        }
        let terminating = state.terminating;
        let workers = std::mem::take(&mut state.workers);
        drop(state);
        for worker in &workers {
            if terminating {
                let _ = worker.process.kill();
            } else {
                let _ = send_job(&worker.channel, Op::Exit, "", &Frame::default());
            }
        }
        for worker in workers {
            if let Some(slot) = &worker.running {
                slot.complete(Err(ProcessError::ShutDown));
            }
            if worker
                .process
                .join_timeout(Duration::from_secs(5))
                .ok()
                .flatten()
                .is_none()
            {
                let _ = worker.process.kill();
                let _ = worker.process.join_timeout(Duration::from_secs(5));
            }
        }
    }
}
