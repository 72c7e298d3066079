//! The header at offset 0 of every segment, and the kinds of primitive a segment can hold.

use std::fmt;
use std::sync::atomic::AtomicU32;

use crate::Shareable;

/// First bytes of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"SHMPROC\0";
/// Layout version; bumped whenever any shared layout changes.
pub(crate) const VERSION: u32 = 2; // 2: rosters of 1,024 identities, token-based lock words, counted Event
/// Value of the ready word once the creator has initialised everything.
pub(crate) const READY: u32 = 0x5245_4459;
/// Header flag: do not unlink on drop and do not remove in `clean`.
pub(crate) const FLAG_PERSIST: u32 = 1;
/// Where the payload starts (the header is padded to two cache lines).
pub const PAYLOAD_OFFSET: usize = 128;
/// Longest type name stored (longer names are truncated, still checked with size and alignment).
const TYPE_NAME_LEN: usize = 48;

/// What kind of primitive a segment holds; checked on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum Kind {
    /// Free-form payload (benchmarks, tools).
    Raw = 1,
    /// A `Value<T>`.
    Value = 2,
    /// An `Array<T>`.
    Array = 3,
    /// A `Lock`.
    Lock = 4,
    /// An `RLock`.
    RLock = 5,
    /// A `Semaphore` or `BoundedSemaphore`.
    Semaphore = 6,
    /// An `Event`.
    Event = 7,
    /// A `Condition`.
    Condition = 8,
    /// A `Barrier`.
    Barrier = 9,
    /// A `Queue`.
    Queue = 10,
    /// A `Pipe`.
    Pipe = 11,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Raw,
        Kind::Value,
        Kind::Array,
        Kind::Lock,
        Kind::RLock,
        Kind::Semaphore,
        Kind::Event,
        Kind::Condition,
        Kind::Barrier,
        Kind::Queue,
        Kind::Pipe,
    ];

    /// The kind stored as `raw` in a header, if it is one.
    pub fn from_raw(raw: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u32 == raw)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The element type fingerprint stored in a header: name, size and alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    /// Type name (as given by [`Shareable::type_name`]).
    pub name: &'static str,
    /// `size_of` the element.
    pub size: u32,
    /// `align_of` the element.
    pub align: u32,
}

impl TypeInfo {
    /// The fingerprint of `T`.
    pub fn of<T: Shareable>() -> TypeInfo {
        TypeInfo {
            name: T::type_name(),
            size: std::mem::size_of::<T>() as u32,
            align: std::mem::align_of::<T>() as u32,
        }
    }

    /// No element type (locks, events, …).
    pub fn none() -> TypeInfo {
        TypeInfo {
            name: "",
            size: 0,
            align: 1,
        }
    }

    pub(crate) fn stored_name(&self) -> [u8; TYPE_NAME_LEN] {
        let mut out = [0u8; TYPE_NAME_LEN];
        let bytes = self.name.as_bytes();
        let n = bytes.len().min(TYPE_NAME_LEN);
        out[..n].copy_from_slice(&bytes[..n]);
        out
    }
}

/// The plain (non-atomic) part of the header, written once before the ready flag.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct HeaderFields {
    pub magic: [u8; 8],
    pub version: u32,
    pub kind: u32,
    pub elem_size: u32,
    pub elem_align: u32,
    pub payload_len: u64,
    pub creator_pid: u32,
    pub creator_tag: u32,
    pub type_name: [u8; TYPE_NAME_LEN],
}

impl HeaderFields {
    pub fn type_name(&self) -> String {
        let end = self
            .type_name
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(TYPE_NAME_LEN);
        String::from_utf8_lossy(&self.type_name[..end]).into_owned()
    }
}

/// The header as laid out in shared memory.
#[repr(C)]
pub(crate) struct RawHeader {
    pub fields: HeaderFields,
    pub flags: AtomicU32,
    /// Published last, with release ordering, by the creator.
    pub ready: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<RawHeader>() <= PAYLOAD_OFFSET);
