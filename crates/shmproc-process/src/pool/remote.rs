//! The extension point for pools whose tasks run outside this host's processes, through a
//! broker (`shmproc-cluster`'s Redis pool): the same [`Pool`] and [`Task`] types, so `map`,
//! `imap`, `as_completed`, `wait_any` and `cancel` work unchanged.
//!
//! A backend crate implements [`RemoteBackend`] and builds the pool with [`Pool::remote`].
//! The pool encodes each task's argument as for a local pool and refuses one carrying a
//! shared-memory handle (it travels as a file descriptor, which cannot leave the host); the
//! backend ships `key` and bytes to a worker, which runs them with [`run_entry`], and lands the
//! reply in the task's [`Outcome`]. A thread waiting for a task calls
//! [`RemoteBackend::wait_reply`], so a backend can take the reply on that thread itself.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::config::Stop;
use super::task::{CancelQueued, Runner, Slot, Task, Waited};
use super::{Backend, Call, Pool};
use crate::entry::{find, REPLY_FAILED};
use crate::transport::Frame;
use crate::worker::Op;
use crate::ProcessError;

/// Where a remote pool's tasks go: a broker and the workers behind it.
///
/// Every submitted job's [`Outcome`] must be completed exactly once in the end — with the
/// worker's reply, or with an error (broker gone, pool stopped) — so no waiter hangs.
pub trait RemoteBackend: Send + Sync + 'static {
    /// Sends `job` to the workers.
    ///
    /// # Errors
    /// Why it could not be sent (e.g. [`ProcessError::Broker`]); the job's outcome is then
    /// left alone (the pool drops it).
    fn submit(&self, job: RemoteJob) -> Result<(), ProcessError>;

    /// Takes the job of `outcome` out of the queue if no worker has taken it yet, completing it
    /// with [`ProcessError::Cancelled`]; `false` if a worker has it (or it finished).
    fn cancel(&self, outcome: &Outcome) -> bool;

    /// Stops the pool as `how` says (the table on [`Pool`]; remote workers are not killed,
    /// their tasks' outcomes are failed instead) and returns how many tasks it failed.
    ///
    /// # Errors
    /// As the backend documents.
    fn stop(&self, how: RemoteStop) -> Result<usize, ProcessError>;

    /// A short description for `Debug` (e.g. the broker's address and queue).
    fn describe(&self) -> String;

    /// Called by a thread waiting for `outcome`'s task ([`Task::wait`]): waits at most `nap`
    /// for its reply. A backend that reads the reply on this thread (instead of on a thread of
    /// its own, which then has to wake the waiter) saves a thread hand-off per task. Returning
    /// before the outcome landed is fine: the waiter checks it and calls again. The default
    /// sleeps until the outcome lands or `nap` passed.
    fn wait_reply(&self, outcome: &Outcome, nap: Duration) {
        outcome.0.nap(nap);
    }
}

/// One task for a remote worker.
#[derive(Debug)]
pub struct RemoteJob {
    /// The entry's key ([`Entry::KEY`](crate::Entry::KEY)).
    pub key: &'static str,
    /// `arg` is a batch of arguments (`map`'s chunks) rather than one.
    pub many: bool,
    /// The encoded argument (no file descriptors).
    pub arg: Vec<u8>,
    /// Where the reply lands.
    pub outcome: Outcome,
}

/// How a remote pool stops (the rows of the table on [`Pool`]).
#[derive(Clone, Copy, Debug)]
pub enum RemoteStop {
    /// Let every submitted task finish.
    Wait,
    /// Let tasks finish until the deadline, then fail the rest.
    Until(Instant),
    /// Cancel abandoned tasks (handles dropped), let held ones finish until the deadline.
    Drop(Instant),
    /// Fail every unfinished task now.
    Now,
}

/// Where a remote task's outcome lands: the same slot a local task's does.
#[derive(Clone, Debug)]
pub struct Outcome(Arc<Slot>);

impl Outcome {
    /// Completes the task with a worker's reply, as [`run_entry`] made it. The first outcome
    /// wins; later ones are ignored.
    pub fn reply(&self, reply: Vec<u8>) {
        self.0.complete(Ok(Frame {
            bytes: reply,
            fds: Vec::new(),
        }));
    }

    /// Completes the task with an error (the first outcome wins).
    pub fn fail(&self, error: ProcessError) {
        self.0.complete(Err(error));
    }

    /// Whether the task's handle was dropped before it finished (nobody can receive it).
    pub fn is_abandoned(&self) -> bool {
        self.0.is_abandoned()
    }

    /// Whether the task has its outcome.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// Whether `self` and `other` are the same task's.
    pub fn same(&self, other: &Outcome) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Runs the entry registered under `key` in this binary on `arg` (one argument, or a batch if
/// `many`), catching a panic, and returns the reply for [`Outcome::reply`].
///
/// # Errors
/// The lookup's message if this binary has no entry `key` (or two): the caller explains the
/// version skew in its own words.
pub fn run_entry(key: &str, many: bool, arg: Vec<u8>) -> Result<Vec<u8>, String> {
    let entry = find(key)?;
    let run = if many { entry.run_many } else { entry.run };
    let reply = super::threads::run_job(
        run,
        Frame {
            bytes: arg,
            fds: Vec::new(),
        },
    );
    if !reply.fds.is_empty() {
        return Ok(failed_reply(
            "the result carries an anonymous shared-memory handle, which cannot leave its \
             host; return the data instead",
        ));
    }
    Ok(reply.bytes)
}

/// A reply that fails its task with [`ProcessError::Failed`] carrying `message`.
pub fn failed_reply(message: &str) -> Vec<u8> {
    let mut reply = Vec::with_capacity(1 + message.len());
    reply.push(REPLY_FAILED);
    reply.extend_from_slice(message.as_bytes());
    reply
}

/// A remote backend as the queue `Task::cancel` takes tasks out of, and the [`Runner`] its
/// tasks' waiters take replies through.
pub(super) struct Remote(pub(super) Arc<dyn RemoteBackend>, Arc<dyn Runner>);

/// Where a remote task's waiter waits: the backend's `wait_reply` (weak: a waiting task does
/// not keep a dropped pool's backend alive).
struct Waiter(Weak<dyn RemoteBackend>);

impl Runner for Waiter {
    fn wait_reply(&self, slot: &Arc<Slot>, nap: Duration) -> Waited {
        match self.0.upgrade() {
            Some(backend) => backend.wait_reply(&Outcome(Arc::clone(slot)), nap),
            None => slot.nap(nap),
        }
        // The waiter checks the slot and calls again.
        Waited::Pending
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

impl CancelQueued for Remote {
    fn cancel_queued(&self, slot: &Arc<Slot>) -> bool {
        self.0.cancel(&Outcome(Arc::clone(slot)))
    }
}

impl Remote {
    /// Sends `arg` for `call` (the pool encoded it); refuses descriptors, which cannot travel.
    pub(super) fn submit<R: serde::de::DeserializeOwned>(
        self: &Arc<Self>,
        call: Call,
        arg: Frame,
    ) -> Result<Task<R>, ProcessError> {
        if !arg.fds.is_empty() {
            return Err(ProcessError::Encode(
                "the argument holds an anonymous shared-memory handle (a Value, Array, Queue, \
                 … made by `new`), which cannot leave its host: a broker pool may run the task \
                 on another machine; pass the data itself"
                    .to_owned(),
            ));
        }
        let slot = Arc::new(Slot::off_host());
        self.0.submit(RemoteJob {
            key: call.key,
            many: call.op == Op::CallMany,
            arg: arg.bytes,
            outcome: Outcome(Arc::clone(&slot)),
        })?;
        slot.set_runner(Arc::clone(&self.1));
        let queue: Weak<dyn CancelQueued> = Arc::downgrade(self) as Weak<Remote>;
        Ok(Task::queued_in(slot, queue))
    }

    pub(super) fn stop(&self, how: Stop) -> Result<usize, ProcessError> {
        self.0.stop(match how {
            Stop::Wait => RemoteStop::Wait,
            Stop::Until(d) => RemoteStop::Until(d),
            Stop::Drop(d) => RemoteStop::Drop(d),
            Stop::Now => RemoteStop::Now,
        })
    }
}

impl Pool {
    /// A pool whose tasks `backend` runs elsewhere; `size` is how many tasks the workers behind
    /// it run at once (it sets `map`'s chunk count and `imap`'s tasks in flight). For backend
    /// crates such as `shmproc-cluster`; users build such pools through them.
    pub fn remote(backend: Arc<dyn RemoteBackend>, size: usize) -> Pool {
        Pool {
            backend: Backend::Remote(Arc::new(Remote(
                Arc::clone(&backend),
                Arc::new(Waiter(Arc::downgrade(&backend))),
            ))),
            size: size.max(1),
        }
    }
}
