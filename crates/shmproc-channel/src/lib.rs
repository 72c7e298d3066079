//! Process-shared [`Queue`] and [`Pipe`] over shared-memory rings — Python's
//! `multiprocessing.Queue` and `multiprocessing.Pipe` for Rust.
//!
//! Both are built on one ring of length-prefixed records in a shared segment: a robust lock per
//! side (so a process killed mid-operation never wedges the others), indices on separate cache
//! lines, and futex sleeps that the other side pays for only when someone actually sleeps.
//! Typed messages go through serde and postcard; `*_bytes` methods skip serde.
//!
//! Queues and pipe ends are serde values themselves: arguments and results of
//! `Process::spawn` entries and `Pool` tasks (anonymous ones as file descriptors), or — named
//! ones — messages to any process. A received pipe end is tracked like a created one (see
//! [`Pipe`], "Passing ends to other processes").
//!
//! # Examples
//! ```
//! use shmproc_channel::{Pipe, Queue};
//! use shmproc_process::Process;
//!
//! let q: Queue<u64> = Queue::new()?;
//! let (tx, rx) = Pipe::<String>::simplex()?;
//! let (q2, tx2) = (q.clone(), tx.clone());
//! let child = Process::fork(move || {
//!     for n in [2_u64, 3, 5] {
//!         q2.put(&(n * n)).unwrap();
//!     }
//!     tx2.send(&"done".to_string()).unwrap();
//! })?;
//! drop(tx);
//! assert_eq!(rx.recv()?, "done");
//! assert_eq!([q.get()?, q.get()?, q.get()?], [4, 9, 25]);
//! assert!(child.join()?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod deadline;
mod end;
mod error;
mod layout;
mod link;
mod pipe;
mod queue;
mod record;
mod ring;
#[doc(hidden)]
pub mod test_hooks;
mod transfer;
mod wait;
mod watch;

pub use error::{RecvError, SendError};
pub use pipe::{Connection, Pipe, Receiver, Sender};
pub use queue::Queue;
