//! Child processes for shmproc: [`Process::fork`] runs a closure in a forked child,
//! [`Process::spawn`] runs a registered entry in a fresh copy of the program and returns its
//! result, and [`Pool`] runs many tasks on a few worker processes — like Python's
//! `multiprocessing.Process` and `Pool`. [`Process::builder`] names a child or makes it a
//! daemon; [`active_children`] and [`parent_process`] tell a process about its family.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use shmproc_process::Process;
//!
//! let p = Process::fork(|| std::thread::sleep(Duration::from_secs(30)))?;
//! assert!(p.is_alive());
//! assert!(p.join_timeout(Duration::from_millis(10))?.is_none()); // still running
//! p.kill()?;
//! assert!(!p.join()?.success());
//! # Ok::<(), std::io::Error>(())
//! ```

mod builder;
mod children;
mod current;
mod entry;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod owner_ends;
mod owner_watch;
mod pool;
mod process;
mod spawn;
mod sys;
mod transport;
mod worker;

pub use builder::ProcessBuilder;
pub use children::active_children;
pub use current::{cpu_count, current_process, parent_process, ProcessInfo};
pub use entry::Entry;
pub use error::ProcessError;
pub use pool::remote;
pub use pool::{
    as_completed, as_completed_timeout, wait_any, AsCompleted, Imap, ImapUnordered, Pool,
    PoolBuilder, Task, WorkerKind,
};
pub use process::{Process, PANIC_EXIT_CODE};

/// What `#[shmproc::entry]` expands to refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{Registered, ENTRIES};
    /// The marker a re-executed child looks for (benchmarks use it for a baseline).
    pub use crate::worker::SPAWN_ENV;
    pub use linkme;
}
