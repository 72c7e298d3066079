//! Errors of creating and opening segments.

use std::{fmt, io};

use crate::Kind;

/// Why a segment could not be created or opened. Every variant names the segment and says what
/// to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum SegmentError {
    /// The name is not 1–40 characters of `[A-Za-z0-9._-]`.
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// `open` found no segment of that name.
    NotFound {
        /// The name looked for.
        name: String,
    },
    /// `create` found the name taken.
    AlreadyExists {
        /// The name asked for.
        name: String,
    },
    /// The creator did not finish initialising within the bounded wait (it may have died).
    NotReady {
        /// The segment's name.
        name: String,
    },
    /// The file is smaller than its header says (or than a header).
    Truncated {
        /// The segment's name.
        name: String,
        /// Bytes found.
        size: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// The header is not a shmproc header, or a field is out of range.
    Corrupt {
        /// The segment's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The segment was written by an incompatible shmproc version.
    Version {
        /// The segment's name.
        name: String,
        /// Version found in the header.
        found: u32,
    },
    /// The segment holds another kind of primitive.
    WrongKind {
        /// The segment's name.
        name: String,
        /// Kind asked for.
        expected: Kind,
        /// Kind found (its name, or the raw number when unknown).
        found: String,
    },
    /// The segment holds another element type.
    WrongType {
        /// The segment's name.
        name: String,
        /// Type asked for (name, size, alignment).
        expected: String,
        /// Type found.
        found: String,
    },
    /// `create` could not reserve the segment's memory: `/dev/shm` (or, for an anonymous
    /// segment, the memory available to this process) has no room for it. Nothing was left
    /// behind; nothing will fail later with SIGBUS.
    NoSpace {
        /// The segment's name, `None` for an anonymous segment.
        name: Option<String>,
        /// Bytes asked for (header included).
        bytes: u64,
        /// What the OS said (`ENOSPC`, `ENOMEM`, …).
        source: io::Error,
    },
    /// `open` refused a file that is not private to this user: another user owns it, or group
    /// or others may read or write it (someone could have planted or may change it). Opt in to
    /// sharing with a group through [`OpenOptions::allow_group`](crate::OpenOptions::allow_group).
    NotPrivate {
        /// The segment's name.
        name: String,
        /// The file's owner (user id).
        owner: u32,
        /// The file's group (group id).
        group: u32,
        /// The file's permission bits.
        mode: u32,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The object already has as many member processes as it can track (see
    /// [`ROSTER_SLOTS`](crate::ROSTER_SLOTS)): this process cannot take part.
    TooManyProcesses(crate::RosterFull),
    /// The operating system refused (out of memory, descriptors, permissions, …).
    Io(io::Error),
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::InvalidName { name } => write!(
                f,
                "invalid segment name {name:?}: use 1-40 characters of A-Z a-z 0-9 . _ -"
            ),
            SegmentError::NotFound { name } => write!(
                f,
                "no shared segment named {name:?}: create it first (or check the name)"
            ),
            SegmentError::AlreadyExists { name } => write!(
                f,
                "a shared segment named {name:?} exists already: open it, pick another name, or \
                 remove a stale one with `shmproc clean`"
            ),
            SegmentError::NotReady { name } => write!(
                f,
                "shared segment {name:?} was never finished by its creator (did it die?); \
                 remove it with `shmproc clean`"
            ),
            SegmentError::Truncated { name, size, needed } => write!(
                f,
                "shared segment {name:?} is truncated: {size} bytes, needs {needed}"
            ),
            SegmentError::Corrupt { name, reason } => {
                write!(f, "shared segment {name:?} is corrupt: {reason}")
            }
            SegmentError::Version { name, found } => write!(
                f,
                "shared segment {name:?} has layout version {found}, this shmproc reads {}",
                crate::header::VERSION
            ),
            SegmentError::WrongKind {
                name,
                expected,
                found,
            } => write!(
                f,
                "shared segment {name:?} holds a {found}, not a {expected}"
            ),
            SegmentError::WrongType {
                name,
                expected,
                found,
            } => write!(
                f,
                "shared segment {name:?} holds elements of type {found}, not {expected}"
            ),
            SegmentError::NoSpace {
                name: Some(name),
                bytes,
                source,
            } => write!(
                f,
                "{} has no room for {bytes} bytes (shared segment {name:?}): free space there \
                 (`shmproc clean`, `df {}`) or make the segment smaller ({source})",
                crate::sys::SHM_DIR,
                crate::sys::SHM_DIR
            ),
            SegmentError::NoSpace {
                name: None,
                bytes,
                source,
            } => write!(
                f,
                "no room for {bytes} bytes of shared memory for an anonymous segment ({source})"
            ),
            SegmentError::NotPrivate {
                name,
                owner,
                group,
                mode,
                reason,
            } => write!(
                f,
                "refusing to open shared segment {name:?}: {reason} (owner uid {owner}, group \
                 gid {group}, mode {mode:04o}); remove it with `shmproc rm {name}` if it is not \
                 yours"
            ),
            SegmentError::TooManyProcesses(full) => full.fmt(f),
            SegmentError::Io(e) => write!(f, "shared memory: {e}"),
        }
    }
}

impl std::error::Error for SegmentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SegmentError::Io(e) | SegmentError::NoSpace { source: e, .. } => Some(e),
            SegmentError::TooManyProcesses(full) => Some(full),
            _ => None,
        }
    }
}

impl From<io::Error> for SegmentError {
    fn from(e: io::Error) -> Self {
        SegmentError::Io(e)
    }
}

impl From<SegmentError> for io::Error {
    fn from(e: SegmentError) -> io::Error {
        let kind = match &e {
            SegmentError::Io(inner) | SegmentError::NoSpace { source: inner, .. } => inner.kind(),
            SegmentError::NotPrivate { .. } => io::ErrorKind::PermissionDenied,
            SegmentError::InvalidName { .. } => io::ErrorKind::InvalidInput,
            SegmentError::NotFound { .. } => io::ErrorKind::NotFound,
            SegmentError::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            SegmentError::TooManyProcesses(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
