//! `JoinableQueue<T>`: a [`Queue`] that counts unfinished tasks across processes (Python's
//! `multiprocessing.JoinableQueue`).
//!
//! # Shared state
//! The segment is a queue's with one control block ([`TaskCtl`]) between the membership state
//! and the ring. Unfinished tasks are not a counter of their own: they are the ring's count of
//! completed puts (kept by every put under the producer lock, before the record is published)
//! minus `done`. So a put needs no extra work, a put through the plain [`Queue`] this derefs
//! to counts too, and no consumer can take an item before it is counted. `task_done` raises
//! `done` with a compare-and-swap that refuses to pass the put count; the call that finishes the
//! last task wakes the joiners.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmproc_shm::{AtomicShareable, SegmentError, SharedRef};

use crate::error::{Stop, TaskError};
use crate::layout;
use crate::queue::Queue;
use crate::transfer;
use crate::wait::{self, Deadline, Waiters};

/// How often a waiting `join` wakes to check for tasks a dead process took with it.
const JOIN_NAP: Duration = Duration::from_millis(100);

/// The task count of a joinable queue (in its segment, before the ring).
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct TaskCtl {
    /// Tasks marked done; never more than the ring's put count.
    done: AtomicU64,
    /// `join` callers asleep (their own cache line).
    joiners: Waiters,
}

// SAFETY: only atomics in repr(C) cache-line structs; all zeroes is "no task done, nobody
// waiting", and every other bit pattern is a count that is checked, never an index.
unsafe impl AtomicShareable for TaskCtl {}

/// Bytes the task count takes in the segment (a multiple of 64, as the ring requires).
const TASKS: usize = std::mem::size_of::<TaskCtl>();

/// The message type a joinable queue of `T` records in its segment: not `T`'s, so a plain
/// `Queue<T>` cannot open it (its ring would be misplaced) and vice versa.
struct Joinable<T>(PhantomData<T>);

/// A [`Queue`] whose consumers report each item as done, so a producer can wait until every
/// item put has been processed — in any process (Python's `multiprocessing.JoinableQueue`).
///
/// It derefs to [`Queue<T>`], so every queue call (`put`, `get`, `try_get`, `close`,
/// `shutdown`, `len`, …) works on it unchanged. Each put (through any handle of the queue,
/// including a `Queue` reached through `Deref`) adds an unfinished task; each
/// [`task_done`](JoinableQueue::task_done), in any process, finishes one;
/// [`join`](JoinableQueue::join) waits until none is left.
///
/// # When a consumer dies
/// A consumer that dies after `get` but before `task_done` leaves its task unfinished. `join`
/// reports it ([`TaskError::PeerDied`]) only once nobody else can finish it: the queue is
/// empty, every other process that held it is gone, and this process holds fewer taken,
/// unfinished tasks than are unfinished. Otherwise `join` waits, so use
/// [`join_timeout`](JoinableQueue::join_timeout) when consumers may be killed.
///
/// | who | how they leave | what a joiner sees |
/// |---|---|---|
/// | a consumer marks every item it got done | — | `join` returns once the last `task_done` lands |
/// | a consumer dies (SIGKILL) after `get`, before `task_done` | dies | `join` fails with [`TaskError::PeerDied`] once the queue is empty and every other holder is gone; while another process still holds the queue, `join` waits: use `join_timeout` |
/// | a consumer leaves (drop, exit) without `task_done` | leaves | `join` waits (as Python): use `join_timeout` |
/// | a producer dies between counting its put and publishing it (a few instructions under its lock) | dies | that task can never be done: `join` waits, `join_timeout` bounds it |
///
/// # Examples
/// ```
/// use shmproc_channel::JoinableQueue;
/// use shmproc_process::Process;
///
/// let jq: JoinableQueue<u64> = JoinableQueue::new()?;
/// let worker = jq.clone();
/// let child = Process::fork(move || {
///     while let Ok(n) = worker.get() {
///         let _ = n * n; // the work
///         worker.task_done().unwrap();
///     }
/// })?;
/// for n in 0..10 {
///     jq.put(&n)?;
/// }
/// jq.join()?; // every item put has been marked done
/// assert_eq!(jq.unfinished_tasks(), 0);
/// jq.shutdown(); // ends the worker's loop
/// assert!(child.join()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
    tasks: SharedRef<TaskCtl>,
}

impl<T> JoinableQueue<T> {
    /// A joinable queue with [`Queue::DEFAULT_CAPACITY`] bytes of ring in an anonymous segment,
    /// shared with children forked afterwards.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<Self, SegmentError> {
        Self::with_capacity(Queue::<T>::DEFAULT_CAPACITY)
    }

    /// A joinable queue whose ring holds `bytes` bytes (see [`Queue::with_capacity`]).
    ///
    /// # Errors
    /// As [`Queue::with_capacity`].
    pub fn with_capacity(bytes: usize) -> Result<Self, SegmentError> {
        Self::wrap(Queue::make_as(None, bytes, Self::elem(), TASKS)?)
    }

    /// A new named joinable queue that other processes can [`open`](JoinableQueue::open).
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str) -> Result<Self, SegmentError> {
        Self::create_with_capacity(name, Queue::<T>::DEFAULT_CAPACITY)
    }

    /// Like [`create`](JoinableQueue::create) with a ring of `bytes` bytes.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create_with_capacity(name: &str, bytes: usize) -> Result<Self, SegmentError> {
        Self::wrap(Queue::make_as(Some(name), bytes, Self::elem(), TASKS)?)
    }

    /// Opens a named joinable queue of this `T` (a plain `Queue` of the name is refused, as a
    /// mismatched message type).
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Self::wrap(Queue::open_as(name, Self::elem(), TASKS)?)
    }

    fn elem() -> shmproc_shm::TypeInfo {
        layout::message_type::<Joinable<T>>()
    }

    fn wrap(queue: Queue<T>) -> Result<Self, SegmentError> {
        let tasks = SharedRef::new(
            std::sync::Arc::clone(queue.ring().segment()),
            Queue::<T>::EXTRA_AT,
        )?;
        Ok(JoinableQueue { queue, tasks })
    }

    /// Marks one item taken from the queue as processed (Python's `task_done`), in whichever
    /// process got it. Once every item put has been marked done, [`join`](Self::join) returns.
    ///
    /// # Errors
    /// [`TaskError::TooManyDone`] when called more times than items were put (nothing changes).
    ///
    /// # Examples
    /// ```
    /// use shmproc_channel::{JoinableQueue, TaskError};
    ///
    /// let jq: JoinableQueue<String> = JoinableQueue::new()?;
    /// jq.put(&"job".to_string())?;
    /// assert_eq!(jq.get()?, "job");
    /// jq.task_done()?;
    /// assert!(matches!(jq.task_done(), Err(TaskError::TooManyDone)));
    /// jq.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn task_done(&self) -> Result<(), TaskError> {
        let done = &self.tasks.done;
        let mut seen = done.load(Ordering::Acquire);
        let puts = loop {
            let puts = self.puts();
            if seen >= puts {
                return Err(TaskError::TooManyDone);
            }
            match done.compare_exchange_weak(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break puts,
                Err(now) => seen = now,
            }
        };
        self.queue.member().note_done();
        // Only the call that finishes the last task wakes joiners: puts only grow, so the one
        // that brings `done` up to the final put count saw that count before its swap.
        if seen + 1 == puts {
            wait::wake(&self.tasks.joiners);
        }
        Ok(())
    }

    /// Blocks until every item put (in any process) has been marked done with
    /// [`task_done`](Self::task_done) (Python's `join`). Returns at once when none is
    /// unfinished. Items put meanwhile are waited for too.
    ///
    /// # Errors
    /// [`TaskError::PeerDied`] when a dead process took tasks nobody can finish any more (see
    /// [`JoinableQueue`]); [`TaskError::Io`].
    pub fn join(&self) -> Result<(), TaskError> {
        self.join_until(None)
    }

    /// Like [`join`](Self::join), failing with [`TaskError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `join`, plus `Timeout`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmproc_channel::{JoinableQueue, TaskError};
    ///
    /// let jq: JoinableQueue<u8> = JoinableQueue::new()?;
    /// jq.put(&1)?; // never marked done
    /// let waited = jq.join_timeout(Duration::from_millis(10));
    /// assert!(matches!(waited, Err(TaskError::Timeout)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TaskError> {
        self.join_until(Instant::now().checked_add(timeout))
    }

    /// Items put and not yet marked done (a snapshot): Python's internal unfinished count.
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished() as usize
    }

    fn puts(&self) -> u64 {
        self.queue.ring().ctl().put.count.load(Ordering::Acquire)
    }

    fn unfinished(&self) -> u64 {
        self.puts()
            .saturating_sub(self.tasks.done.load(Ordering::Acquire))
    }

    /// Waits until no task is unfinished or `until` (`None`: no limit). It always sleeps in
    /// timed naps: after each it looks for tasks lost with a dead process.
    fn join_until(&self, until: Option<Instant>) -> Result<(), TaskError> {
        let ready = || Ok(self.unfinished() == 0);
        if self.unfinished() == 0 {
            return Ok(());
        }
        // No limit: a deadline far enough away (~136 years) to be none, so sleeps stay naps.
        let far = || Instant::now().checked_add(Duration::from_secs(u64::from(u32::MAX)));
        let deadline = until.or_else(far).map_or(Deadline::Never, Deadline::At);
        let policy = layout::policy(0, 0, JOIN_NAP);
        let progress = &self.tasks.done;
        let lost = || {
            self.lost_tasks()
                .map_or(Ok(()), |pid| Err(Stop::PeerDied(pid)))
        };
        Ok(wait::wait(
            &self.tasks.joiners,
            progress,
            policy,
            deadline,
            None,
            ready,
            lost,
        )?)
    }

    /// A dead process that took tasks nobody can finish: the queue is empty (nothing left for
    /// anyone to take), more tasks are unfinished than this process holds, and every other
    /// process that held the queue is gone, `pid` dead without leaving.
    fn lost_tasks(&self) -> Option<u32> {
        let member = self.queue.member();
        if !self.queue.is_empty() || self.unfinished() <= member.tasks_in_hand() {
            return None;
        }
        match member.gone() {
            Some(Stop::PeerDied(pid)) => Some(pid),
            _ => None,
        }
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished_tasks", &self.unfinished_tasks())
            .finish()
    }
}

/// Travels like a [`Queue`] (an argument or result of a spawned entry or Pool task, or a
/// message); the receiver checks it is a joinable queue of `T`.
impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let received = transfer::deserialize_queue::<Joinable<T>, D>(deserializer)?;
        let queue = Queue::received(received, TASKS).map_err(serde::de::Error::custom)?;
        Self::wrap(queue).map_err(serde::de::Error::custom)
    }
}
