//! Child processes for shmproc: [`Process::fork`] runs a closure in a forked child, with
//! `join`, `join_timeout`, `terminate` and `kill`, like Python's `multiprocessing.Process`.
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

mod current;
mod process;
mod sys;

pub use current::{cpu_count, current_process, ProcessInfo};
pub use process::{Process, PANIC_EXIT_CODE};
