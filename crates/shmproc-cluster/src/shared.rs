//! A broker pool's state, shared by the pool's calls and its reply reader: the tasks sent and
//! not finished, the command connection, and the settings.
//!
//! | a task is …            | it ends when                                                    |
//! |------------------------|-----------------------------------------------------------------|
//! | pending (sent)         | its reply arrives; or `cancel` deletes it before any worker has |
//! |                        | it; or the pool stops (`ShutDown`); or the broker stays away    |
//! |                        | past `broker_timeout` or comes back as a new instance (`Broker`) |

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use redis::{Client, Connection, Value};
use shmproc_process::remote::Outcome;
use shmproc_process::ProcessError;

use crate::broker::{self, Keys};
use crate::reader::Replies;

/// What a broker pool is built with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The broker's URL (`redis://[user:password@]host:port/db`).
    pub url: String,
    /// The queue's name (workers serve one queue).
    pub queue: String,
    /// How many tasks the workers run at once (sets `map`'s chunks, `imap`'s tasks in flight).
    pub workers: usize,
    /// How many times a task may be started before it fails with `WorkerDied`.
    pub max_attempts: u32,
    /// Bound of every broker call, and how long waiters wait for a broker that went away.
    pub timeout: Duration,
}

/// A broker pool's state, shared with its reader thread.
pub(crate) struct Shared {
    pub settings: Settings,
    pub client: Client,
    pub keys: Keys,
    /// This pool's reply stream.
    pub results: String,
    /// The connection submits and cancels go through (`None` after a failure: reconnect).
    pub conn: Mutex<Option<Connection>>,
    pub state: Mutex<State>,
    /// A task finished or failed (for `stop`), or the reply stream's reader left (for waiters
    /// that would lead).
    pub changed: Condvar,
    /// Reading the reply stream: whoever holds it reads (see the `lead` module).
    pub replies: Mutex<Replies>,
    /// The reader thread may have something to do (tasks pending and no waiter, or a stop).
    pub reader_wake: Condvar,
}

/// A task sent and not finished.
pub(crate) struct Pending {
    pub outcome: Outcome,
    /// Its stream entry id, once `XADD` returned.
    pub entry: Option<String>,
    /// When it was sent (a restarted broker lost the tasks sent before it went away).
    pub sent: Instant,
}

#[derive(Default)]
pub(crate) struct State {
    pub pending: HashMap<u64, Pending>,
    pub next: u64,
    /// No new tasks.
    pub closing: bool,
    /// The reader should leave.
    pub stopped: bool,
    /// Threads waiting for a task in `wait_reply` (each reads replies when it can).
    pub waiters: usize,
    /// How many times a thread began waiting (the reader thread tells a newcomer by it).
    pub arrivals: u64,
    /// The reader thread sleeps until `reader_wake`.
    pub reader_idle: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the command connection, connecting first if needed; a failure drops the
    /// connection (the next call reconnects) and becomes a `Broker` error.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ProcessError> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let url = || broker::redact(&self.settings.url);
        if slot.is_none() {
            let conn = broker::connect(&self.client, self.settings.timeout, Duration::ZERO)
                .map_err(|e| broker::broker_error(&url(), &e))?;
            *slot = Some(conn);
        }
        let conn = slot.as_mut().expect("connected above");
        f(conn).map_err(|e| {
            *slot = None;
            broker::broker_error(&url(), &e)
        })
    }

    /// Lands the reply to task `task`.
    pub(crate) fn land(&self, task: u64, outcome: Result<Vec<u8>, ProcessError>) {
        let mut state = self.lock();
        if let Some(pending) = state.pending.remove(&task) {
            // Completed under the lock: a waiter checks its outcome under it before it sleeps.
            match outcome {
                Ok(reply) => pending.outcome.reply(reply),
                Err(e) => pending.outcome.fail(e),
            }
            drop(state);
            self.changed.notify_all();
        }
    }

    /// Lets the reader thread read unless a waiter does (call with `state` locked).
    pub(crate) fn wake_reader(&self, state: &State) {
        let wanted = state.waiters == 0 && !state.pending.is_empty();
        if state.reader_idle && (wanted || state.stopped) {
            self.reader_wake.notify_one();
        }
    }

    /// Holds the reply stream if nobody else does.
    pub(crate) fn try_replies(&self) -> Option<MutexGuard<'_, Replies>> {
        match self.replies.try_lock() {
            Ok(replies) => Some(replies),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Fails every pending task sent before `before` with `error()`; returns how many.
    pub(crate) fn fail_sent_before(
        &self,
        before: Instant,
        error: impl Fn() -> ProcessError,
    ) -> usize {
        let mut state = self.lock();
        let ids: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, p)| p.sent < before)
            .map(|(id, _)| *id)
            .collect();
        let drained: Vec<Pending> = ids
            .iter()
            .filter_map(|id| state.pending.remove(id))
            .collect();
        for pending in &drained {
            pending.outcome.fail(error());
        }
        drop(state);
        self.changed.notify_all();
        drained.len()
    }

    /// Whether tasks are waiting for replies.
    pub(crate) fn has_pending(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// Best effort: deletes the entries of tasks that will not be waited for, so queued ones
    /// never run (a worker that has one already runs it; its reply is dropped).
    pub(crate) fn forget(&self, entries: Vec<String>) {
        if entries.is_empty() {
            return;
        }
        let tasks = self.keys.tasks.clone();
        let _ = self.with_conn(|c| {
            redis::cmd("XDEL")
                .arg(&tasks)
                .arg(entries)
                .query::<Value>(c)
        });
    }

    /// Fails every pending task with `ShutDown`, deletes their entries; returns how many.
    pub(crate) fn fail_pending(&self, only_abandoned: bool) -> usize {
        let mut state = self.lock();
        let ids: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, p)| !only_abandoned || p.outcome.is_abandoned())
            .map(|(id, _)| *id)
            .collect();
        let removed: Vec<Pending> = ids
            .iter()
            .filter_map(|id| state.pending.remove(id))
            .collect();
        for pending in &removed {
            pending.outcome.fail(ProcessError::ShutDown);
        }
        drop(state);
        self.changed.notify_all();
        self.forget(removed.iter().filter_map(|p| p.entry.clone()).collect());
        removed.len()
    }
}
