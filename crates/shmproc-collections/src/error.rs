//! The one error of every `SharedMap` / `SharedVec` operation.

use std::{fmt, io};

use shmproc_shm::SegmentError;
use shmproc_sync::LockError;

/// Why an operation on a [`SharedMap`](crate::SharedMap) or [`SharedVec`](crate::SharedVec)
/// failed. Every failing mutation leaves the collection as it was.
#[derive(Debug)]
#[non_exhaustive]
pub enum CollectionError {
    /// A process died in the middle of an operation on this collection (or while holding its
    /// lock). This call found it, undid that half-done operation — the collection is as it was
    /// before it — and did **not** run its own operation: retry it. Reported once.
    OwnerDied,
    /// Every entry slot is in use (`capacity` entries). Remove some, or create the collection
    /// with a larger capacity.
    Full {
        /// The collection's capacity in entries.
        capacity: usize,
    },
    /// The entry's bytes do not fit in the free space of the collection's byte arena right now
    /// (free space may also be split into pieces too small). Remove entries or create the
    /// collection with more bytes (`with_capacity`).
    OutOfSpace {
        /// Bytes the entry needs (serialized, with its 8-byte header, rounded up to 8).
        needed: usize,
        /// Bytes free in the arena, in all pieces together.
        free: usize,
    },
    /// The entry is larger than the whole arena could ever hold; nothing was written.
    TooLarge {
        /// Bytes the entry needs.
        needed: usize,
        /// Bytes of the whole arena.
        arena: usize,
    },
    /// `set` on an index at or past the end.
    OutOfBounds {
        /// The index asked for.
        index: usize,
        /// The length at the time.
        len: usize,
    },
    /// A key or value could not be serialized (its `Serialize` impl failed).
    Encode(postcard::Error),
    /// Stored bytes did not decode as this collection's types: a peer wrote another type
    /// under the same name, or the memory is corrupt.
    Decode(postcard::Error),
    /// The shared state is inconsistent (a peer wrote garbage); the message says what was
    /// out of range. Nothing outside the segment was touched.
    Corrupt(String),
    /// The handle's timeout ([`with_timeout`](crate::SharedMap::with_timeout)) passed while
    /// another process held the collection's lock.
    Timeout,
    /// This thread already holds the collection's lock: an `update` closure called back into
    /// the same collection. Compute outside the closure instead.
    Deadlock,
    /// Creating or opening the segment failed (name taken, missing, wrong type, no memory, …).
    Segment(SegmentError),
    /// A futex call failed.
    Io(io::Error),
}

impl fmt::Display for CollectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectionError::OwnerDied => f.write_str(
                "a process died in the middle of an operation on this shared collection; its \
                 half-done change was undone and this call did nothing (retry it)",
            ),
            CollectionError::Full { capacity } => write!(
                f,
                "the shared collection is full ({capacity} entries): remove some or create it \
                 with a larger capacity"
            ),
            CollectionError::OutOfSpace { needed, free } => write!(
                f,
                "no room for an entry of {needed} bytes in the shared collection ({free} bytes \
                 free in all): remove entries or create it with more bytes"
            ),
            CollectionError::TooLarge { needed, arena } => write!(
                f,
                "an entry of {needed} bytes can never fit in this shared collection's arena of \
                 {arena} bytes"
            ),
            CollectionError::OutOfBounds { index, len } => {
                write!(
                    f,
                    "index {index} out of bounds for a shared vec of length {len}"
                )
            }
            CollectionError::Encode(e) => write!(f, "could not serialize an entry: {e}"),
            CollectionError::Decode(e) => write!(
                f,
                "stored bytes do not decode as this collection's type ({e}): corrupt or written \
                 as another type"
            ),
            CollectionError::Corrupt(why) => write!(f, "shared collection is corrupt: {why}"),
            CollectionError::Timeout => f.write_str(
                "timed out waiting for another process to release the shared collection",
            ),
            CollectionError::Deadlock => f.write_str(
                "this thread already holds the shared collection's lock (an update closure \
                 used the same collection)",
            ),
            CollectionError::Segment(e) => write!(f, "{e}"),
            CollectionError::Io(e) => write!(f, "lock wait failed: {e}"),
        }
    }
}

impl std::error::Error for CollectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CollectionError::Encode(e) | CollectionError::Decode(e) => Some(e),
            CollectionError::Segment(e) => Some(e),
            CollectionError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SegmentError> for CollectionError {
    fn from(e: SegmentError) -> Self {
        CollectionError::Segment(e)
    }
}

impl CollectionError {
    /// The error for a lock acquisition that did not succeed (`OwnerDied` is handled by the
    /// caller, which repairs first).
    pub(crate) fn from_lock<G>(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => CollectionError::OwnerDied,
            LockError::Timeout | LockError::WouldBlock => CollectionError::Timeout,
            LockError::Deadlock => CollectionError::Deadlock,
            LockError::Io(e) => CollectionError::Io(e),
            _ => CollectionError::Io(io::Error::other("unexpected lock error")),
        }
    }

    /// Whether this is [`CollectionError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, CollectionError::OwnerDied)
    }
}
