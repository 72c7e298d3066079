//! shmproc's [`Pool`](shmproc_process::Pool) on many hosts (like Ray's
//! `ray.util.multiprocessing.Pool`): tasks go through a Redis stream to workers that are
//! copies of the same program, and results come back to the submitting pool. The pool is the
//! same `Pool` type with the same calls — `map`, `map_chunked`, `imap`, `imap_unordered`,
//! `submit`, `as_completed`, `wait_any`, `Task::cancel`, `wait_timeout` — so switching is one
//! line (plus one `use`):
//!
//! ```no_run
//! use shmproc::cluster::BrokerExt;
//!
//! #[shmproc::entry]
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! // let pool = shmproc::Pool::new(4)?;                  // on this host
//! let pool = shmproc::Pool::builder().broker("redis://10.0.0.5:6379/0").queue("jobs").build()?;
//! assert_eq!(pool.map(square, 0..1000)?.len(), 1000);
//! # Ok::<(), shmproc::ProcessError>(())
//! ```
//!
//! # Workers
//! Any host runs the same binary with `SHMPROC_WORKER` set, and it serves instead of running
//! `main` (no line in `main` needed: a constructor checks the variable before `main`):
//!
//! ```text
//! SHMPROC_WORKER='redis://10.0.0.5:6379/0?queue=jobs&threads=8&visibility_ms=10000' ./app
//! ```
//!
//! `threads` tasks run at once (default: one per CPU), each on a thread of the worker. A
//! worker serves the entries it was built with: a task whose entry key it does not know (the
//! hosts run different builds) fails with an error naming the key. A binary that never builds
//! a broker pool itself (a dedicated worker program) calls [`serve_if_worker`] first in `main`.
//!
//! # Guarantees
//! - **At least once.** A task is acknowledged after its reply is sent. A worker that dies
//!   mid-task (killed, host lost) stops its heartbeat; after the workers' visibility timeout
//!   another worker takes the task over, up to the pool's
//!   [`max_attempts`](BrokerBuilder::max_attempts) starts in all, then the task fails with
//!   [`ProcessError::WorkerDied`](shmproc_process::ProcessError::WorkerDied). So a task may
//!   run more than once (a worker that dies after the task's side effects but before its reply
//!   is sent). Make tasks idempotent: write results under a key derived from the input (`SET
//!   result:<input-hash>`, an upsert, a file renamed into place) rather than appending, or
//!   record a task id with the side effect and skip ids already recorded.
//! - **Nothing hangs.** Every broker call is bounded by the pool's
//!   [`broker_timeout`](BrokerBuilder::broker_timeout); submitting to a broker that is away
//!   fails at once with [`ProcessError::Broker`](shmproc_process::ProcessError::Broker), and
//!   tasks waiting on it fail once it stays away that long (or comes back as a restarted
//!   instance). Calls work again once it is back; workers reconnect by themselves.
//! - **Data, not handles.** Arguments and results travel as bytes: a shared-memory handle in an
//!   argument (a `Value`, `Queue`, …, anonymous or named: a name would mean another segment on
//!   another host) fails at submit with an error saying it cannot leave its host; one in a
//!   result fails that task the same way.
//! - Not applied to broker pools: `queue_bound` (the stream is the queue), initializers and
//!   `max_tasks_per_child` (set up workers in their program). A cancelled task is one no
//!   worker has taken yet; `terminate` fails unfinished tasks but does not stop running ones.
//!
//! docs/CLUSTER.md covers scaling past one broker and the comparison with Ray and Celery.

mod broker;
mod builder;
mod lead;
mod local;
mod pool;
mod reader;
mod serve;
mod shared;
mod worker;

pub use builder::{BrokerBuilder, BrokerExt};
pub use local::LocalRedis;
pub use worker::{Worker, WORKER_ENV};

/// Serves the queue named in `SHMPROC_WORKER` if it is set (never returning), and returns at
/// once otherwise. Only needed first in `main` of a program that builds no broker pool itself
/// (so nothing else keeps the before-`main` check in the binary).
///
/// # Examples
/// ```no_run
/// // First in `main`:
/// shmproc::cluster::serve_if_worker();
/// // … the program's own work …
/// ```
pub fn serve_if_worker() {
    worker::serve_before_main();
}
