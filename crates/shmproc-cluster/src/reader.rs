//! Reading a broker pool's own reply stream with `XREAD BLOCK` (no polling) and landing each
//! reply in its task: [`Replies`], held by whoever reads (the `lead` module decides who). It
//! also watches the broker: away longer than the pool's `broker_timeout`, or back as a new
//! instance (its `run_id` changed: it restarted and may have lost the queue), and every
//! pending task fails with [`ProcessError::Broker`], so no waiter hangs on a task the broker
//! no longer has.

use std::time::{Duration, Instant};

use redis::{Client, Connection, Value};
use shmproc_process::ProcessError;

use crate::broker::{self, field, StreamEntry};
use crate::shared::{Settings, Shared};

/// Longest `BLOCK` of one read (the reader checks for a stop this often at worst).
pub(crate) const BLOCK: Duration = Duration::from_millis(500);

/// Pause between reconnection attempts.
const RETRY: Duration = Duration::from_millis(100);

/// Most replies taken per read.
const BATCH: usize = 1024;

/// Where reading the reply stream stands; one reader at a time holds it.
pub(crate) struct Replies {
    url: String,
    conn: Option<Connection>,
    /// The broker instance seen last.
    run_id: Option<String>,
    /// The id of the last reply read.
    last: String,
    /// Replies read since the stream was last trimmed.
    untrimmed: usize,
    /// When the broker was first found away (`None` while it answers).
    lost_at: Option<Instant>,
}

impl Replies {
    /// Connects (so a restart of the broker is told from its first outage on).
    pub(crate) fn connect(client: &Client, settings: &Settings) -> redis::RedisResult<Replies> {
        let mut replies = Replies {
            url: broker::redact(&settings.url),
            conn: None,
            run_id: None,
            last: "0-0".to_owned(),
            untrimmed: 0,
            lost_at: None,
        };
        let (c, _) = connect(client, settings.timeout, &mut replies.run_id)?;
        replies.conn = Some(c);
        Ok(replies)
    }

    /// Waits at most `block` for replies and lands them (reconnecting first if needed); notes
    /// a failure, and fails the pending tasks once the broker is away for its timeout or back
    /// as a new instance.
    pub(crate) fn read_once(&mut self, shared: &Shared, block: Duration) {
        let c = match self.conn.as_mut() {
            Some(c) => c,
            None => match connect(&shared.client, shared.settings.timeout, &mut self.run_id) {
                Ok((c, restarted)) => {
                    if let (true, Some(lost_at)) = (restarted, self.lost_at) {
                        // Tasks sent to the old instance are gone with it.
                        let url = &self.url;
                        shared.fail_sent_before(lost_at, || {
                            ProcessError::Broker(format!(
                                "{url} restarted while the task was pending and may have lost \
                                 it; it may or may not have run: resubmit it if that is safe"
                            ))
                        });
                    }
                    self.lost_at = None;
                    self.conn.insert(c)
                }
                Err(e) => {
                    self.went_away(shared, &e.to_string());
                    std::thread::sleep(RETRY.min(block));
                    return;
                }
            },
        };
        // Trim in batches (or when quiet): one more command per reply would slow round trips.
        let trim = self.untrimmed >= BATCH || (self.untrimmed > 0 && !shared.has_pending());
        match read(shared, c, &self.last, trim, block) {
            Ok(entries) => {
                if trim {
                    self.untrimmed = 0;
                }
                self.untrimmed += entries.len();
                for entry in entries {
                    land(shared, &entry);
                    self.last = entry.id;
                }
            }
            Err(e) => {
                self.conn = None;
                self.went_away(shared, &e.to_string());
            }
        }
    }

    /// Best effort, when the pool stops: the reply stream is this pool's alone.
    pub(crate) fn delete_stream(&mut self, shared: &Shared) {
        if let Some(c) = self.conn.as_mut() {
            let _ = redis::cmd("DEL").arg(&shared.results).query::<Value>(c);
        }
    }

    /// Notes that the broker failed; once it has been away for the broker timeout, fails
    /// every task sent before that.
    fn went_away(&mut self, shared: &Shared, why: &str) {
        let since = *self.lost_at.get_or_insert_with(Instant::now);
        let timeout = shared.settings.timeout;
        if since.elapsed() >= timeout {
            let url = &self.url;
            shared.fail_sent_before(Instant::now(), || {
                ProcessError::Broker(format!(
                    "{url} unreachable for {timeout:?} while the task was pending ({why}); it \
                     may or may not have run: resubmit it if that is safe"
                ))
            });
        }
    }
}

/// Connects and reads the broker's `run_id`; `true` if it differs from the one seen before.
fn connect(
    client: &Client,
    timeout: Duration,
    run_id: &mut Option<String>,
) -> redis::RedisResult<(Connection, bool)> {
    let mut c = broker::connect(client, timeout, BLOCK)?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut c)?;
    let now = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned());
    let restarted = run_id.is_some() && now.is_some() && *run_id != now;
    if now.is_some() {
        *run_id = now;
    }
    Ok((c, restarted))
}

/// Trims what was read (one round trip with the read) and waits at most `block` (rounded up
/// to a millisecond, at most [`BLOCK`]) for more replies.
fn read(
    shared: &Shared,
    c: &mut Connection,
    last: &str,
    trim: bool,
    block: Duration,
) -> redis::RedisResult<Vec<StreamEntry>> {
    // `BLOCK 0` would wait forever.
    let block_ms = block.min(BLOCK).as_micros().div_ceil(1000).max(1) as u64;
    let mut pipe = redis::pipe();
    if trim {
        pipe.cmd("XTRIM")
            .arg(&shared.results)
            .arg("MINID")
            .arg(last)
            .ignore();
    }
    pipe.cmd("XREAD")
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(&shared.results)
        .arg(last);
    let (reply,): (Value,) = pipe.query(c)?;
    Ok(broker::read_entries(reply))
}

/// Lands one reply in its task.
fn land(shared: &Shared, entry: &StreamEntry) {
    let Some(task) = entry.text(field::TASK).and_then(|t| t.parse().ok()) else {
        return; // the stop marker, or not ours
    };
    let outcome = match (entry.get(field::REPLY), entry.text(field::DIED)) {
        (Some(reply), _) => Ok(reply.to_vec()),
        (None, Some(died)) => Err(worker_died(died, entry.text(field::ATTEMPTS))),
        (None, None) => Err(ProcessError::Decode(
            "malformed reply from a worker".to_owned(),
        )),
    };
    shared.land(task, outcome);
}

/// The error of a task whose every attempt's worker died; `consumer` is the last one's name
/// (`host:pid:thread`).
fn worker_died(consumer: &str, attempts: Option<&str>) -> ProcessError {
    let pid = consumer
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    ProcessError::WorkerDied {
        pid,
        how: format!(
            "broker worker {consumer} stopped answering mid-task, and so did the workers of \
             every earlier attempt: {} attempt(s), the pool's max_attempts, used up",
            attempts.unwrap_or("?")
        ),
    }
}
