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

/// The environment variable that makes a program a worker before its `main` runs:
/// `SHMPROC_WORKER=redis://host:6379/0?queue=jobs&threads=4&visibility_ms=10000`.
pub const WORKER_ENV: &str = "SHMPROC_WORKER";

/// How long a reply stream outlives its last reply (its pool's reader deletes it on stop).
const REPLY_TTL_MS: u64 = 24 * 3600 * 1000;

/// Pause between attempts to reach a broker that is away.
const RETRY: Duration = Duration::from_millis(500);

/// A worker serving one queue: what `SHMPROC_WORKER` starts, also usable from code.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
///
/// // The same as SHMPROC_WORKER='redis://127.0.0.1:6379/0?queue=jobs&threads=4' ./app
/// let worker = shmproc::cluster::Worker::new("redis://127.0.0.1:6379/0")
///     .queue("jobs")
///     .threads(4)
///     .visibility_timeout(Duration::from_secs(10));
/// let error = worker.serve(); // serves until the process ends; returns only on a bad URL
/// # let _ = error;
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    url: String,
    queue: String,
    threads: usize,
    visibility: Duration,
}

/// Running tasks by consumer name, for the heartbeat.
type Running = Mutex<HashMap<String, String>>;

impl Worker {
    /// A worker for the broker at `url`, queue `shmproc`, one thread per CPU, a 10 s
    /// visibility timeout.
    pub fn new(url: &str) -> Worker {
        Worker {
            url: url.to_owned(),
            queue: "shmproc".to_owned(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            visibility: Duration::from_secs(10),
        }
    }

    /// The queue to serve (the pool's [`queue`](crate::BrokerBuilder::queue)).
    pub fn queue(mut self, queue: &str) -> Worker {
        self.queue = queue.to_owned();
        self
    }

    /// Tasks run at once, each on its own thread with its own connection (at least one).
    pub fn threads(mut self, threads: usize) -> Worker {
        self.threads = threads.max(1);
        self
    }

    /// How long a task's worker may stay silent before another worker takes the task over.
    /// Running tasks send a heartbeat every third of it, so it bounds how soon a dead worker's
    /// task runs again, not how long a task may take. Use the same value on every worker.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Worker {
        self.visibility = timeout.max(Duration::from_millis(100));
        self
    }

    /// Parses a `SHMPROC_WORKER` value: the broker URL, with `queue`, `threads` and
    /// `visibility_ms` as query parameters (other parameters stay in the URL).
    ///
    /// # Errors
    /// A message naming a parameter that does not parse.
    pub fn from_env_value(value: &str) -> Result<Worker, String> {
        let (url, query) = value.split_once('?').unwrap_or((value, ""));
        let mut worker = Worker::new(url);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                v.parse::<u64>()
                    .map_err(|_| format!("{WORKER_ENV}: {name}={v:?} is not a number"))
            };
            worker = match name {
                "queue" => worker.queue(v),
                "threads" => worker.threads(number()? as usize),
                "visibility_ms" => worker.visibility_timeout(Duration::from_millis(number()?)),
                _ => {
                    rest.push(pair);
                    worker
                }
            };
        }
        if !rest.is_empty() {
            worker.url = format!("{url}?{}", rest.join("&"));
        }
        Ok(worker)
    }

    /// This worker as a `SHMPROC_WORKER` value ([`from_env_value`](Worker::from_env_value)
    /// parses it back).
    pub fn to_env_value(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}queue={}&threads={}&visibility_ms={}",
            self.url,
            self.queue,
            self.threads,
            self.visibility.as_millis()
        )
    }

    /// Starts a copy of this program as this worker on this host (stdout and stderr
    /// discarded): for tests, benchmarks and local runs. Kill the child to stop it.
    ///
    /// # Errors
    /// If the program's path cannot be found or the process cannot start.
    pub fn spawn_local(&self) -> std::io::Result<std::process::Child> {
        std::process::Command::new(std::env::current_exe()?)
            .env(WORKER_ENV, self.to_env_value())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    }

    /// Serves the queue until the process ends: `threads` consumers and a heartbeat thread.
    /// A broker that goes away is retried every half second (one line on stderr), and the
    /// queue is created again if a restarted broker lost it.
    ///
    /// # Errors
    /// Returns only if it cannot start: [`ProcessError::Broker`] for a malformed URL,
    /// [`ProcessError::Io`] if a thread cannot be started.
    pub fn serve(self) -> ProcessError {
        let client = match Client::open(self.url.as_str()) {
            Ok(client) => client,
            Err(e) => {
                let url = broker::redact(&self.url);
                return ProcessError::Broker(format!("bad broker URL {url}: {e}"));
            }
        };
        let me = Arc::new(Served {
            keys: Keys::new(&self.queue),
            client,
            running: Mutex::default(),
            worker: self,
        });
        let mut threads = Vec::new();
        for i in 0..me.worker.threads {
            let me = Arc::clone(&me);
            let consumer = format!("{}:{}:{i}", hostname(), std::process::id());
            let started = std::thread::Builder::new()
                .name(format!("shmproc-cluster-worker-{i}"))
                .spawn(move || me.consume(&consumer));
            match started {
                Ok(t) => threads.push(t),
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
        for t in threads {
            let _ = t.join();
        }
        ProcessError::Failed("every worker thread ended".to_owned())
    }
}

/// A serving worker's state, shared by its threads.
struct Served {
    worker: Worker,
    keys: Keys,
    client: Client,
    running: Running,
}

impl Served {
    fn claim_every(&self) -> Duration {
        (self.worker.visibility / 4).max(Duration::from_millis(25))
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
                    let url = broker::redact(&self.worker.url);
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
        let idle = self.worker.visibility.as_millis() as u64;
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
        let every = self.worker.visibility / 3;
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

/// This host's name (for consumer and pool names), or `localhost`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Runs before `main`: with `SHMPROC_WORKER` set, this process serves the queue instead of
/// running `main` (the test harness, in a test binary); otherwise it returns at once.
pub(crate) extern "C" fn serve_before_main() {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    // Not inherited by processes the tasks start.
    std::env::remove_var(WORKER_ENV);
    let error = match Worker::from_env_value(&value.to_string_lossy()) {
        Ok(worker) => worker.serve().to_string(),
        Err(e) => e,
    };
    eprintln!("shmproc worker {}: {error}; exiting", std::process::id());
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static DISPATCH: extern "C" fn() = serve_before_main;

#[cfg(not(target_os = "linux"))]
static DISPATCH: extern "C" fn() = serve_before_main;

/// Referenced from every broker pool so the linker keeps [`DISPATCH`] in the program.
pub(crate) fn keep_dispatch() {
    std::hint::black_box(&DISPATCH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_value_round_trips_and_keeps_other_parameters() {
        let w = Worker::from_env_value("redis://h:1/0?queue=jobs&threads=3&visibility_ms=1500")
            .unwrap();
        assert_eq!((w.queue.as_str(), w.threads), ("jobs", 3));
        assert_eq!(w.visibility, Duration::from_millis(1500));
        assert_eq!(w.url, "redis://h:1/0");
        let again = Worker::from_env_value(&w.to_env_value()).unwrap();
        assert_eq!(again.to_env_value(), w.to_env_value());
        let other = Worker::from_env_value("redis://h:1/0?protocol=resp3&queue=q").unwrap();
        assert_eq!(other.url, "redis://h:1/0?protocol=resp3");
        let bad = Worker::from_env_value("redis://h:1/0?threads=many").unwrap_err();
        assert!(bad.contains("threads"), "{bad}");
    }
}
