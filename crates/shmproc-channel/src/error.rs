//! Errors of sending (`put`, `send`) and receiving (`get`, `recv`).
//!
//! Sends borrow their message (`put(&msg)`, `send_bytes(&[u8])`), so whatever the error, the
//! caller still holds the message and nothing partial of it was delivered.

use std::{fmt, io};

use shmproc_shm::SegmentError;

use crate::deadline::Deadline;

/// Why a `put`/`send` (or a `try_`/`_timeout` form) did not deliver the message. The message
/// was borrowed, so it is still the caller's; nothing of it reached a receiver (except for
/// [`SendError::Broken`] after a pipe send timed out mid-way, see there).
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// A `try_` call found no room for the whole message right now.
    Full,
    /// A `_timeout` call ran out of time.
    Timeout,
    /// The queue was shut down ([`Queue::shutdown`](crate::Queue::shutdown), in any process),
    /// a full queue was left by every other process, or the pipe's other end was dropped by
    /// every holder: nobody will ever take the message.
    Disconnected,
    /// This process closed the queue ([`Queue::close`](crate::Queue::close), on this handle or
    /// a clone): it puts no more. Other processes are unaffected and still put and get; this
    /// one still gets. Python raises `ValueError("Queue is closed")` here.
    Closed,
    /// Every process holding the pipe's other end died.
    PeerDied {
        /// One of the dead processes.
        pid: u32,
    },
    /// The encoded message is longer than the queue can ever hold; nothing was written.
    TooLarge {
        /// Bytes needed (encoded message + 8-byte header).
        len: usize,
        /// The most one message may take in this queue.
        max: usize,
    },
    /// The message could not be encoded with postcard.
    Encode(postcard::Error),
    /// This direction of the pipe is unusable: a message was left half written or half read
    /// (a sender timed out or died in the middle of a message larger than the free space).
    Broken,
    /// The shared ring holds values no correct peer writes (memory corruption or a hostile
    /// process); the operation was refused without touching memory out of bounds.
    Corrupt(String),
    /// A futex call failed.
    Io(io::Error),
}

/// Why a `get`/`recv` (or a `try_`/`_timeout` form) returned no message.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// A `try_` call found no message.
    Empty,
    /// A `_timeout` call ran out of time.
    Timeout,
    /// Everything was drained and the queue was shut down
    /// ([`Queue::shutdown`](crate::Queue::shutdown), Python's `ShutDown`), or an empty queue was
    /// left by every other process, or the pipe's other end was dropped by every holder. (A
    /// queue's [`close`](crate::Queue::close) never causes it: it only stops puts.)
    Disconnected,
    /// Everything was drained and every process holding the pipe's other end died.
    PeerDied {
        /// One of the dead processes.
        pid: u32,
    },
    /// The message could not be decoded as the expected type (it was consumed).
    Decode(postcard::Error),
    /// This direction of the pipe is unusable (see [`SendError::Broken`]).
    Broken,
    /// The shared ring holds values no correct peer writes; nothing out of bounds was touched.
    Corrupt(String),
    /// A futex call failed.
    Io(io::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str("no room for the message right now: retry or block"),
            SendError::Timeout => f.write_str("timed out waiting for room for the message"),
            SendError::Disconnected => f.write_str(
                "the channel is shut down or disconnected: no receiver will ever take the message",
            ),
            SendError::Closed => f.write_str(
                "this process closed the queue (close()) and may put no more; other processes \
                 still can (shutdown() ends the queue for everyone)",
            ),
            SendError::PeerDied { pid } => write!(
                f,
                "the process at the other end (pid {pid}) died: nobody will receive the message"
            ),
            SendError::TooLarge { len, max } => write!(
                f,
                "the message needs {len} bytes but the queue holds at most {max}: make the \
                 queue larger (with_capacity) or use a Pipe, which streams any size"
            ),
            SendError::Encode(e) => write!(f, "could not encode the message: {e}"),
            SendError::Broken => f.write_str(
                "this pipe direction is broken: a message was left half sent; make a new pipe",
            ),
            SendError::Corrupt(why) => write!(f, "the shared ring is corrupt ({why})"),
            SendError::Io(e) => write!(f, "waiting failed: {e}"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Empty => f.write_str("no message right now: retry or block"),
            RecvError::Timeout => f.write_str("timed out waiting for a message"),
            RecvError::Disconnected => f.write_str(
                "the channel is shut down or disconnected, and drained: no message will come",
            ),
            RecvError::PeerDied { pid } => write!(
                f,
                "the process at the other end (pid {pid}) died: no message will come"
            ),
            RecvError::Decode(e) => write!(
                f,
                "could not decode the message (was it sent as another type?): {e}"
            ),
            RecvError::Broken => f.write_str(
                "this pipe direction is broken: a message was left half sent; make a new pipe",
            ),
            RecvError::Corrupt(why) => write!(f, "the shared ring is corrupt ({why})"),
            RecvError::Io(e) => write!(f, "waiting failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(e) => Some(e),
            SendError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Decode(e) => Some(e),
            RecvError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a ring operation stopped, before it is turned into the public error of its family.
#[derive(Debug)]
pub(crate) enum Stop {
    WouldBlock,
    Timeout,
    /// Shut down, or left by every other process.
    Closed,
    /// This process closed the queue for its puts (`Queue::close`).
    ClosedHere,
    PeerDied(u32),
    Broken,
    TooLarge {
        len: usize,
        max: usize,
    },
    Corrupt(String),
    Io(io::Error),
}

impl From<shmproc_shm::RosterFull> for Stop {
    fn from(full: shmproc_shm::RosterFull) -> Stop {
        Stop::Io(io::Error::other(full))
    }
}

impl Stop {
    /// What running out of time means for `deadline`: would-block for `try_`, else a timeout.
    pub fn expired(deadline: Deadline) -> Stop {
        match deadline {
            Deadline::Now => Stop::WouldBlock,
            Deadline::Never | Deadline::At(_) => Stop::Timeout,
        }
    }
}

impl From<SegmentError> for Stop {
    fn from(e: SegmentError) -> Stop {
        Stop::Corrupt(e.to_string())
    }
}

impl From<Stop> for SendError {
    fn from(s: Stop) -> SendError {
        match s {
            Stop::WouldBlock => SendError::Full,
            Stop::Timeout => SendError::Timeout,
            Stop::Closed => SendError::Disconnected,
            Stop::ClosedHere => SendError::Closed,
            Stop::PeerDied(pid) => SendError::PeerDied { pid },
            Stop::Broken => SendError::Broken,
            Stop::TooLarge { len, max } => SendError::TooLarge { len, max },
            Stop::Corrupt(why) => SendError::Corrupt(why),
            Stop::Io(e) => SendError::Io(e),
        }
    }
}

impl From<Stop> for RecvError {
    fn from(s: Stop) -> RecvError {
        match s {
            Stop::WouldBlock => RecvError::Empty,
            Stop::Timeout => RecvError::Timeout,
            // A get never stops for `ClosedHere` (close only ends this process's puts).
            Stop::Closed | Stop::ClosedHere => RecvError::Disconnected,
            Stop::PeerDied(pid) => RecvError::PeerDied { pid },
            Stop::Broken => RecvError::Broken,
            Stop::TooLarge { len, max } => {
                RecvError::Corrupt(format!("record of {len} bytes in a ring of {max}"))
            }
            Stop::Corrupt(why) => RecvError::Corrupt(why),
            Stop::Io(e) => RecvError::Io(e),
        }
    }
}

impl From<postcard::Error> for SendError {
    fn from(e: postcard::Error) -> SendError {
        SendError::Encode(e)
    }
}

impl From<postcard::Error> for RecvError {
    fn from(e: postcard::Error) -> RecvError {
        RecvError::Decode(e)
    }
}

/// Why [`JoinableQueue::task_done`](crate::JoinableQueue::task_done) or
/// [`join`](crate::JoinableQueue::join) (or `join_timeout`) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError {
    /// `task_done` was called more times than items were put (Python's `ValueError`); the
    /// count is unchanged.
    TooManyDone,
    /// `join_timeout` ran out of time: some task is still unfinished (perhaps taken by a
    /// process that died before marking it done, see [`TaskError::PeerDied`]).
    Timeout,
    /// Some tasks can never be marked done: the queue is empty, every other process that held
    /// it is gone, one of them (`pid`) died without leaving, and more tasks are unfinished than
    /// this process has taken. A dead process took them with it.
    PeerDied {
        /// One of the dead processes.
        pid: u32,
    },
    /// A futex call failed.
    Io(io::Error),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::TooManyDone => f.write_str(
                "task_done() called more times than items were put: call it once per item got",
            ),
            TaskError::Timeout => f.write_str("timed out waiting for every task to be done"),
            TaskError::PeerDied { pid } => write!(
                f,
                "a process holding the queue (pid {pid}) died, and some tasks taken by other \
                 processes will never be marked done"
            ),
            TaskError::Io(e) => write!(f, "waiting failed: {e}"),
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Stop> for TaskError {
    fn from(s: Stop) -> TaskError {
        match s {
            Stop::WouldBlock | Stop::Timeout => TaskError::Timeout,
            Stop::PeerDied(pid) => TaskError::PeerDied { pid },
            Stop::Io(e) => TaskError::Io(e),
            // Not produced by a join's wait.
            other => TaskError::Io(io::Error::other(format!("{other:?}"))),
        }
    }
}
