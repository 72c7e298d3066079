//! A broker pool's reply reader: one thread blocked in `XREAD BLOCK` on the pool's own reply
//! stream, landing each reply in its task. It also watches the broker: away longer than the
//! pool's `broker_timeout`, or back as a new instance (its `run_id` changed: it restarted and
//! may have lost the queue), and every pending task fails with [`ProcessError::Broker`], so no
//! waiter hangs on a task the broker no longer has.

use std::time::{Duration, Instant};

use redis::{Connection, Value};
use shmproc_process::ProcessError;

use crate::broker::{self, field, StreamEntry};
use crate::shared::Shared;

/// Longest `BLOCK` of one read (the reader checks for a stop this often at worst).
pub(crate) const BLOCK: Duration = Duration::from_millis(500);

/// Pause between reconnection attempts.
const RETRY: Duration = Duration::from_millis(100);

/// Most replies taken per read.
const BATCH: usize = 1024;

/// The reader thread's body.
pub(crate) fn run(shared: &Shared) {
    let url = broker::redact(&shared.settings.url);
    let mut conn: Option<Connection> = None;
    let mut run_id: Option<String> = None;
    let mut last = "0-0".to_owned();
    // Replies read since the stream was last trimmed.
    let mut untrimmed = 0;
    // When the broker was first found away (`None` while it answers).
    let mut lost_at: Option<Instant> = None;
    while !shared.stopped() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(shared, &mut run_id) {
                Ok((c, restarted)) => {
                    if let (true, Some(lost_at)) = (restarted, lost_at) {
                        // Tasks sent to the old instance are gone with it.
                        shared.fail_sent_before(lost_at, || {
                            ProcessError::Broker(format!(
                                "{url} restarted while the task was pending and may have lost \
                                 it; it may or may not have run: resubmit it if that is safe"
                            ))
                        });
                    }
                    lost_at = None;
                    conn.insert(c)
                }
                Err(e) => {
                    went_away(shared, &url, &e.to_string(), &mut lost_at);
                    std::thread::sleep(RETRY);
                    continue;
                }
            },
        };
        // Trim in batches (or when quiet): one more command per reply would slow round trips.
        let trim = untrimmed >= BATCH || (untrimmed > 0 && !shared.has_pending());
        match read(shared, c, &last, trim) {
            Ok(entries) => {
                untrimmed = if trim { 0 } else { untrimmed };
                untrimmed += entries.len();
                for entry in entries {
                    land(shared, &entry);
                    last = entry.id;
                }
            }
            Err(e) => {
                conn = None;
                went_away(shared, &url, &e.to_string(), &mut lost_at);
            }
        }
    }
    // Best effort: the reply stream is this pool's alone.
    if let Some(c) = conn.as_mut() {
        let _ = redis::cmd("DEL").arg(&shared.results).query::<Value>(c);
    }
}

/// Connects and reads the broker's `run_id`; `true` if it differs from the one seen before.
fn connect(shared: &Shared, run_id: &mut Option<String>) -> redis::RedisResult<(Connection, bool)> {
    let mut c = broker::connect(&shared.client, shared.settings.timeout, BLOCK)?;
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

/// Notes that the broker failed; once it has been away for the broker timeout, fails every
/// task sent before that.
fn went_away(shared: &Shared, url: &str, why: &str, lost_at: &mut Option<Instant>) {
    let since = *lost_at.get_or_insert_with(Instant::now);
    let timeout = shared.settings.timeout;
    if since.elapsed() >= timeout {
        shared.fail_sent_before(Instant::now(), || {
            ProcessError::Broker(format!(
                "{url} unreachable for {timeout:?} while the task was pending ({why}); it may \
                 or may not have run: resubmit it if that is safe"
            ))
        });
    }
}

/// Trims what was read (one round trip with the read) and waits for more replies.
fn read(
    shared: &Shared,
    c: &mut Connection,
    last: &str,
    trim: bool,
) -> redis::RedisResult<Vec<StreamEntry>> {
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
        .arg(BLOCK.as_millis() as u64)
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
