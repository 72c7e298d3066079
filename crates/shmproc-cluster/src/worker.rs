//! `Worker`: what `SHMPROC_WORKER` starts before `main` (or code starts), and its settings;
//! the serving loop is in the `serve` module.

use std::time::Duration;

use shmproc_process::ProcessError;

/// The environment variable that makes a program a worker before its `main` runs:
/// `SHMPROC_WORKER=redis://host:6379/0?queue=jobs&threads=4&visibility_ms=10000`.
pub const WORKER_ENV: &str = "SHMPROC_WORKER";

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
        crate::serve::run(&self.url, &self.queue, self.threads, self.visibility)
    }
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
