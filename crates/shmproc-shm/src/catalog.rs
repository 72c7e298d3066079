//! Listing, inspecting and removing named segments (behind `shmproc ls | clean | inspect | rm`).
//!
//! Tools never map a segment: they read its header with `pread` (a file truncated under them is
//! an error, never a SIGBUS), never hold it, and ask the kernel whether anyone else does (the
//! locks described in the `named` module). A segment is *stale* when nobody holds it and it is
//! not persistent: its creator and every process that opened it are gone (however they died, in
//! whatever PID namespace), and it is not being initialised.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::header::{
    word_at, HeaderFields, FLAGS_AT, FLAG_PERSIST, MAGIC, READY, READY_AT, VERSION,
};
use crate::segment::NAME_PREFIX;
use crate::validate::{corrupt, validate_fields, validate_name};
use crate::{named, sys, Kind, OpenOptions, SegmentError, PAYLOAD_OFFSET};

/// What a named segment's file says, for tools.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The name given at creation (without the `shmproc.` file prefix).
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// The validated header, or why it cannot be opened (as [`Segment::open_named`] would say,
    /// kind and type aside).
    ///
    /// [`Segment::open_named`]: crate::Segment::open_named
    pub status: Result<HeaderSummary, String>,
    /// Whether some process holds the segment: its creator or any process that opened it, or
    /// its creator is still initialising it. `true` too when this process cannot tell (no
    /// permission to open the file). For segments of shmproc versions before layout 3, which
    /// hold no locks: whether their creator process still runs.
    pub in_use: bool,
    /// Whether `persist()` was called on it.
    pub persistent: bool,
}

/// The validated header of a segment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HeaderSummary {
    /// Primitive kind, `None` if the number is unknown to this version.
    pub kind: Option<Kind>,
    /// Element type name (its first 40 bytes, "…" when cut).
    pub type_name: String,
    /// Element size.
    pub elem_size: u32,
    /// Element alignment.
    pub elem_align: u32,
    /// Bytes after the header.
    pub payload_len: u64,
    /// The process that created it (a pid in the creator's PID namespace).
    pub creator_pid: u32,
    /// Whether a process with that pid and start time runs in this PID namespace (for
    /// display: whether the segment is still used is [`in_use`](HeaderSummary::in_use)).
    pub creator_alive: bool,
    /// Whether `persist()` was called.
    pub persistent: bool,
    /// Whether some process holds the segment (see [`SegmentInfo::in_use`]).
    pub in_use: bool,
}

impl SegmentInfo {
    /// Whether [`clean`] would remove it: nobody holds it (its creator and every process that
    /// opened it are gone, and nobody is initialising it) and it is not persistent.
    pub fn is_stale(&self) -> bool {
        !self.in_use && !self.persistent
    }
}

/// A named segment's file, opened (not mapped) and its header read.
struct Probe {
    file: File,
    size: u64,
    /// The first [`PAYLOAD_OFFSET`] bytes, if the file has that many.
    header: Option<[u8; PAYLOAD_OFFSET]>,
}

impl Probe {
    fn open(name: &str) -> Result<Probe, SegmentError> {
        validate_name(name)?;
        let file = sys::shm_open_existing(&os_name(name)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => SegmentError::NotFound {
                name: name.to_owned(),
            },
            _ => SegmentError::Io(e),
        })?;
        let size = file.metadata()?.len();
        let mut probe = Probe {
            file,
            size,
            header: None,
        };
        probe.reread()?;
        Ok(probe)
    }

    fn reread(&mut self) -> io::Result<()> {
        let mut header = [0u8; PAYLOAD_OFFSET];
        self.header = match self.file.read_exact_at(&mut header, 0) {
            Ok(()) => Some(header),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(e),
        };
        Ok(())
    }

    /// The header's fields, if it is a shmproc header of any layout version.
    fn fields(&self) -> Option<HeaderFields> {
        let fields = HeaderFields::parse(self.header.as_ref()?);
        (fields.magic == MAGIC).then_some(fields)
    }

    /// A segment of a layout before 3, whose holders take no locks.
    fn legacy(&self) -> Option<HeaderFields> {
        self.fields().filter(|f| f.version != 0 && f.version < 3)
    }

    fn persistent(&self) -> bool {
        self.fields().is_some()
            && self
                .header
                .is_some_and(|h| word_at(&h, FLAGS_AT) & FLAG_PERSIST != 0)
    }

    fn in_use(&self) -> bool {
        match self.legacy() {
            Some(f) => sys::is_alive(f.creator_pid, f.creator_tag),
            None => named::in_use(&self.file).unwrap_or(true),
        }
    }

    /// The header validated as `open` would (privacy, readiness, version, bounds).
    fn summary(&mut self, name: &str) -> Result<HeaderSummary, SegmentError> {
        named::check_private(name, &self.file, &OpenOptions::new())?;
        let Some(header) = self.header else {
            return Err(SegmentError::Truncated {
                name: name.to_owned(),
                size: self.size,
                needed: PAYLOAD_OFFSET as u64,
            });
        };
        let early = HeaderFields::parse(&header);
        if early.magic != MAGIC {
            return Err(corrupt(name, "not a shmproc segment (bad magic)"));
        }
        if early.version != VERSION && early.version != 0 {
            return Err(SegmentError::Version {
                name: name.to_owned(),
                found: early.version,
            });
        }
        match word_at(&header, READY_AT) {
            READY => {}
            0 => {
                return Err(SegmentError::NotReady {
                    name: name.to_owned(),
                })
            }
            _ => return Err(corrupt(name, "bad ready word")),
        }
        // Read again: the fields were written before `ready` was published, so this copy,
        // made after we saw `ready`, has all of them.
        self.reread()?;
        let f = self
            .fields()
            .ok_or_else(|| corrupt(name, "header changed"))?;
        validate_fields(name, &f, self.size)?;
        Ok(HeaderSummary {
            kind: Kind::from_raw(f.kind),
            type_name: f.type_name(),
            elem_size: f.elem_size,
            elem_align: f.elem_align,
            payload_len: f.payload_len,
            creator_pid: f.creator_pid,
            creator_alive: sys::is_alive(f.creator_pid, f.creator_tag),
            persistent: self.persistent(),
            in_use: self.in_use(),
        })
    }
}

fn os_name(name: &str) -> String {
    format!("{NAME_PREFIX}{name}")
}

/// Reads the header of the named segment without mapping or holding it, and without checking
/// its kind or type.
///
/// # Errors
/// As [`Segment::open_named`](crate::Segment::open_named), except for kind and type checks;
/// it never waits for a creator still initialising ([`SegmentError::NotReady`] at once).
///
/// # Examples
/// ```
/// use shmproc_shm::{inspect, Kind, Segment, Spec, TypeInfo};
/// # let name = format!("doc-inspect-{}", std::process::id());
/// let spec = Spec { kind: Kind::Raw, elem: TypeInfo::none(), payload_len: 64 };
/// let seg = Segment::create_named(&name, &spec, |_| Ok(()))?;
/// let h = inspect(&name)?;
/// assert_eq!((h.kind, h.payload_len, h.in_use), (Some(Kind::Raw), 64, true));
/// # drop(seg);
/// # Ok::<(), shmproc_shm::SegmentError>(())
/// ```
pub fn inspect(name: &str) -> Result<HeaderSummary, SegmentError> {
    Probe::open(name)?.summary(name)
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
        let (status, in_use, persistent) = match Probe::open(name) {
            Ok(mut probe) => {
                let status = probe.summary(name).map_err(|e| e.to_string());
                (status, probe.in_use(), probe.persistent())
            }
            // Vanished meanwhile: not listed.
            Err(SegmentError::NotFound { .. }) => continue,
            // Cannot tell who holds it (no permission, not a valid name, …): leave it alone.
            Err(e) => (Err(e.to_string()), true, false),
        };
        out.push(SegmentInfo {
            name: name.to_owned(),
            size,
            status,
            in_use,
            persistent,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes the named segment's file, whoever holds it: processes that have it mapped keep
/// their mapping. Only the file found under the name is removed: if a new segment takes the
/// name meanwhile, it stays.
///
/// # Errors
/// [`SegmentError::NotFound`] if there is none; [`SegmentError::Io`] otherwise.
pub fn remove(name: &str) -> Result<(), SegmentError> {
    validate_name(name)?;
    let os = os_name(name);
    let not_found = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => SegmentError::NotFound {
            name: name.to_owned(),
        },
        _ => SegmentError::Io(e),
    };
    match sys::shm_open_existing(&os) {
        Ok(file) => named::unlink_if_same(&os, &file)
            .map(drop)
            .map_err(not_found),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(e)),
        // Not a file we can open (a symlink, another user's file): remove the name itself.
        Err(_) => sys::shm_unlink(&os).map_err(not_found),
    }
}

/// Removes every stale segment (see [`SegmentInfo::is_stale`]) and returns what it removed.
/// Each is checked again at the moment of removal, holding a lock that keeps anyone from
/// starting to use it meanwhile, so a segment that is opened or created concurrently stays.
///
/// # Errors
/// When `/dev/shm` cannot be read; segments that vanish meanwhile are skipped.
pub fn clean() -> io::Result<Vec<SegmentInfo>> {
    let mut removed = Vec::new();
    for info in list()? {
        if info.is_stale() && remove_if_stale(&info.name) {
            removed.push(info);
        }
    }
    Ok(removed)
}

/// Unlinks the named segment if nobody holds it and it is not persistent, deciding while
/// holding `clean`'s claim on it (see the `named` module).
fn remove_if_stale(name: &str) -> bool {
    let Ok(mut probe) = Probe::open(name) else {
        return false;
    };
    if !named::claim(&probe.file).unwrap_or(false) {
        return false; // held by someone
    }
    // Claimed: nobody can start holding it now. Decide on what the file says at this moment.
    if probe.reread().is_err() || probe.persistent() {
        return false;
    }
    if let Some(f) = probe.legacy() {
        if sys::is_alive(f.creator_pid, f.creator_tag) {
            return false;
        }
    }
    named::unlink_if_same(&os_name(name), &probe.file).unwrap_or(false)
}
