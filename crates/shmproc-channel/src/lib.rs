//! Process-shared [`Queue`] (with [`JoinableQueue`] and [`SimpleQueue`]) and [`Pipe`] over
//! shared-memory rings — Python's `multiprocessing.Queue`, `JoinableQueue`, `SimpleQueue` and
//! `Pipe` for Rust.
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

// Layers, bottom-up. A module uses only modules of its own layer or below (`use crate::...`);
// nothing reaches back up, so the crate reads top-down like crossbeam-channel.
//
// 0. `deadline` (how long an operation may wait) and `test_hooks` (fault injection): no imports.
// 1. Rings and waiting: `error` (`Stop`, the internal ending, and the public errors), `watch`
//    (a pipe end's sleepers, for the process's watcher in `shmproc_shm::watcher`), `wait`
//    (spin, nap or watched futex sleep until an event), `ring` (a shared ring of records:
//    robust locks, indices, copies), each using only those before it. Membership, `end` (who
//    holds a pipe end, its hand-over slots, leaving, peer death), sits on top of them.
// 2. Small shared pieces: `layout` (capacities, segment creation, wait policies), `scratch`
//    (the stack area and per-thread buffer messages are built in, and `Landing`) and
//    `handover` (the pipe-end hand-overs begun on this thread, revoked when a send fails).
// 3. Messages and records: `codec` (postcard encoding and decoding) and `record` (whole
//    records in and out of a ring under its locks: the queue's hot path).
// 4. Pipe ends: `link` (one end's send and receive, streaming long messages), `parts` (a pipe
//    segment and its rings, made into links) and `transfer` (pipe ends as serde values).
// 5. The public types: `queue` (`Queue`), on it `joinable` (`JoinableQueue`) and `simple`
//    (`SimpleQueue`), and `pipe` (`Pipe`, `Connection`, `Sender`, `Receiver`).

mod deadline;
#[doc(hidden)]
pub mod test_hooks;

mod error;
mod ring;
mod wait;
mod watch;

mod end;
mod end_state;

mod handover;
mod layout;
mod scratch;

mod codec;
mod record;

mod link;
mod parts;
mod transfer;

mod joinable;
mod pipe;
mod queue;
mod simple;

// Fuzz targets over the public types (not a public API; see `crates/shmproc-fuzz`).
#[doc(hidden)]
pub mod fuzzing;

pub use error::{RecvError, SendError, TaskError};
pub use joinable::JoinableQueue;
pub use pipe::{Connection, Pipe, Receiver, Sender};
pub use queue::Queue;
pub use simple::SimpleQueue;
