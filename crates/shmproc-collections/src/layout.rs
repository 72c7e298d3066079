//! What a collection's segment holds, and where.
//!
//! ```text
//! payload offset  0  RawLock (one cache line)
//!                64  Control: geometry, len, table state, allocation hint, reader sequence
//!                    number, the journal
//!                    slot table: map: 2 tables x buckets x (tag, location) words
//!                                vec: capacity location words
//!                    bitmap: one bit per 8-byte arena unit (1 = in use)
//!                    arena: serialized entries, each [key_len u32][value_len u32][key][value]
//! ```
//! Every word outside the arena is an `AtomicU64`, read and written under the lock (the
//! length is also read without it, as a snapshot). The geometry is written once by the
//! creator before the segment is published and checked against the payload size on open.

use std::sync::atomic::{AtomicU64, Ordering};

use shmproc_shm::{AtomicShareable, Kind, OpenOptions, Segment, SegmentError, Spec, TypeInfo};
use shmproc_sync::RawLock;

/// Arena bytes per entry that [`SharedMap::new`](crate::SharedMap::new) and
/// [`SharedVec::new`](crate::SharedVec::new) reserve.
pub const DEFAULT_BYTES_PER_ENTRY: usize = 128;
/// Bytes of one arena unit (allocation granule).
pub(crate) const UNIT: usize = 8;
/// Bytes of an entry's header in the arena (key length, value length).
pub(crate) const ENTRY_HEADER: usize = 8;
/// Where the control block starts.
pub(crate) const CONTROL_AT: usize = std::mem::size_of::<RawLock>();
/// Most units an arena may have (a location packs a unit index into 32 bits).
pub(crate) const MAX_UNITS: u64 = u32::MAX as u64;

/// The undo (or, for `clear`, redo) record of the one mutation in progress. Written in full
/// and published by storing `kind` before the first change; `kind` back to `NONE` commits.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct JournalWords {
    pub kind: AtomicU64,
    pub old_len: AtomicU64,
    pub old_table_state: AtomicU64,
    /// Index + 1 of the one slot changed (0: none).
    pub slot: AtomicU64,
    pub slot_tag: AtomicU64,
    pub slot_loc: AtomicU64,
    /// Units allocated (a packed [`Range`], 0: none): undo clears their bits.
    pub alloc: AtomicU64,
    /// Units freed (packed, 0: none): undo sets their bits again.
    pub free: AtomicU64,
    /// `extend`: elements fully written so far.
    pub progress: AtomicU64,
}

/// The control block after the lock.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Entries at most (fixed at creation).
    pub capacity: AtomicU64,
    /// Buckets per hash table (a power of two; 0 for a vec).
    pub buckets: AtomicU64,
    /// Arena units (fixed at creation).
    pub units: AtomicU64,
    /// Entries right now.
    pub len: AtomicU64,
    /// Map: the active table (bit 0) and its tombstones (the rest, shifted by 1).
    pub table_state: AtomicU64,
    /// Where the next allocation search starts (any value is safe: taken modulo `units`).
    pub hint: AtomicU64,
    /// Sequence number for lock-free readers: odd while a mutation is under way (see `read`).
    pub seq: AtomicU64,
    pub journal: JournalWords,
}

// SAFETY: only AtomicU64 fields (plus alignment padding never read); all zero is a valid
// empty state, and every value read is bounds-checked before use.
unsafe impl AtomicShareable for Control {}

/// A run of arena units: `start` and `count` packed into one word (`count` 0: no range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub start: u32,
    pub count: u32,
}

impl Range {
    pub fn pack(self) -> u64 {
        u64::from(self.start) << 32 | u64::from(self.count)
    }

    pub fn unpack(word: u64) -> Option<Range> {
        let r = Range {
            start: (word >> 32) as u32,
            count: word as u32,
        };
        (r.count != 0).then_some(r)
    }

    /// Units an entry of `key` + `value` bytes takes.
    pub fn units_for(key: usize, value: usize) -> usize {
        (ENTRY_HEADER + key + value).div_ceil(UNIT)
    }
}

/// Sizes fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub capacity: u64,
    /// Buckets per table (map), 0 for a vec.
    pub buckets: u64,
    pub units: u64,
}

impl Geometry {
    /// A map of `entries` entries and `bytes` arena bytes.
    pub fn map(entries: usize, bytes: usize) -> Result<Geometry, SegmentError> {
        let capacity = entries.max(1) as u64;
        let buckets = capacity
            .checked_mul(2)
            .and_then(u64::checked_next_power_of_two)
            .filter(|b| *b <= 1 << 40)
            .ok_or_else(|| too_large("capacity in entries"))?;
        Ok(Geometry {
            capacity,
            buckets: buckets.max(8),
            units: units_of(bytes)?,
        })
    }

    /// A vec of `entries` elements and `bytes` arena bytes.
    pub fn vec(entries: usize, bytes: usize) -> Result<Geometry, SegmentError> {
        let capacity = entries.max(1) as u64;
        if capacity > 1 << 40 {
            return Err(too_large("capacity in entries"));
        }
        Ok(Geometry {
            capacity,
            buckets: 0,
            units: units_of(bytes)?,
        })
    }

    /// Words of slot table.
    pub fn table_words(&self) -> u64 {
        if self.buckets == 0 {
            self.capacity
        } else {
            self.buckets * 4
        }
    }

    pub fn bitmap_words(&self) -> u64 {
        self.units.div_ceil(64)
    }

    pub fn table_at(&self) -> usize {
        CONTROL_AT + std::mem::size_of::<Control>()
    }

    pub fn bitmap_at(&self) -> usize {
        self.table_at() + self.table_words() as usize * 8
    }

    pub fn arena_at(&self) -> usize {
        self.bitmap_at() + self.bitmap_words() as usize * 8
    }

    pub fn payload_len(&self) -> usize {
        self.arena_at() + self.units as usize * UNIT
    }

    pub fn arena_bytes(&self) -> usize {
        self.units as usize * UNIT
    }
}

fn units_of(bytes: usize) -> Result<u64, SegmentError> {
    let units = bytes.max(64).div_ceil(UNIT) as u64;
    if units > MAX_UNITS {
        return Err(too_large("arena bytes"));
    }
    Ok(units)
}

fn too_large(what: &str) -> SegmentError {
    SegmentError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("shared collection too large: {what} exceeds the supported maximum"),
    ))
}

/// Creates the segment (named if `name` is given) with `geometry` recorded in its control block.
pub(crate) fn create(
    name: Option<&str>,
    kind: Kind,
    elem: TypeInfo,
    geometry: Geometry,
    options: &OpenOptions,
) -> Result<Segment, SegmentError> {
    let spec = Spec {
        kind,
        elem,
        payload_len: geometry.payload_len(),
    };
    let init = |seg: &Segment| {
        let ctl: &Control = seg.atomic(CONTROL_AT)?;
        ctl.capacity.store(geometry.capacity, Ordering::Relaxed);
        ctl.buckets.store(geometry.buckets, Ordering::Relaxed);
        ctl.units.store(geometry.units, Ordering::Relaxed);
        Ok(())
    };
    match name {
        Some(name) => Segment::create_named_with(name, &spec, options, init),
        None => Segment::create_anonymous(&spec, init),
    }
}

/// Reads and checks the geometry another process recorded: it must describe exactly this
/// payload (so every later offset stays inside the mapping).
pub(crate) fn geometry_of(seg: &Segment, kind: Kind) -> Result<Geometry, SegmentError> {
    let ctl: &Control = seg.atomic(CONTROL_AT)?;
    let g = Geometry {
        capacity: ctl.capacity.load(Ordering::Relaxed),
        buckets: ctl.buckets.load(Ordering::Relaxed),
        units: ctl.units.load(Ordering::Relaxed),
    };
    let buckets_ok = match kind {
        Kind::Map => {
            g.buckets.is_power_of_two()
                && g.buckets >= 8
                && g.capacity.checked_mul(2).is_some_and(|c| c <= g.buckets)
        }
        _ => g.buckets == 0,
    };
    let sane = buckets_ok
        && (1..=1 << 40).contains(&g.capacity)
        && g.buckets <= 1 << 41
        && (1..=MAX_UNITS).contains(&g.units);
    if !sane || g.payload_len() != seg.payload_len() {
        return Err(SegmentError::Corrupt {
            name: seg.name().unwrap_or("<anonymous>").to_owned(),
            reason: format!(
                "collection geometry {g:?} does not match a payload of {} bytes",
                seg.payload_len()
            ),
        });
    }
    Ok(g)
}

/// The type fingerprint recorded for a collection of `T` (full type name, size, alignment).
pub(crate) fn type_info<T>() -> TypeInfo {
    TypeInfo {
        name: std::any::type_name::<T>(),
        size: std::mem::size_of::<T>() as u32,
        align: (std::mem::align_of::<T>() as u32).min(64),
    }
}
