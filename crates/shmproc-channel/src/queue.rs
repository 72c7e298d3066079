//! `Queue<T>`: a multi-producer, multi-consumer FIFO of whole records in one shared ring.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

use shmproc_shm::{Kind, Segment, SegmentError, SharedRef};

use crate::codec;
use crate::end::{EndLocal, EndState, Hold};
use crate::error::{RecvError, SendError, Stop};
use crate::layout::{self, SPIN_BUDGET};
use crate::record;
use crate::ring::{self, Deadline, Ring, WaitPolicy, HEADER};
use crate::scratch::Landing;
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
/// - [`close`](Queue::close) is global: producers get [`SendError::Disconnected`] at once;
///   consumers drain what is left, then get [`RecvError::Disconnected`]; blocked ones wake up.
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
/// - A queue has no notion of a peer: a `get` on an empty queue whose producers all died waits
///   (use `get_timeout`, or `close`).
/// - Every index and length read from the ring is checked; a corrupt ring yields
///   [`RecvError::Corrupt`] / [`SendError::Corrupt`], never an access out of bounds.
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
        let seg = Segment::open_named(name, Kind::Queue, layout::message_type::<T>())?;
        Queue::opened(seg, EndLocal::hold_solo)
    }

    /// A queue over an opened (validated) segment; its ring fills the payload.
    fn opened(seg: Segment, hold: Hold) -> Result<Self, SegmentError> {
        let cap = seg
            .payload_len()
            .saturating_sub(MEMBERS + ring::footprint(0)) as u64;
        Queue::from_segment(Arc::new(seg), cap, hold)
    }

    fn make(name: Option<&str>, bytes: usize) -> Result<Self, SegmentError> {
        let cap = layout::ring_capacity(bytes)?;
        let elem = layout::message_type::<T>();
        let len = MEMBERS + ring::footprint(cap);
        let seg = layout::create_segment(name, Kind::Queue, elem, len)?;
        Queue::from_segment(seg, cap, EndLocal::hold_solo)
    }

    fn from_segment(seg: Arc<Segment>, cap: u64, hold: Hold) -> Result<Self, SegmentError> {
        let ring = Ring::new(Arc::clone(&seg), MEMBERS, cap)?;
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

    /// Messages in the queue right now (a snapshot).
    pub fn len(&self) -> usize {
        let ctl = self.ring.ctl();
        let put = ctl.put.count.load(Ordering::Acquire);
        let got = ctl.get.count.load(Ordering::Acquire);
        put.saturating_sub(got) as usize
    }

    /// Whether the queue holds no message right now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.ring.len_hint() == 0
    }

    /// Closes the queue for everyone: puts fail from now on, gets drain what is left and then
    /// fail with [`RecvError::Disconnected`]; every blocked call wakes up.
    pub fn close(&self) {
        // Under the producer lock, so every put either completed before or sees the flag.
        let guard = self.ring.lock_put(Deadline::Never);
        self.ring.ctl().flags.closed.store(1, Ordering::Release);
        drop(guard);
        self.ring.wake_all();
    }

    /// Whether [`close`](Queue::close) was called (in any process).
    pub fn is_closed(&self) -> bool {
        self.ring.ctl().flags.closed.load(Ordering::Acquire) != 0
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.ring.segment().name()
    }

    /// Keeps a named queue after its creator is done.
    pub fn persist(&self) {
        self.ring.segment().persist();
    }

    /// Appends `bytes` as one message, blocking while the queue is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], [`SendError::Disconnected`] (closed), [`SendError::Corrupt`].
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        Ok(self.put_raw(bytes, Deadline::Never)?)
    }

    /// Like [`put_bytes`](Queue::put_bytes), failing with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `put_bytes`, plus `Timeout`.
    pub fn put_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
        Ok(self.put_raw(bytes, Deadline::after(timeout))?)
    }

    /// Like [`put_bytes`](Queue::put_bytes) without waiting: [`SendError::Full`] if no room.
    ///
    /// # Errors
    /// As `put_bytes`, plus `Full`.
    pub fn try_put_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        Ok(self.put_raw(bytes, Deadline::Now)?)
    }

    /// Takes the oldest message's bytes, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once closed and drained; [`RecvError::Corrupt`].
    pub fn get_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.get_vec(Deadline::Never)
    }

    /// Like [`get_bytes`](Queue::get_bytes), failing with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `get_bytes`, plus `Timeout`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.get_vec(Deadline::after(timeout))
    }

    /// Like [`get_bytes`](Queue::get_bytes) without waiting: [`RecvError::Empty`] if none.
    ///
    /// # Errors
    /// As `get_bytes`, plus `Empty`.
    pub fn try_get_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.get_vec(Deadline::Now)
    }

    fn get_vec(&self, deadline: Deadline) -> Result<Vec<u8>, RecvError> {
        let mut out = Vec::new();
        self.get_into(deadline, &mut out)?;
        Ok(out)
    }

    fn put_raw(&self, bytes: &[u8], deadline: Deadline) -> Result<(), Stop> {
        record::put(&self.ring, Some(&self.me), self.policy, bytes, deadline)
    }

    fn get_into(&self, deadline: Deadline, out: &mut Vec<u8>) -> Result<(), Stop> {
        record::take_into_vec(&self.ring, Some(&self.me), self.policy, deadline, out)
    }

    fn get_landed(&self, deadline: Deadline, out: &mut Landing) -> Result<(), Stop> {
        record::take_into_landing(&self.ring, Some(&self.me), self.policy, deadline, out)
    }
}

impl<T: Serialize> Queue<T> {
    /// Appends `msg`, blocking while the queue is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] (nothing written), [`SendError::Disconnected`] (closed),
    /// [`SendError::Encode`], [`SendError::Corrupt`]. `msg` is borrowed: it stays the caller's.
    pub fn put(&self, msg: &T) -> Result<(), SendError> {
        codec::with_encoded(msg, |b| Ok(self.put_raw(b, Deadline::Never)?))
    }

    /// Like [`put`](Queue::put), failing with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `put`, plus `Timeout`.
    pub fn put_timeout(&self, msg: &T, timeout: Duration) -> Result<(), SendError> {
        let deadline = Deadline::after(timeout);
        codec::with_encoded(msg, |b| Ok(self.put_raw(b, deadline)?))
    }

    /// Like [`put`](Queue::put) without waiting: [`SendError::Full`] if there is no room.
    ///
    /// # Errors
    /// As `put`, plus `Full`.
    pub fn try_put(&self, msg: &T) -> Result<(), SendError> {
        codec::with_encoded(msg, |b| Ok(self.put_raw(b, Deadline::Now)?))
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Takes the oldest message, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once closed and drained; [`RecvError::Decode`] (the message
    /// is consumed); [`RecvError::Corrupt`].
    pub fn get(&self) -> Result<T, RecvError> {
        codec::decode_landed(|l| Ok(self.get_landed(Deadline::Never, l)?))
    }

    /// Like [`get`](Queue::get), failing with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `get`, plus `Timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let deadline = Deadline::after(timeout);
        codec::decode_landed(|l| Ok(self.get_landed(deadline, l)?))
    }

    /// Like [`get`](Queue::get) without waiting: [`RecvError::Empty`] if there is none.
    ///
    /// # Errors
    /// As `get`, plus `Empty`.
    pub fn try_get(&self) -> Result<T, RecvError> {
        codec::decode_landed(|l| Ok(self.get_landed(Deadline::Now, l)?))
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            me: Arc::clone(&self.me),
            policy: self.policy,
            _msg: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A `Queue` can be an argument or result of a spawned entry or Pool task, or a message: an
/// anonymous one travels as a file descriptor (only to spawned processes and Pool tasks;
/// serializing it anywhere else is an error), a named one by name. A queue has no peers to
/// track, so the received handle is simply another handle to the same ring.
impl<T> Serialize for Queue<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        transfer::serialize_queue(self.me.state(), serializer)
    }
}

impl<'de, T> serde::Deserialize<'de> for Queue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let received = transfer::deserialize_queue::<T, D>(deserializer)?;
        // Hold first, then end the hand-over: the queue is never unheld in between.
        let q =
            Queue::opened(received.seg, EndLocal::adopt_solo).map_err(serde::de::Error::custom)?;
        q.me.state().end_transit(received.slot, received.guarantor);
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt_then(
        set: impl Fn(&crate::ring::RingCtl),
    ) -> (Result<Vec<u8>, RecvError>, Result<(), SendError>) {
        let q: Queue<u8> = Queue::with_capacity(256).unwrap();
        q.put_bytes(&[1, 2, 3]).unwrap();
        set(q.ring.ctl());
        (q.try_get_bytes(), q.try_put_bytes(&[4; 100]))
    }

    #[test]
    fn a_tail_beyond_head_plus_capacity_is_corrupt() {
        let (got, put) = corrupt_then(|c| c.put.pos.store(1 << 40, Ordering::Relaxed));
        assert!(matches!(got, Err(RecvError::Corrupt(_))), "{got:?}");
        assert!(matches!(put, Err(SendError::Corrupt(_))), "{put:?}");
    }

    #[test]
    fn a_head_beyond_tail_is_corrupt() {
        let (got, put) = corrupt_then(|c| {
            // The caches are stale-but-valid until refreshed: drop them so both sides re-read.
            c.get.pos.store(u64::MAX - 3, Ordering::Relaxed);
            c.get.peer_cache.store(0, Ordering::Relaxed);
            c.put.peer_cache.store(u64::MAX, Ordering::Relaxed);
        });
        assert!(matches!(got, Err(RecvError::Corrupt(_))), "{got:?}");
        assert!(matches!(put, Err(SendError::Corrupt(_))), "{put:?}");
    }

    #[test]
    fn an_index_about_to_overflow_is_corrupt() {
        let (_, put) = corrupt_then(|c| {
            c.put.pos.store(u64::MAX - 8, Ordering::Relaxed);
            c.get.pos.store(u64::MAX - 8, Ordering::Relaxed);
            c.put.peer_cache.store(u64::MAX - 8, Ordering::Relaxed);
        });
        assert!(matches!(put, Err(SendError::Corrupt(_))), "{put:?}");
    }

    #[test]
    fn a_record_longer_than_what_was_published_is_corrupt() {
        let (got, _) = corrupt_then(|c| c.put.pos.store(5, Ordering::Relaxed));
        assert!(matches!(got, Err(RecvError::Corrupt(_))), "{got:?}");
    }

    #[test]
    fn garbage_everywhere_gives_errors_not_crashes() {
        for pattern in [0xA5_u64, 0x0101_0101_0101_0101, u64::MAX, 1 << 63] {
            let (got, put) = corrupt_then(|c| {
                for side in [&c.put, &c.get] {
                    for (i, w) in [&side.pos, &side.peer_cache, &side.count]
                        .iter()
                        .enumerate()
                    {
                        w.store(pattern.rotate_left(i as u32 * 7), Ordering::Relaxed);
                    }
                }
            });
            // Either side may happen to see a consistent state; neither may crash or hang.
            let _ = (got, put);
        }
    }
}
