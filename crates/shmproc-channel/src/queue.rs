//! `Queue<T>`: a multi-producer, multi-consumer FIFO of whole records in one shared ring.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use shmproc_shm::{Kind, Segment, SegmentError, SharedRef, TypeInfo};

use crate::end::{EndLocal, EndState, Hold};
#[cfg(doc)] // named by the docs only
use crate::error::{RecvError, SendError};
use crate::layout::{self, SPIN_BUDGET};
use crate::record;
use crate::ring::{self, Deadline, Ring, WaitPolicy, HEADER};
use crate::transfer;

/// Pause between polls of a waiting queue side: long enough that a fast consumer lets a few
/// records pile up and takes them without touching the producers' index line each time.
const QUEUE_PAUSE: u32 = 64;
/// Longest sleep of a timed queue operation between re-checks of who still holds the queue.
const QUEUE_NAP: Duration = Duration::from_millis(100);
/// Bytes of the membership state (who holds the queue) at the start of a queue segment.
const MEMBERS: usize = std::mem::size_of::<EndState>();

/// A process-shared FIFO queue of `T` (Python's `multiprocessing.Queue`), any number of
/// producers and consumers in any processes. Messages are encoded with postcard into a ring of
/// fixed capacity; `put` blocks while it is full, `get` while it is empty.
///
/// # Examples
/// ```
/// use shmproc_channel::Queue;
/// use shmproc_process::Process;
///
/// let q: Queue<u64> = Queue::new()?;
/// let producer = q.clone();
/// let child = Process::fork(move || {
///     for n in [2_u64, 3, 5] {
///         producer.put(&(n * n)).unwrap();
///     }
/// })?;
/// let squares: Vec<u64> = (0..3).map(|_| q.get()).collect::<Result<_, _>>()?;
/// assert_eq!(squares, [4, 9, 25]);
/// assert!(child.join()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Endings and failures
/// - [`close`](Queue::close) is per process (Python's `Queue.close`): later puts from this
///   process fail with [`SendError::Closed`]; other processes put and get as before.
/// - [`shutdown`](Queue::shutdown) is global (like `queue.Queue.shutdown`, Python 3.13): puts
///   everywhere fail with [`SendError::Disconnected`]; consumers drain what is left, then get
///   [`RecvError::Disconnected`]; blocked calls in every process wake up.
/// - **Left by everyone else.** A queue tracks the processes that hold a handle (created,
///   opened, received, or inherited through `fork`; up to
///   [`ROSTER_SLOTS`](shmproc_shm::ROSTER_SLOTS) live ones). A process *leaves* when its last
///   handle drops, when it returns from a `Process::fork` closure or a spawned entry, or on
///   `exit`. Once some other process has held the queue and every other one has left, a `get`
///   on the empty queue returns [`RecvError::Disconnected`] (a full queue's `put`:
///   [`SendError::Disconnected`]) instead of waiting forever — or
///   [`RecvError::PeerDied`] if one of them died without leaving (SIGKILL). Noticed within
///   about 10 ms for blocking calls, 100 ms for `_timeout` ones. A queue used by one process
///   alone never ends this way (a named queue may be opened later).
/// - A message that can never fit ([`max_message_len`](Queue::max_message_len)) is refused at
///   once with [`SendError::TooLarge`]; nothing is written.
/// - Producers serialise on a robust lock and publish a record only once it is complete, so a
///   producer killed mid-`put` leaves nothing visible: every `put` that returned `Ok` is
///   delivered, in order, and no torn record ever is.
/// - Consumers serialise on another robust lock and free a record only after copying it. A
///   consumer killed mid-`get` before that point loses nothing (the next consumer gets the
///   record); killed after it but before `get` returned, it takes that one record with it.
/// - While another process still holds the queue, a `get` on the empty queue waits even if
///   that process will never put again (use `get_timeout`, or `shutdown`).
/// - Every index and length read from the ring is checked; a corrupt ring yields
///   [`RecvError::Corrupt`] / [`SendError::Corrupt`], never an access out of bounds.
///
/// # Differences from Python
/// - **`len` is a count.** [`len`](Queue::len) is puts minus gets, from two counters kept
///   under the producer and consumer locks: exact at the instant it reads them (a put or get
///   finishing meanwhile may change it). Python's `qsize()` is approximate (and unimplemented
///   on macOS). [`is_empty`](Queue::is_empty) is a snapshot too, but exact at that instant:
///   there is no feeder thread, so a `put` that returned `Ok` is visible to every process at
///   once, where Python's `empty()` can still say `True` after `put` returned.
/// - **Capacity is in bytes, not items.** [`with_capacity(bytes)`](Queue::with_capacity)
///   sizes the ring (rounded up to a power of two); each message takes its postcard encoding
///   plus 8 bytes. Python's `Queue(maxsize)` counts items and is unbounded by default; this
///   queue always has a bound ([`Queue::DEFAULT_CAPACITY`]) and `put` blocks while it is full.
/// - **A message too large is refused at once.** A message longer than the queue can ever
///   hold ([`max_message_len`](Queue::max_message_len)) fails with [`SendError::TooLarge`]
///   without waiting and without writing anything; `put` only borrows the message, so the
///   caller still has it (use a bigger queue, or a [`Pipe`](crate::Pipe), which streams any
///   size). Python pickles it into a pipe of unlimited length.
/// - **`close` and `shutdown`.** `close` only stops this process's puts, like Python's; there
///   is no feeder thread, hence nothing like `join_thread` / `cancel_join_thread`.
///   `multiprocessing.Queue` has no `shutdown`; this one is `queue.Queue.shutdown(immediate=
///   False)` of Python 3.13 across processes: what is queued is still delivered.
/// - **Ending instead of hanging.** A `get` on a queue every other process has left returns
///   [`RecvError::Disconnected`] (or [`RecvError::PeerDied`]) where Python blocks forever.
/// - Python's `put(block=False)` / `get(timeout=…)` are [`try_put`](Queue::try_put) /
///   [`get_timeout`](Queue::get_timeout); `Full`/`Empty` exceptions are [`SendError::Full`] /
///   [`RecvError::Empty`].
pub struct Queue<T> {
    ring: Ring,
    /// This process's membership of the queue (shared by clones).
    me: Arc<EndLocal>,
    policy: WaitPolicy,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> Queue<T> {
    /// Ring bytes of [`Queue::new`] (1 MiB).
    pub const DEFAULT_CAPACITY: usize = 1 << 20;

    /// A queue with the default capacity in an anonymous segment, shared with children forked
    /// afterwards.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new() -> Result<Self, SegmentError> {
        Queue::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A queue whose ring holds `bytes` bytes (rounded up to a power of two, at least 64). Each
    /// message takes its encoded length plus 8.
    ///
    /// # Errors
    /// As [`Queue::new`]; `InvalidInput` above 1 TiB.
    pub fn with_capacity(bytes: usize) -> Result<Self, SegmentError> {
        Queue::make(None, bytes)
    }

    /// A new named queue (default capacity) that other processes can [`open`](Queue::open).
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str) -> Result<Self, SegmentError> {
        Queue::make(Some(name), Self::DEFAULT_CAPACITY)
    }

    /// Like [`create`](Queue::create) with a ring of `bytes` bytes.
    ///
    /// # Errors
    /// As `create`.
    pub fn create_with_capacity(name: &str, bytes: usize) -> Result<Self, SegmentError> {
        Queue::make(Some(name), bytes)
    }

    /// Opens a named queue, checking it is a `Queue` of this `T` with a sane ring.
    ///
    /// # Errors
    /// Any [`SegmentError`]: missing, another kind or message type, corrupt, …
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Queue::open_as(name, layout::message_type::<T>(), 0)
    }

    fn make(name: Option<&str>, bytes: usize) -> Result<Self, SegmentError> {
        Queue::make_as(name, bytes, layout::message_type::<T>(), 0)
    }

    /// A new queue whose segment records `elem` as its message type and keeps `extra` bytes
    /// (a multiple of 64) between the membership state and the ring, at [`Queue::EXTRA_AT`].
    pub(crate) fn make_as(
        name: Option<&str>,
        bytes: usize,
        elem: TypeInfo,
        extra: usize,
    ) -> Result<Self, SegmentError> {
        let cap = layout::ring_capacity(bytes)?;
        let len = MEMBERS + extra + ring::footprint(cap);
        let seg = layout::create_segment(name, Kind::Queue, elem, len)?;
        Queue::from_segment(seg, extra, cap, EndLocal::hold_solo)
    }

    /// Opens a named queue made by [`make_as`](Queue::make_as) with `elem` and `extra`.
    pub(crate) fn open_as(name: &str, elem: TypeInfo, extra: usize) -> Result<Self, SegmentError> {
        let seg = Segment::open_named(name, Kind::Queue, elem)?;
        Queue::opened(seg, extra, EndLocal::hold_solo)
    }

    /// Where the `extra` bytes of [`make_as`](Queue::make_as) start in the payload.
    pub(crate) const EXTRA_AT: usize = MEMBERS;

    /// A queue over an opened (validated) segment; its ring fills the payload after `extra`.
    fn opened(seg: Segment, extra: usize, hold: Hold) -> Result<Self, SegmentError> {
        let cap = seg
            .payload_len()
            .saturating_sub(MEMBERS + extra + ring::footprint(0)) as u64;
        Queue::from_segment(Arc::new(seg), extra, cap, hold)
    }

    fn from_segment(
        seg: Arc<Segment>,
        extra: usize,
        cap: u64,
        hold: Hold,
    ) -> Result<Self, SegmentError> {
        let ring = Ring::new(Arc::clone(&seg), MEMBERS + extra, cap)?;
        let state: SharedRef<EndState> = SharedRef::new(seg, 0)?;
        let me = hold(state, vec![ring.clone()]).map_err(SegmentError::TooManyProcesses)?;
        Ok(Queue {
            ring,
            me,
            policy: layout::policy(SPIN_BUDGET / QUEUE_PAUSE, QUEUE_PAUSE, QUEUE_NAP),
            _msg: PhantomData,
        })
    }

    /// Sets how many times a blocked call polls before sleeping on a futex (0: sleep at once).
    pub fn set_spins(&mut self, spins: u32) {
        self.policy.spins = spins;
    }

    /// Ring bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// The longest encoded message this queue accepts (capacity minus the 8-byte header).
    pub fn max_message_len(&self) -> usize {
        (self.ring.capacity() - HEADER) as usize
    }

    /// Messages in the queue right now: puts counted minus gets counted, two counters each
    /// side keeps under its lock. A count, not an estimate (unlike Python's `qsize`), but a
    /// snapshot: a put or get finishing in another thread may change it at once.
    ///
    /// # Examples
    /// ```
    /// let q = shmproc_channel::Queue::<u8>::new()?;
    /// q.put(&1)?;
    /// q.put(&2)?;
    /// assert_eq!(q.len(), 2); // no feeder thread: a returned put is already counted
    /// q.get()?;
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        let ctl = self.ring.ctl();
        let put = ctl.put.count.load(Ordering::Acquire);
        let got = ctl.get.count.load(Ordering::Acquire);
        put.saturating_sub(got) as usize
    }

    /// Whether the queue holds no published message right now (a snapshot of the ring's
    /// indices; a message whose `put` returned `Ok` is published).
    pub fn is_empty(&self) -> bool {
        self.ring.len_hint() == 0
    }

    /// This process will put no more (Python's `Queue.close`): from now on every put from it
    /// (`put`, `put_timeout`, `try_put`, `put_bytes`, … on this handle and its clones) fails
    /// with [`SendError::Closed`], and one blocked in another thread wakes up and fails so.
    /// Gets still work, and other processes are unaffected: they put and get as before.
    ///
    /// Closing belongs to this process's hold on the queue: clones of the handle, and copies of
    /// it this process receives while it holds it, share it. A child forked afterwards starts
    /// with the queue open, as Python's queue does after fork, and so does a process the handle
    /// is sent to. A separate [`open`](Queue::open) of a named queue is a hold of its own.
    /// Closing cannot be undone. To end the queue for everyone, use
    /// [`shutdown`](Queue::shutdown).
    ///
    /// # Examples
    /// ```
    /// use shmproc_channel::{Queue, SendError};
    /// use shmproc_process::Process;
    ///
    /// let q: Queue<u32> = Queue::new()?;
    /// let child_q = q.clone();
    /// let child = Process::fork(move || {
    ///     child_q.put(&1).unwrap();
    ///     child_q.close(); // this child puts no more
    ///     assert!(matches!(child_q.put(&2), Err(SendError::Closed)));
    /// })?;
    /// assert!(child.join()?.success());
    /// q.put(&3)?; // the parent still puts, and gets what everyone put
    /// assert_eq!((q.get()?, q.get()?), (1, 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.me.close_puts();
        // Wakes a put of ours blocked on a full ring (others re-check and sleep again).
        self.ring.wake_all();
    }

    /// Whether this process [`close`](Queue::close)d the queue (this handle's hold: see there).
    /// Says nothing about other processes; see [`is_shutdown`](Queue::is_shutdown).
    pub fn is_closed(&self) -> bool {
        self.me.puts_closed()
    }

    /// Ends the queue for everyone (like Python 3.13's `queue.Queue.shutdown(immediate=False)`,
    /// across processes): puts in every process fail from now on with
    /// [`SendError::Disconnected`]; gets drain what is queued, then fail with
    /// [`RecvError::Disconnected`]; calls blocked in any process or thread wake up. Every put
    /// that returned `Ok` before is still delivered. Cannot be undone.
    ///
    /// # Examples
    /// ```
    /// use shmproc_channel::{Queue, RecvError};
    /// use shmproc_process::Process;
    ///
    /// let q: Queue<u32> = Queue::new()?;
    /// let consumer = q.clone();
    /// let child = Process::fork(move || {
    ///     let mut got = 0;
    ///     loop {
    ///         match consumer.get() {
    ///             Ok(_) => got += 1,
    ///             Err(RecvError::Disconnected) => break, // shut down and drained
    ///             Err(e) => panic!("{e}"),
    ///         }
    ///     }
    ///     assert_eq!(got, 2);
    /// })?;
    /// q.put(&1)?;
    /// q.put(&2)?;
    /// q.shutdown(); // the child takes both, then its blocked get ends
    /// assert!(child.join()?.success());
    /// assert!(q.is_shutdown());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) {
        // Under the producer lock, so every put either completed before or sees the flag.
        let guard = self.ring.lock_put(Deadline::Never);
        self.ring.ctl().flags.shut_down.store(1, Ordering::Release);
        drop(guard);
        self.ring.wake_all();
    }

    /// Whether [`shutdown`](Queue::shutdown) was called (in any process).
    pub fn is_shutdown(&self) -> bool {
        record::is_shut_down(&self.ring)
    }

    /// The ring (for `JoinableQueue`'s task count).
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// This process's hold on the queue (for `JoinableQueue`).
    pub(crate) fn member(&self) -> &EndLocal {
        &self.me
    }

    /// Takes hold of a queue received as a serde value, its segment laid out as by
    /// [`make_as`](Queue::make_as) with `extra`.
    pub(crate) fn received(
        received: transfer::ReceivedQueue,
        extra: usize,
    ) -> Result<Self, SegmentError> {
        // Hold first, then end the hand-over: the queue is never unheld in between.
        let q = Queue::opened(received.seg, extra, EndLocal::adopt_solo)?;
        q.me.state().end_transit(received.slot, received.guarantor);
        Ok(q)
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.ring.segment().name()
    }

    /// Keeps a named queue after its creator is done.
    pub fn persist(&self) {
        self.ring.segment().persist();
    }
}

// Putting and getting: typed and bytes.
#[path = "queue_io.rs"]
mod io;

// Clone, Debug and serde.
#[path = "queue_traits.rs"]
mod traits;

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
