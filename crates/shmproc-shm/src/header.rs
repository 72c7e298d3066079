//! The header at offset 0 of every segment, and the kinds of primitive a segment can hold.

use std::fmt;
use std::sync::atomic::AtomicU32;

use crate::Shareable;

/// First bytes of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"SHMPROC\0";
/// Layout version; bumped whenever any shared layout changes.
/// 2: rosters of 1,024 identities, token-based lock words, counted Event.
/// 3: a 64-bit type fingerprint (hash of the full type name, size and alignment); named
///    segments are held by open-file-description locks (see the `named` module).
pub(crate) const VERSION: u32 = 3;
/// Value of the ready word once the creator has initialised everything.
pub(crate) const READY: u32 = 0x5245_4459;
/// Header flag: do not unlink on drop and do not remove in `clean`.
pub(crate) const FLAG_PERSIST: u32 = 1;
/// Where the payload starts (the header is padded to two cache lines).
pub const PAYLOAD_OFFSET: usize = 128;
/// Bytes of the type name kept for display (longer names are truncated; the check uses the
/// fingerprint of the full name).
const TYPE_NAME_LEN: usize = 40;
/// Byte offsets of header words that layout versions 2 and 3 share, so tools can read the
/// persist flag, and the creator of a segment whose holders take no locks (version 2), from
/// either.
pub(crate) const CREATOR_PID_AT: usize = 32;
pub(crate) const CREATOR_TAG_AT: usize = 36;
pub(crate) const FLAGS_AT: usize = 88;
pub(crate) const READY_AT: usize = 92;

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
    /// A `SharedMap`.
    Map = 12,
    /// A `SharedVec`.
    List = 13,
}

impl Kind {
    const ALL: [Kind; 13] = [
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
        Kind::Map,
        Kind::List,
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

/// The element type stored in a header: name, size and alignment. What is checked on open is
/// its [`fingerprint`](TypeInfo::fingerprint), a hash of all three, so two types whose names
/// share a long prefix never pass for each other.
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

    /// A 64-bit hash of the full name, the size and the alignment (FNV-1a with a final mix):
    /// the same in every process and build that sees the same type name.
    ///
    /// # Examples
    /// ```
    /// use shmproc_shm::TypeInfo;
    /// let a = TypeInfo { name: "HashMap<String, String>", size: 0, align: 1 };
    /// let b = TypeInfo { name: "HashMap<String, u64>", size: 0, align: 1 };
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// assert_eq!(a.fingerprint(), a.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> u64 {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = self.name.as_bytes().iter();
        let layout = self
            .size
            .to_le_bytes()
            .into_iter()
            .chain(self.align.to_le_bytes());
        for b in bytes.copied().chain([0xff]).chain(layout) {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        // Final avalanche (splitmix64), so nearby inputs differ in every bit.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    /// The name as stored for display: its first bytes, cut at a character boundary.
    pub(crate) fn stored_name(&self) -> [u8; TYPE_NAME_LEN] {
        let mut out = [0u8; TYPE_NAME_LEN];
        let mut n = self.name.len().min(TYPE_NAME_LEN);
        while !self.name.is_char_boundary(n) {
            n -= 1;
        }
        out[..n].copy_from_slice(&self.name.as_bytes()[..n]);
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
    /// The creating process, for display only (liveness comes from locks, not pids).
    pub creator_pid: u32,
    pub creator_tag: u32,
    pub type_name: [u8; TYPE_NAME_LEN],
    /// [`TypeInfo::fingerprint`] of the element type.
    pub type_hash: u64,
}

/// Reads `N` bytes at `at` of a header read from a file.
fn bytes_at<const N: usize>(header: &[u8; PAYLOAD_OFFSET], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&header[at..at + N]);
    out
}

/// The 32-bit word at `at` of a header read from a file (native byte order, as written).
pub(crate) fn word_at(header: &[u8; PAYLOAD_OFFSET], at: usize) -> u32 {
    u32::from_ne_bytes(bytes_at(header, at))
}

impl HeaderFields {
    /// The fields of a header read from a file (not mapped: for tools).
    pub fn parse(header: &[u8; PAYLOAD_OFFSET]) -> HeaderFields {
        use std::mem::offset_of;
        let u32_of = |at| word_at(header, at);
        let u64_of = |at| u64::from_ne_bytes(bytes_at(header, at));
        HeaderFields {
            magic: bytes_at(header, offset_of!(HeaderFields, magic)),
            version: u32_of(offset_of!(HeaderFields, version)),
            kind: u32_of(offset_of!(HeaderFields, kind)),
            elem_size: u32_of(offset_of!(HeaderFields, elem_size)),
            elem_align: u32_of(offset_of!(HeaderFields, elem_align)),
            payload_len: u64_of(offset_of!(HeaderFields, payload_len)),
            creator_pid: u32_of(offset_of!(HeaderFields, creator_pid)),
            creator_tag: u32_of(offset_of!(HeaderFields, creator_tag)),
            type_name: bytes_at(header, offset_of!(HeaderFields, type_name)),
            type_hash: u64_of(offset_of!(HeaderFields, type_hash)),
        }
    }

    /// The stored type name, with "…" when it was cut.
    pub fn type_name(&self) -> String {
        match self.type_name.iter().position(|b| *b == 0) {
            Some(end) => String::from_utf8_lossy(&self.type_name[..end]).into_owned(),
            None => format!("{}…", String::from_utf8_lossy(&self.type_name)),
        }
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
const _: () = assert!(std::mem::offset_of!(HeaderFields, creator_pid) == CREATOR_PID_AT);
const _: () = assert!(std::mem::offset_of!(HeaderFields, creator_tag) == CREATOR_TAG_AT);
const _: () = assert!(std::mem::offset_of!(RawHeader, flags) == FLAGS_AT);
const _: () = assert!(std::mem::offset_of!(RawHeader, ready) == READY_AT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_long_names_and_layouts_apart() {
        let long = |name| TypeInfo {
            name,
            size: 0,
            align: 1,
        };
        let a = long(
            "std::collections::hash::map::HashMap<alloc::string::String, alloc::string::String>",
        );
        let b = long("std::collections::hash::map::HashMap<alloc::string::String, u64>");
        assert_eq!(
            a.stored_name(),
            b.stored_name(),
            "the display names collide"
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
        let sized = |size, align| TypeInfo {
            name: "T",
            size,
            align,
        };
        assert_ne!(sized(4, 4).fingerprint(), sized(8, 4).fingerprint());
        assert_ne!(sized(8, 4).fingerprint(), sized(8, 8).fingerprint());
        // Pinned: segments made by other builds and versions of this code must keep matching.
        assert_eq!(TypeInfo::of::<u64>().fingerprint(), 0x8658_ca23_ec54_7728);
    }

    #[test]
    fn stored_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(TYPE_NAME_LEN); // two bytes each
        let info = TypeInfo {
            name: Box::leak(name.into_boxed_str()),
            size: 1,
            align: 1,
        };
        let stored = info.stored_name();
        let end = stored.iter().position(|b| *b == 0).unwrap_or(TYPE_NAME_LEN);
        assert!(std::str::from_utf8(&stored[..end]).is_ok());
    }
}
