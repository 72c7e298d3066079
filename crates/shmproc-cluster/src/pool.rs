//! The submitting side: a [`RemoteBackend`] that adds tasks to the queue's stream and lands
//! replies from the pool's own reply stream, read with `XREAD BLOCK` (no polling) by the
//! threads waiting for tasks or else by the pool's reader thread (the `lead` module). The
//! tasks' lifecycle is in the `shared` module.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Client, Value};
use shmproc_process::remote::{Outcome, RemoteBackend, RemoteJob, RemoteStop};
use shmproc_process::ProcessError;

use crate::broker::{self, field, Keys, GROUP};
use crate::lead;
use crate::reader::Replies;
use crate::shared::{Pending, Settings, Shared};

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
        let replies =
            Replies::connect(&client, &settings).map_err(|e| broker::broker_error(&url, &e))?;
        let shared = Arc::new(Shared {
            results: keys.results(&pool_name),
            settings,
            client,
            keys,
            conn: Mutex::new(Some(conn)),
            state: Mutex::default(),
            changed: Condvar::new(),
            replies: Mutex::new(replies),
            reader_wake: Condvar::new(),
        });
        let for_reader = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("shmproc-cluster-replies".to_owned())
            .spawn(move || lead::run_reader(&for_reader))?;
        Ok(BrokerPool {
            shared,
            reader: Mutex::new(Some(reader)),
        })
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
                shared.wake_reader(&state);
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
        let mut state = shared.lock();
        state.stopped = true;
        shared.wake_reader(&state);
        drop(state);
        self.stop_reader();
        Ok(failed)
    }

    fn describe(&self) -> String {
        let s = &self.shared.settings;
        format!("broker {} queue {}", broker::redact(&s.url), s.queue)
    }

    fn wait_reply(&self, outcome: &Outcome, nap: Duration) {
        lead::wait_reply(&self.shared, outcome, nap);
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
