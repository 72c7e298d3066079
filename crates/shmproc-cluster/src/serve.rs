//! The serving side: the user's own program, started with `SHMPROC_WORKER` set, serves the
//! queue's tasks with the entries it was built with, `threads` at a time.
//!
//! | step | commands |
//! |---|---|
//! | take a new task | `XREADGROUP GROUP workers <me> COUNT 1 BLOCK … STREAMS tasks >` |
//! | take a task whose worker died | `XPENDING … IDLE <visibility> - + 1`, then `XCLAIM` it (every visibility / 4) |
//! | keep a running task | `XCLAIM … 0 <id> JUSTID` every visibility / 3 (a heartbeat: resets its idle time, not its delivery count) |
//! | finish | with the next read, one pipeline: `XADD <reply stream>`, `PEXPIRE` it, `XACK`, `XDEL`, `XREADGROUP` |
//!
//! A task delivered more times than its `max_attempts` is not run again: its pool gets a
//! worker-died reply instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Client, Connection, Value};
use shmproc_process::remote::{failed_reply, run_entry};
use shmproc_process::ProcessError;

use crate::broker::{self, field, Keys, StreamEntry, GROUP};

/// How long a reply stream outlives its last reply (its pool's reader deletes it on stop).
const REPLY_TTL_MS: u64 = 24 * 3600 * 1000;

/// Pause between attempts to reach a broker that is away.
const RETRY: Duration = Duration::from_millis(500);

/// Running tasks by consumer name, for the heartbeat.
type Running = Mutex<HashMap<String, String>>;

/// Serves `queue` at `url` until the process ends (see `Worker::serve`); returns only if it
/// cannot start.
pub(crate) fn run(url: &str, queue: &str, threads: usize, visibility: Duration) -> ProcessError {
    let client = match Client::open(url) {
        Ok(client) => client,
        Err(e) => {
            let url = broker::redact(url);
            return ProcessError::Broker(format!("bad broker URL {url}: {e}"));
        }
    };
    let me = Arc::new(Served {
        url: url.to_owned(),
        visibility,
        keys: Keys::new(queue),
        client,
        running: Mutex::default(),
    });
    let mut consumers = Vec::new();
    for i in 0..threads {
        let me = Arc::clone(&me);
        let consumer = format!("{}:{}:{i}", crate::broker::hostname(), std::process::id());
        let started = std::thread::Builder::new()
            .name(format!("shmproc-cluster-worker-{i}"))
            .spawn(move || me.consume(&consumer));
        match started {
            Ok(t) => consumers.push(t),
            Err(e) => return ProcessError::Io(e),
        }
    }
    let beat = Arc::clone(&me);
    if let Err(e) = std::thread::Builder::new()
        .name("shmproc-cluster-heartbeat".to_owned())
        .spawn(move || beat.heartbeat())
    {
        return ProcessError::Io(e);
    }
    for t in consumers {
        let _ = t.join();
    }
    ProcessError::Failed("every worker thread ended".to_owned())
}

/// A serving worker's state, shared by its threads.
struct Served {
    /// The broker's URL (for messages).
    url: String,
    /// The visibility timeout.
    visibility: Duration,
    keys: Keys,
    client: Client,
    running: Running,
}

impl Served {
    fn claim_every(&self) -> Duration {
        (self.visibility / 4).max(Duration::from_millis(25))
    }

    /// A connection with the queue's group in place, retrying until the broker answers.
    fn connect(&self, block: Duration) -> Connection {
        let mut complained = false;
        loop {
            let conn = broker::connect(&self.client, Duration::from_secs(5), block)
                .and_then(|mut c| broker::ensure_group(&mut c, &self.keys).map(|()| c));
            match conn {
                Ok(c) => return c,
                Err(e) if !complained => {
                    complained = true;
                    let url = broker::redact(&self.url);
                    eprintln!(
                        "shmproc worker {}: broker {url}: {e}; retrying",
                        std::process::id()
                    );
                }
                Err(_) => {}
            }
            std::thread::sleep(RETRY);
        }
    }

    /// One consumer's loop: new tasks, and now and then one whose worker died.
    fn consume(&self, consumer: &str) {
        let claim_every = self.claim_every();
        let mut next_claim = Instant::now() + claim_every;
        let mut conn: Option<Connection> = None;
        // The last task's reply and acknowledgement, sent with the next read (one round trip).
        let mut finish: Option<redis::Pipeline> = None;
        loop {
            let c = conn.get_or_insert_with(|| self.connect(claim_every));
            let now = Instant::now();
            let step = if now >= next_claim {
                next_claim = now + claim_every;
                match finish.take().map(|f| f.query::<()>(c)) {
                    Some(Err(e)) => Err(e),
                    _ => self.claim(c, consumer),
                }
            } else {
                self.read(c, consumer, next_claim - now, finish.take())
            };
            match step {
                Ok(Some((entry, deliveries, previous))) => {
                    finish = Some(self.handle(consumer, &entry, deliveries, previous.as_deref()));
                }
                Ok(None) => {}
                Err(e) if e.code() == Some("NOGROUP") => {
                    let _ = broker::ensure_group(c, &self.keys);
                }
                Err(_) => conn = None,
            }
        }
    }

    /// A new task, waiting at most `block`, after sending `finish` (one round trip).
    fn read(
        &self,
        c: &mut Connection,
        consumer: &str,
        block: Duration,
        finish: Option<redis::Pipeline>,
    ) -> redis::RedisResult<Option<(StreamEntry, u64, Option<String>)>> {
        let mut pipe = finish.unwrap_or_default();
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.keys.tasks)
            .arg(">");
        let (reply,): (Value,) = pipe.query(c)?;
        Ok(broker::read_entries(reply).pop().map(|e| (e, 1, None)))
    }

    /// A task idle past the visibility timeout (its worker died), with its delivery count
    /// and the consumer that had it.
    fn claim(
        &self,
        c: &mut Connection,
        consumer: &str,
    ) -> redis::RedisResult<Option<(StreamEntry, u64, Option<String>)>> {
        let idle = self.visibility.as_millis() as u64;
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(1)
            .query(c)?;
        let Some((id, previous, _, delivered)) = pending.into_iter().next() else {
            return Ok(None);
        };
        let claimed: Value = redis::cmd("XCLAIM")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(consumer)
            .arg(idle)
            .arg(&id)
            .query(c)?;
        let entry = broker::entries(claimed).pop();
        Ok(entry.map(|e| (e, delivered + 1, Some(previous))))
    }

    /// Runs the task (unless its attempts are used up); returns the commands that send its
    /// reply and acknowledge it.
    fn handle(
        &self,
        consumer: &str,
        entry: &StreamEntry,
        deliveries: u64,
        previous: Option<&str>,
    ) -> redis::Pipeline {
        let fields = (
            entry.text(field::KEY),
            entry.get(field::ARG),
            entry.text(field::REPLY_TO),
            entry.text(field::TASK),
            entry
                .text(field::ATTEMPTS)
                .and_then(|n| n.parse::<u64>().ok()),
        );
        let mut pipe = redis::pipe();
        if let (Some(key), Some(arg), Some(reply_to), Some(task), Some(attempts)) = fields {
            pipe.cmd("XADD")
                .arg(reply_to)
                .arg("*")
                .arg(field::TASK)
                .arg(task);
            if deliveries > attempts {
                let died = previous.unwrap_or("?");
                pipe.arg(field::DIED)
                    .arg(died)
                    .arg(field::ATTEMPTS)
                    .arg(attempts);
            } else {
                let many = entry.get(field::MANY) == Some(b"1");
                let reply = self.run(consumer, &entry.id, key, many, arg.to_vec());
                pipe.arg(field::REPLY).arg(reply);
            }
            pipe.ignore();
            // A pool that is gone leaves its reply stream to expire (a live one's is renewed
            // by every reply, and recreated by the next one if it ever expires).
            pipe.cmd("PEXPIRE").arg(reply_to).arg(REPLY_TTL_MS).ignore();
        }
        // A malformed task (not from a pool) is dropped.
        pipe.cmd("XACK")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(&entry.id)
            .ignore();
        pipe.cmd("XDEL")
            .arg(&self.keys.tasks)
            .arg(&entry.id)
            .ignore();
        pipe
    }

    /// Runs entry `key`, marked running for the heartbeat meanwhile.
    fn run(&self, consumer: &str, id: &str, key: &str, many: bool, arg: Vec<u8>) -> Vec<u8> {
        let running = || self.running.lock().unwrap_or_else(|e| e.into_inner());
        running().insert(consumer.to_owned(), id.to_owned());
        let reply = run_entry(key, many, arg).unwrap_or_else(|why| {
            failed_reply(&format!(
                "worker {consumer} has no entry {key:?} ({why}): the hosts run different builds \
                 of the program; deploy the same build to every worker and submitter"
            ))
        });
        running().remove(consumer);
        reply
    }

    /// Resets the idle time of every running task every third of the visibility timeout, so
    /// a long task is not taken over while its worker lives.
    fn heartbeat(&self) {
        let every = self.visibility / 3;
        let mut conn: Option<Connection> = None;
        loop {
            std::thread::sleep(every);
            let running: Vec<(String, String)> = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(c, id)| (c.clone(), id.clone()))
                .collect();
            if running.is_empty() {
                continue;
            }
            let c = conn.get_or_insert_with(|| self.connect(Duration::ZERO));
            let mut pipe = redis::pipe();
            for (consumer, id) in &running {
                pipe.cmd("XCLAIM")
                    .arg(&self.keys.tasks)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(0)
                    .arg(id)
                    .arg("JUSTID")
                    .ignore();
            }
            if pipe.query::<()>(c).is_err() {
                conn = None;
            }
        }
    }
}
