//! The submitting side: a [`RemoteBackend`] that adds tasks to the queue's stream and lands
//! replies from the pool's own reply stream, read by one thread with `XREAD BLOCK` (no
//! polling).
//!
//! | a task is …            | it ends when                                                    |
//! |------------------------|-----------------------------------------------------------------|
//! | pending (sent)         | its reply arrives; or `cancel` deletes it before any worker has |
//! |                        | it; or the pool stops (`ShutDown`); or the broker stays away    |
//! |                        | past `broker_timeout` or comes back as a new instance (`Broker`) |

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Client, Connection, Value};
use shmproc_process::remote::{Outcome, RemoteBackend, RemoteJob, RemoteStop};
use shmproc_process::ProcessError;

use crate::broker::{self, field, Keys, GROUP};
use crate::builder::Settings;
use crate::reader;

/// Longest sleep of a stopping pool between checks (a handle dropped meanwhile).
const STOP_NAP: Duration = Duration::from_millis(50);

/// Deletes task `ARGV[2]` from stream `KEYS[1]` only if group `ARGV[1]` has not delivered it
/// yet (its id is past the group's last-delivered id): atomically, so a worker either never
/// sees the task or the cancel fails.
const CANCEL_SCRIPT: &str = r"
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  if name == ARGV[1] then last = delivered end
end
local lm, ls = string.match(last, '(%d+)-(%d+)')
local im, is = string.match(ARGV[2], '(%d+)-(%d+)')
lm, ls, im, is = tonumber(lm), tonumber(ls), tonumber(im), tonumber(is)
if im > lm or (im == lm and is > ls) then
  return redis.call('XDEL', KEYS[1], ARGV[2])
end
return 0
";

/// A broker pool's state, shared with its reader thread.
pub(crate) struct Shared {
    pub settings: Settings,
    pub client: Client,
    pub keys: Keys,
    /// This pool's reply stream.
    pub results: String,
    /// The connection submits and cancels go through (`None` after a failure: reconnect).
    conn: Mutex<Option<Connection>>,
    state: Mutex<State>,
    /// A task finished or failed (for `stop`).
    changed: Condvar,
}

/// A task sent and not finished.
struct Pending {
    outcome: Outcome,
    /// Its stream entry id, once `XADD` returned.
    entry: Option<String>,
    /// When it was sent (a restarted broker lost the tasks sent before it went away).
    sent: Instant,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    next: u64,
    /// No new tasks.
    closing: bool,
    /// The reader should leave.
    stopped: bool,
}

/// The [`RemoteBackend`] of a broker pool.
pub(crate) struct BrokerPool {
    shared: Arc<Shared>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl BrokerPool {
    /// Connects, creates the queue's group if needed and starts the reply reader.
    pub(crate) fn start(settings: Settings, pool_name: String) -> Result<BrokerPool, ProcessError> {
        let url = broker::redact(&settings.url);
        let client = Client::open(settings.url.as_str())
            .map_err(|e| ProcessError::Broker(format!("bad broker URL {url}: {e}")))?;
        let keys = Keys::new(&settings.queue);
        let mut conn = broker::connect(&client, settings.timeout, Duration::ZERO)
            .map_err(|e| broker::broker_error(&url, &e))?;
        broker::ensure_group(&mut conn, &keys).map_err(|e| broker::broker_error(&url, &e))?;
        let shared = Arc::new(Shared {
            results: keys.results(&pool_name),
            settings,
            client,
            keys,
            conn: Mutex::new(Some(conn)),
            state: Mutex::default(),
            changed: Condvar::new(),
        });
        let for_reader = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("shmproc-cluster-replies".to_owned())
            .spawn(move || reader::run(&for_reader))?;
        Ok(BrokerPool {
            shared,
            reader: Mutex::new(Some(reader)),
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the command connection, connecting first if needed; a failure drops the
    /// connection (the next call reconnects) and becomes a `Broker` error.
    fn with_conn<T>(
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

    /// Lands the reply to task `task` (from the reader thread).
    pub(crate) fn land(&self, task: u64, outcome: Result<Vec<u8>, ProcessError>) {
        let pending = self.lock().pending.remove(&task);
        if let Some(pending) = pending {
            match outcome {
                Ok(reply) => pending.outcome.reply(reply),
                Err(e) => pending.outcome.fail(e),
            }
            self.changed.notify_all();
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
        drop(state);
        for pending in &drained {
            pending.outcome.fail(error());
        }
        self.changed.notify_all();
        drained.len()
    }

    /// Whether the reader should leave.
    pub(crate) fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Whether tasks are waiting for replies.
    pub(crate) fn has_pending(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// Best effort: deletes the entries of tasks that will not be waited for, so queued ones
    /// never run (a worker that has one already runs it; its reply is dropped).
    fn forget(&self, entries: Vec<String>) {
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
    fn fail_pending(&self, only_abandoned: bool) -> usize {
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
        drop(state);
        for pending in &removed {
            pending.outcome.fail(ProcessError::ShutDown);
        }
        self.forget(removed.iter().filter_map(|p| p.entry.clone()).collect());
        removed.len()
    }
}

impl RemoteBackend for BrokerPool {
    fn submit(&self, job: RemoteJob) -> Result<(), ProcessError> {
        let shared = &self.shared;
        let task = {
            let mut state = shared.lock();
            if state.closing {
                return Err(ProcessError::ShutDown);
            }
            state.next += 1;
            let task = state.next;
            // In before the message goes out: the reply may come back before `XADD` returns.
            let pending = Pending {
                outcome: job.outcome,
                entry: None,
                sent: Instant::now(),
            };
            state.pending.insert(task, pending);
            task
        };
        let sent = shared.with_conn(|c| {
            redis::cmd("XADD")
                .arg(&shared.keys.tasks)
                .arg("*")
                .arg(field::KEY)
                .arg(job.key)
                .arg(field::MANY)
                .arg(u8::from(job.many))
                .arg(field::ARG)
                .arg(&job.arg)
                .arg(field::REPLY_TO)
                .arg(&shared.results)
                .arg(field::TASK)
                .arg(task)
                .arg(field::ATTEMPTS)
                .arg(shared.settings.max_attempts)
                .query::<String>(c)
        });
        let mut state = shared.lock();
        match sent {
            Ok(entry) => {
                if let Some(pending) = state.pending.get_mut(&task) {
                    pending.entry = Some(entry);
                }
                Ok(())
            }
            Err(e) => {
                state.pending.remove(&task);
                Err(e)
            }
        }
    }

    fn cancel(&self, outcome: &Outcome) -> bool {
        let shared = &self.shared;
        let found = shared
            .lock()
            .pending
            .iter()
            .find(|(_, p)| p.outcome.same(outcome))
            .and_then(|(id, p)| Some((*id, p.entry.clone()?)));
        let Some((task, entry)) = found else {
            return false;
        };
        let deleted = shared.with_conn(|c| {
            redis::Script::new(CANCEL_SCRIPT)
                .key(&shared.keys.tasks)
                .arg(GROUP)
                .arg(&entry)
                .invoke::<i64>(c)
        });
        if deleted.unwrap_or(0) != 1 {
            return false;
        }
        shared.land(task, Err(ProcessError::Cancelled));
        true
    }

    fn stop(&self, how: RemoteStop) -> Result<usize, ProcessError> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.stopped {
            return Ok(0);
        }
        state.closing = true;
        drop(state);
        let deadline = match how {
            RemoteStop::Now => None,
            RemoteStop::Wait => Some(None),
            RemoteStop::Until(d) => Some(Some(d)),
            RemoteStop::Drop(d) => {
                shared.fail_pending(true);
                Some(Some(d))
            }
        };
        let drop_abandoned = matches!(how, RemoteStop::Drop(_));
        let mut failed = 0;
        if let Some(deadline) = deadline {
            loop {
                if drop_abandoned {
                    shared.fail_pending(true);
                }
                let state = shared.lock();
                if state.pending.is_empty() {
                    break;
                }
                let mut nap = STOP_NAP;
                if let Some(deadline) = deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    nap = nap.min(left);
                }
                drop(shared.changed.wait_timeout(state, nap));
            }
        }
        failed += shared.fail_pending(false);
        shared.lock().stopped = true;
        self.stop_reader();
        Ok(failed)
    }

    fn describe(&self) -> String {
        let s = &self.shared.settings;
        format!("broker {} queue {}", broker::redact(&s.url), s.queue)
    }
}

impl BrokerPool {
    /// Wakes the reader (a marker on its stream) and waits for it to leave; it removes the
    /// reply stream on its way out.
    fn stop_reader(&self) {
        let shared = &self.shared;
        let _ = shared.with_conn(|c| {
            redis::cmd("XADD")
                .arg(&shared.results)
                .arg("*")
                .arg(field::STOP)
                .arg(1)
                .query::<Value>(c)
        });
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(reader) = reader {
            let _ = reader.join();
        }
    }
}

impl Drop for BrokerPool {
    fn drop(&mut self) {
        let _ = self.stop(RemoteStop::Now);
    }
}
