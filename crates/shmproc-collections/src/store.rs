//! One collection's mapped segment and its lock: [`Store`] holds the checked pointers,
//! [`Locked`] proves the lock is held and is the only way to reach the slots, bitmap and arena.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc_shm::{Kind, OpenOptions, Segment, SegmentError, SharedRef, TypeInfo};
use shmproc_sync::{LockError, RawGuard, RawLock};

use crate::layout::{self, Control, Geometry, CONTROL_AT};
use crate::CollectionError;

/// The mapped segment of one collection, with checked pointers to its parts.
pub(crate) struct Store {
    lock: SharedRef<RawLock>,
    ctl: SharedRef<Control>,
    table: NonNull<AtomicU64>,
    bitmap: NonNull<AtomicU64>,
    arena: NonNull<AtomicU64>,
    pub geometry: Geometry,
}

// SAFETY: the pointers are immutable addresses into the segment kept mapped by `lock`'s Arc;
// the words they reach are atomics; the arena is written (atomically) only under the lock, and
// read as plain bytes only under the lock.
unsafe impl Send for Store {}
// SAFETY: as above.
unsafe impl Sync for Store {}

impl Store {
    /// Creates a new collection segment of `geometry`.
    pub fn create(
        name: Option<&str>,
        kind: Kind,
        elem: TypeInfo,
        geometry: Geometry,
        options: &OpenOptions,
    ) -> Result<Arc<Store>, SegmentError> {
        let seg = layout::create(name, kind, elem, geometry, options)?;
        Store::from_segment(seg, kind)
    }

    /// Opens a named collection segment, validating kind, type and geometry.
    pub fn open(
        name: &str,
        kind: Kind,
        elem: TypeInfo,
        options: &OpenOptions,
    ) -> Result<Arc<Store>, SegmentError> {
        Store::from_segment(Segment::open_named_with(name, kind, elem, options)?, kind)
    }

    /// Deserializes a handle written by [`Segment::serialize_handle`].
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
        elem: TypeInfo,
    ) -> Result<Arc<Store>, D::Error> {
        let seg = Segment::deserialize_handle(deserializer, kind, elem)?;
        Store::from_segment(seg, kind).map_err(serde::de::Error::custom)
    }

    fn from_segment(seg: Segment, kind: Kind) -> Result<Arc<Store>, SegmentError> {
        let g = layout::geometry_of(&seg, kind)?;
        let table = seg.ptr::<AtomicU64>(g.table_at(), g.table_words() as usize)?;
        let bitmap = seg.ptr::<AtomicU64>(g.bitmap_at(), g.bitmap_words() as usize)?;
        let arena = seg.ptr::<AtomicU64>(g.arena_at(), g.units as usize)?;
        let seg = Arc::new(seg);
        Ok(Arc::new(Store {
            lock: SharedRef::new(Arc::clone(&seg), 0)?,
            ctl: SharedRef::new(seg, CONTROL_AT)?,
            table,
            bitmap,
            arena,
            geometry: g,
        }))
    }

    pub fn segment(&self) -> &Arc<Segment> {
        self.lock.segment()
    }

    /// The arena as words: what lock-free readers copy, and how writers store entries (so a
    /// reader racing a writer is never a data race; the sequence number tells it to retry).
    pub fn arena_words(&self) -> &[AtomicU64] {
        // SAFETY: `arena` was checked by `Segment::ptr` to hold `units` aligned words inside the
        // mapping, which `self` keeps alive; atomics may be shared with other processes.
        unsafe { std::slice::from_raw_parts(self.arena.as_ptr(), self.geometry.units as usize) }
    }

    pub fn ctl(&self) -> &Control {
        &self.ctl
    }

    /// The slot tables' words.
    pub fn table_words(&self) -> &[AtomicU64] {
        let words = self.geometry.table_words() as usize;
        // SAFETY: `table` was checked by `Segment::ptr` to hold `words` aligned words inside
        // the mapping, which `self` keeps alive; atomics may be shared with other processes.
        unsafe { std::slice::from_raw_parts(self.table.as_ptr(), words) }
    }

    /// Entries right now (a snapshot, no lock).
    pub fn len(&self) -> usize {
        let len = self.ctl.len.load(Ordering::Acquire);
        len.min(self.geometry.capacity) as usize
    }

    /// Takes the lock, waiting at most `timeout`. If its holder died (or left a mutation
    /// unfinished), undoes that mutation first and fails with [`CollectionError::OwnerDied`].
    pub fn lock(&self, timeout: Option<Duration>) -> Result<Locked<'_>, CollectionError> {
        let acquired = match timeout {
            None => self.lock.acquire(),
            Some(t) => self.lock.acquire_until(Some(Instant::now() + t)),
        };
        let (guard, died) = match acquired {
            Ok(guard) => (guard, false),
            Err(LockError::OwnerDied(guard)) => (guard, true),
            Err(e) => return Err(CollectionError::from_lock(e)),
        };
        let locked = Locked {
            _guard: guard,
            store: self,
        };
        if died || locked.journal_active() || locked.seq_odd() {
            // Whatever the outcome of the repair, the caller learns of the death once.
            locked.recover()?;
            return Err(CollectionError::OwnerDied);
        }
        Ok(locked)
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("segment", self.segment())
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

/// The collection's lock, held: access to every shared word and the arena.
pub(crate) struct Locked<'a> {
    _guard: RawGuard<'a>,
    pub store: &'a Store,
}

impl<'a> Locked<'a> {
    pub fn ctl(&self) -> &'a Control {
        &self.store.ctl
    }

    pub fn geometry(&self) -> Geometry {
        self.store.geometry
    }

    /// The slot table's words.
    pub fn table(&self) -> &'a [AtomicU64] {
        self.store.table_words()
    }

    /// The arena's allocation bitmap.
    pub fn bitmap(&self) -> &'a [AtomicU64] {
        let words = self.store.geometry.bitmap_words() as usize;
        // SAFETY: as in `table`.
        unsafe { std::slice::from_raw_parts(self.store.bitmap.as_ptr(), words) }
    }

    /// The arena's bytes `[at, at + len)`, or a corruption error if out of range.
    pub fn arena(&self, at: usize, len: usize) -> Result<&[u8], CollectionError> {
        self.check_arena(at, len)?;
        let base = self.store.arena.as_ptr().cast::<u8>();
        // SAFETY: in range (checked above) of the arena checked by `Segment::ptr`; the lock is
        // held, so no cooperating process writes these bytes while the borrow lives (it cannot
        // outlive `self`, and writes need `&mut self`); lock-free readers only read them.
        Ok(unsafe { std::slice::from_raw_parts(base.add(at), len) })
    }

    /// Stores `words` into the arena from unit `start` on (atomically: lock-free readers may
    /// be copying them).
    pub fn write_units(
        &mut self,
        start: usize,
        words: impl ExactSizeIterator<Item = u64>,
    ) -> Result<(), CollectionError> {
        let arena = self.store.arena_words();
        let slots = arena
            .get(start..start.saturating_add(words.len()))
            .ok_or_else(|| corrupt(format!("arena units from {start} out of bounds")))?;
        for (slot, word) in slots.iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
        Ok(())
    }

    fn check_arena(&self, at: usize, len: usize) -> Result<(), CollectionError> {
        match at.checked_add(len) {
            Some(end) if end <= self.store.geometry.arena_bytes() => Ok(()),
            _ => Err(corrupt(format!("arena range {at}+{len} out of bounds"))),
        }
    }

    /// Entries right now (bounded by the capacity, whatever a peer wrote).
    pub fn len(&self) -> u64 {
        let len = self.ctl().len.load(Ordering::Relaxed);
        len.min(self.store.geometry.capacity)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // An operation that returned early (or unwound) between publishing its journal record
        // and committing it: undo it before the lock is released.
        if self.journal_active() || self.seq_odd() {
            let _ = self.recover();
        }
    }
}

pub(crate) fn corrupt(why: String) -> CollectionError {
    CollectionError::Corrupt(why)
}
