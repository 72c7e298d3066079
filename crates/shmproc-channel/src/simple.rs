//! `SimpleQueue<T>`: the few calls of Python's `multiprocessing.SimpleQueue` over a [`Queue`].

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmproc_shm::SegmentError;

use crate::error::{RecvError, SendError};
use crate::queue::Queue;

/// Python's `multiprocessing.SimpleQueue`: [`put`](SimpleQueue::put),
/// [`get`](SimpleQueue::get), [`is_empty`](SimpleQueue::is_empty) and
/// [`close`](SimpleQueue::close), nothing else. It is a [`Queue`] underneath (same ring, same
/// guarantees, same errors; a handle travels to spawned processes the same way), with the
/// `_timeout` forms every blocking call has here; [`as_queue`](SimpleQueue::as_queue) reaches
/// the rest.
///
/// Unlike Python's `SimpleQueue.close`, which makes the object unusable, `close` here is
/// [`Queue::close`]: this process puts no more; gets still work.
///
/// # Examples
/// ```
/// use shmproc_channel::SimpleQueue;
/// use shmproc_process::Process;
///
/// let sq: SimpleQueue<String> = SimpleQueue::new()?;
/// let tx = sq.clone();
/// let child = Process::fork(move || tx.put(&"hello".to_string()).unwrap())?;
/// assert_eq!(sq.get()?, "hello");
/// assert!(sq.is_empty());
/// assert!(child.join()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T>(Queue<T>);

impl<T> SimpleQueue<T> {
    /// A queue with [`Queue::DEFAULT_CAPACITY`] bytes of ring in an anonymous segment, shared
    /// with children forked afterwards.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<Self, SegmentError> {
        Queue::new().map(SimpleQueue)
    }

    /// A queue whose ring holds `bytes` bytes (see [`Queue::with_capacity`]).
    ///
    /// # Errors
    /// As [`Queue::with_capacity`].
    pub fn with_capacity(bytes: usize) -> Result<Self, SegmentError> {
        Queue::with_capacity(bytes).map(SimpleQueue)
    }

    /// Whether the queue holds no message right now ([`Queue::is_empty`]; Python's `empty`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This process puts no more ([`Queue::close`]).
    pub fn close(&self) {
        self.0.close();
    }

    /// The full [`Queue`] API on the same queue.
    pub fn as_queue(&self) -> &Queue<T> {
        &self.0
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Appends `msg`, blocking while the queue is full ([`Queue::put`]).
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, msg: &T) -> Result<(), SendError> {
        self.0.put(msg)
    }

    /// Like [`put`](SimpleQueue::put), failing with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_timeout(&self, msg: &T, timeout: Duration) -> Result<(), SendError> {
        self.0.put_timeout(msg, timeout)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Takes the oldest message, blocking while the queue is empty ([`Queue::get`]).
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T, RecvError> {
        self.0.get()
    }

    /// Like [`get`](SimpleQueue::get), failing with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.0.get_timeout(timeout)
    }
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.0).finish()
    }
}

/// Travels exactly as a [`Queue`] (the two are interchangeable on the wire).
impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Queue::deserialize(deserializer).map(SimpleQueue)
    }
}
