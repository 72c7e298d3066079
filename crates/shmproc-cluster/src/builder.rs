//! `Pool::builder().broker(url)`: the one-line switch from a local pool to a broker pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shmproc_process::{Pool, PoolBuilder, ProcessError};

use crate::pool::BrokerPool;
use crate::shared::Settings;

/// Adds [`broker`](BrokerExt::broker) to [`Pool::builder`] (bring it into scope with
/// `use shmproc::cluster::BrokerExt;`).
///
/// An extension trait, not a method of `PoolBuilder` itself: the core crate stays free of
/// network dependencies, and the switch costs one `use` line.
pub trait BrokerExt {
    /// Sends the pool's tasks through the Redis broker at `url` (`redis://host:6379/0`) to
    /// workers started with `SHMPROC_WORKER` (see [`Worker`](crate::Worker)). The worker
    /// count set so far becomes the pool's size.
    fn broker(self, url: &str) -> BrokerBuilder;
}

impl BrokerExt for PoolBuilder {
    fn broker(self, url: &str) -> BrokerBuilder {
        BrokerBuilder {
            settings: Settings {
                url: url.to_owned(),
                queue: "shmproc".to_owned(),
                workers: self.worker_count(),
                max_attempts: 3,
                timeout: Duration::from_secs(5),
            },
        }
    }
}

/// Settings of a broker pool, from [`BrokerExt::broker`].
///
/// # Examples
/// ```no_run
/// use shmproc::cluster::BrokerExt;
///
/// #[shmproc::entry]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// // Was: let pool = shmproc::Pool::new(4)?;
/// let pool = shmproc::Pool::builder().broker("redis://127.0.0.1:6379/0").queue("jobs").build()?;
/// assert_eq!(pool.map(square, 0..5)?, [0, 1, 4, 9, 16]);
/// # Ok::<(), shmproc::ProcessError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct BrokerBuilder {
    settings: Settings,
}

impl BrokerBuilder {
    /// The queue's name (default `shmproc`): workers serve the queue named when they start.
    pub fn queue(mut self, queue: &str) -> BrokerBuilder {
        self.settings.queue = queue.to_owned();
        self
    }

    /// How many tasks the workers run at once in all (default: the builder's
    /// [`workers`](PoolBuilder::workers)): `map` splits its input into
    /// [`CHUNKS_PER_WORKER`](Pool::CHUNKS_PER_WORKER) chunks per worker, `imap` keeps two per
    /// worker in flight.
    pub fn workers(mut self, workers: usize) -> BrokerBuilder {
        self.settings.workers = workers.max(1);
        self
    }

    /// How many times a task may be started (default 3, at least 1). A worker that dies
    /// mid-task (its heartbeat stops for the workers' visibility timeout) leaves the task to
    /// another worker; once `attempts` starts all died, the task fails with
    /// [`ProcessError::WorkerDied`]. Tasks run at least once, maybe more: see the crate docs
    /// on making them idempotent.
    pub fn max_attempts(mut self, attempts: u32) -> BrokerBuilder {
        self.settings.max_attempts = attempts.max(1);
        self
    }

    /// Bound of every call to the broker (default 5 s): connecting, sending a task, cancelling.
    /// It is also how long a task waits for a broker that went away before it fails with
    /// [`ProcessError::Broker`].
    pub fn broker_timeout(mut self, timeout: Duration) -> BrokerBuilder {
        self.settings.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Connects to the broker, creates the queue if needed, and returns the pool.
    ///
    /// # Errors
    /// [`ProcessError::Broker`] if the URL is malformed or the broker cannot be reached;
    /// [`ProcessError::Io`] if the reply-reader thread cannot start.
    pub fn build(self) -> Result<Pool, ProcessError> {
        crate::worker::keep_dispatch();
        let workers = self.settings.workers;
        let backend = BrokerPool::start(self.settings, pool_name())?;
        Ok(Pool::remote(Arc::new(backend), workers))
    }
}

/// A name for a pool's reply stream, unique across hosts and restarts.
fn pool_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}:{}:{}:{nanos:x}",
        crate::broker::hostname(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
