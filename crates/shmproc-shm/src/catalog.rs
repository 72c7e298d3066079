//! Listing, inspecting and removing named segments (behind `shmproc ls | clean | inspect`).

use std::io;

use crate::segment::NAME_PREFIX;
use crate::{sys, Kind, Segment, SegmentError};

/// What a named segment's header says, for tools.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// The name given at creation (without the `shmproc.` file prefix).
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// The primitive kind, or why the header could not be read.
    pub status: Result<HeaderSummary, String>,
}

/// The validated header of a segment.
#[derive(Debug, Clone)]
pub struct HeaderSummary {
    /// Primitive kind, `None` if the number is unknown to this version.
    pub kind: Option<Kind>,
    /// Element type name.
    pub type_name: String,
    /// Element size and alignment.
    pub elem_size: u32,
    /// Element alignment.
    pub elem_align: u32,
    /// Bytes after the header.
    pub payload_len: u64,
    /// The process that created it.
    pub creator_pid: u32,
    /// Whether that process still runs (pid reuse is detected via its start time).
    pub creator_alive: bool,
    /// Whether `persist()` was called.
    pub persistent: bool,
}

impl SegmentInfo {
    /// Whether `clean` would remove it: unreadable, or its creator is gone and it is not
    /// persistent.
    pub fn is_stale(&self) -> bool {
        match &self.status {
            Ok(h) => !h.creator_alive && !h.persistent,
            Err(_) => true,
        }
    }
}

/// Reads the header of the named segment without checking its kind or type.
///
/// # Errors
/// As [`Segment::open_named`], except for kind and type checks.
pub fn inspect(name: &str) -> Result<HeaderSummary, SegmentError> {
    let (seg, f) = Segment::open_unchecked(name)?;
    Ok(HeaderSummary {
        kind: Kind::from_raw(f.kind),
        type_name: f.type_name(),
        elem_size: f.elem_size,
        elem_align: f.elem_align,
        payload_len: f.payload_len,
        creator_pid: f.creator_pid,
        creator_alive: sys::is_alive(f.creator_pid, f.creator_tag),
        persistent: seg.is_persistent(),
    })
}

/// Lists every shmproc segment in `/dev/shm`.
///
/// # Errors
/// When `/dev/shm` cannot be read.
pub fn list() -> io::Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sys::SHM_DIR)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix(NAME_PREFIX)) else {
            continue;
        };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let status = inspect(name).map_err(|e| e.to_string());
        out.push(SegmentInfo {
            name: name.to_owned(),
            size,
            status,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes the named segment's file. Processes that have it mapped keep their mapping.
///
/// # Errors
/// [`SegmentError::NotFound`] if there is none; [`SegmentError::Io`] otherwise.
pub fn remove(name: &str) -> Result<(), SegmentError> {
    crate::segment::validate_name(name)?;
    sys::shm_unlink(&format!("{NAME_PREFIX}{name}")).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SegmentError::NotFound {
            name: name.to_owned(),
        },
        _ => SegmentError::Io(e),
    })
}

/// Removes every stale segment (see [`SegmentInfo::is_stale`]) and returns what it removed.
///
/// # Errors
/// When `/dev/shm` cannot be read; segments that vanish meanwhile are skipped.
pub fn clean() -> io::Result<Vec<SegmentInfo>> {
    let mut removed = Vec::new();
    for info in list()? {
        if info.is_stale() && remove(&info.name).is_ok() {
            removed.push(info);
        }
    }
    Ok(removed)
}
