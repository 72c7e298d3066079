//! Shared-memory segments: creation, validation on open, and bounds-checked access.
//!
//! This module holds all raw pointer arithmetic on mappings; everything above it gets typed,
//! bounds- and alignment-checked pointers from [`Segment::ptr`] and [`Segment::atomic`].

use std::fmt;
use std::fs::File;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::header::{HeaderFields, RawHeader, FLAG_PERSIST, MAGIC, PAYLOAD_OFFSET, READY, VERSION};
use crate::validate::{check_kind_and_type, corrupt, validate_fields, validate_name};
use crate::{named, sys, AtomicShareable, Kind, OpenOptions, SegmentError, TypeInfo};

/// How long `open` waits for a creator that is still initialising.
const READY_WAIT: Duration = Duration::from_millis(500);
/// Prefix of every named segment's file in `/dev/shm`.
pub const NAME_PREFIX: &str = "shmproc.";
/// How errors name an anonymous segment received from another process.
pub(crate) const PASSED_LABEL: &str = "<passed anonymous segment>";

/// What a new segment holds.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The primitive kind.
    pub kind: Kind,
    /// The element type fingerprint.
    pub elem: TypeInfo,
    /// Bytes of payload after the header.
    pub payload_len: usize,
}

/// A mapped, validated shared-memory segment: a header followed by `payload_len` bytes.
///
/// Anonymous segments (memfd) have no name anywhere and vanish with their last mapping. Named
/// segments live in `/dev/shm/shmproc.NAME` and are unlinked when the creating process drops the
/// segment, unless [`persist`](Segment::persist) was called. Every process holding a named
/// segment holds a lock on its file for as long as it has it mapped, so `shmproc clean` removes
/// only segments nobody holds (the lifecycle table is in the `named` module's docs).
///
/// A segment's memory is reserved when it is created: a full `/dev/shm` is an error from
/// `create` ([`SegmentError::NoSpace`]), never a SIGBUS at the first write.
pub struct Segment {
    map: MmapRaw,
    file: File,
    name: Option<String>,
    /// The pid that created a named segment (unlink happens only in that process).
    creator_pid: Option<u32>,
    payload_len: usize,
}

fn os_name(name: &str) -> String {
    format!("{NAME_PREFIX}{name}")
}

impl Segment {
    /// Creates an anonymous segment (a sealed memfd), reserves its memory, runs `init` on its
    /// zeroed payload, then publishes it as ready.
    ///
    /// # Errors
    /// [`SegmentError::NoSpace`] when the memory cannot be reserved; [`SegmentError::Io`] when
    /// the OS refuses otherwise (out of descriptors, …).
    pub fn create_anonymous(
        spec: &Spec,
        init: impl FnOnce(&Segment) -> Result<(), SegmentError>,
    ) -> Result<Segment, SegmentError> {
        let total = total_len(spec.payload_len)?;
        let file = sys::memfd_create(&format!("shmproc-{:?}", spec.kind), total)?;
        reserve(&file, total, None)?;
        sys::seal_size(&file)?;
        let seg = Segment::map(file, None, None, spec.payload_len)?;
        seg.initialise(spec, init)?;
        Ok(seg)
    }

    /// Creates a named segment `/dev/shm/shmproc.NAME` (mode 0600, fails if it exists),
    /// reserves its memory, runs `init` on its zeroed payload, then publishes it as ready.
    ///
    /// # Errors
    /// [`SegmentError::InvalidName`], [`SegmentError::AlreadyExists`],
    /// [`SegmentError::NoSpace`] (nothing is left behind), or [`SegmentError::Io`].
    pub fn create_named(
        name: &str,
        spec: &Spec,
        init: impl FnOnce(&Segment) -> Result<(), SegmentError>,
    ) -> Result<Segment, SegmentError> {
        Segment::create_named_with(name, spec, &OpenOptions::new(), init)
    }

    /// Like [`create_named`](Segment::create_named), shared as `options` say (mode 0660 with
    /// [`OpenOptions::allow_group`]).
    ///
    /// # Errors
    /// As [`create_named`](Segment::create_named).
    ///
    /// # Examples
    /// See [`OpenOptions`].
    pub fn create_named_with(
        name: &str,
        spec: &Spec,
        options: &OpenOptions,
        init: impl FnOnce(&Segment) -> Result<(), SegmentError>,
    ) -> Result<Segment, SegmentError> {
        validate_name(name)?;
        let total = total_len(spec.payload_len)?;
        let os = os_name(name);
        // Holds the creator's locks from here on (see `named`).
        let file = named::create(name, &os, options)?;
        let mapped = file
            .set_len(total)
            .map_err(SegmentError::Io)
            .and_then(|()| reserve(&file, total, Some(name)))
            .and_then(|()| Ok(map_len(&file, spec.payload_len)?));
        let map = match mapped {
            Ok(map) => map,
            Err(e) => {
                let _ = named::unlink_if_same(&os, &file);
                return Err(e);
            }
        };
        let seg = Segment {
            map,
            file,
            name: Some(name.to_owned()),
            creator_pid: Some(sys::getpid()),
            payload_len: spec.payload_len,
        };
        if let Err(e) = seg.initialise(spec, init) {
            // Unlinked even if `init` called `persist`: the segment was never finished.
            let _ = named::unlink_if_same(&os, &seg.file);
            return Err(e);
        }
        named::initialised(&seg.file);
        Ok(seg)
    }

    /// Opens the named segment and validates its header, kind and element type. Waits up to
    /// half a second for a creator that is still initialising. The file must be private to
    /// this user (see [`open_named_with`](Segment::open_named_with) for group sharing).
    ///
    /// # Errors
    /// Every way a segment can be missing, not private, unfinished, truncated, corrupt or of
    /// another kind or type has its own [`SegmentError`] variant; OS failures are
    /// [`SegmentError::Io`].
    pub fn open_named(name: &str, kind: Kind, elem: TypeInfo) -> Result<Segment, SegmentError> {
        Segment::open_named_with(name, kind, elem, &OpenOptions::new())
    }

    /// Like [`open_named`](Segment::open_named), accepting what `options` allow (a file
    /// shared with the caller's group, with [`OpenOptions::allow_group`]).
    ///
    /// # Errors
    /// As [`open_named`](Segment::open_named); [`SegmentError::NotPrivate`] for a file the
    /// options do not allow.
    ///
    /// # Examples
    /// See [`OpenOptions`].
    pub fn open_named_with(
        name: &str,
        kind: Kind,
        elem: TypeInfo,
        options: &OpenOptions,
    ) -> Result<Segment, SegmentError> {
        validate_name(name)?;
        // Checked private and held (see `named`) before anything in it is read.
        let file = named::open(name, &os_name(name), options)?;
        let (seg, fields) = Segment::open_file(file, Some(name))?;
        check_kind_and_type(name, &fields, kind, elem)?;
        Ok(seg)
    }

    /// Maps an existing segment file (named `given_name`, or a memfd received from another
    /// process) and validates its header, waiting briefly for an unfinished creator.
    pub(crate) fn open_file(
        file: File,
        given_name: Option<&str>,
    ) -> Result<(Segment, HeaderFields), SegmentError> {
        Segment::open_file_within(file, given_name, READY_WAIT)
    }

    /// [`open_file`](Segment::open_file), waiting at most `ready_wait` for an unfinished creator
    /// (the fuzz targets do not wait).
    pub(crate) fn open_file_within(
        file: File,
        given_name: Option<&str>,
        ready_wait: Duration,
    ) -> Result<(Segment, HeaderFields), SegmentError> {
        let name = given_name.unwrap_or(PASSED_LABEL);
        let header_len = PAYLOAD_OFFSET as u64;
        let started = Instant::now();
        loop {
            let size = file.metadata()?.len();
            let waited_out = started.elapsed() >= ready_wait;
            if size < header_len {
                if waited_out {
                    return Err(SegmentError::Truncated {
                        name: name.to_owned(),
                        size,
                        needed: header_len,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let size = usize::try_from(size).map_err(|_| corrupt(name, "size exceeds memory"))?;
            let map = MmapOptions::new().len(size).map_raw(&file)?;
            let header = header_of(&map);
            // A named segment's creator holds INIT_BYTE until ready: unheld and not ready means
            // it died before finishing (no point waiting for it).
            let creator_gone = || given_name.is_some() && !named::initialising(&file);
            match header.ready.load(Ordering::Acquire) {
                READY => {}
                0 if !waited_out && !creator_gone() => {
                    drop(map);
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                0 => {
                    let magic = read_fields(&map).magic;
                    return Err(if magic == MAGIC {
                        SegmentError::NotReady {
                            name: name.to_owned(),
                        }
                    } else {
                        corrupt(name, "not a shmproc segment (bad magic)")
                    });
                }
                _ => return Err(corrupt(name, "bad ready word")),
            }
            let fields = read_fields(&map);
            let payload_len = validate_fields(name, &fields, size as u64)?;
            let seg = Segment {
                map,
                file,
                name: given_name.map(str::to_owned),
                creator_pid: None,
                payload_len,
            };
            return Ok((seg, fields));
        }
    }

    fn map(
        file: File,
        name: Option<String>,
        creator_pid: Option<u32>,
        payload_len: usize,
    ) -> Result<Segment, SegmentError> {
        Ok(Segment {
            map: map_len(&file, payload_len)?,
            file,
            name,
            creator_pid,
            payload_len,
        })
    }

    fn initialise(
        &self,
        spec: &Spec,
        init: impl FnOnce(&Segment) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError> {
        let pid = sys::getpid();
        let fields = HeaderFields {
            magic: MAGIC,
            version: VERSION,
            kind: spec.kind as u32,
            elem_size: spec.elem.size,
            elem_align: spec.elem.align,
            payload_len: spec.payload_len as u64,
            creator_pid: pid,
            creator_tag: sys::start_tag(pid),
            type_name: spec.elem.stored_name(),
            type_hash: spec.elem.fingerprint(),
        };
        // SAFETY: the mapping is at least PAYLOAD_OFFSET bytes and page aligned, so the header
        // fits and is aligned; nobody reads the fields before `ready` is published below.
        unsafe { std::ptr::write_volatile(self.map.as_mut_ptr().cast::<HeaderFields>(), fields) };
        init(self)?;
        header_of(&self.map).ready.store(READY, Ordering::Release);
        Ok(())
    }

    /// The segment's name, `None` for an anonymous segment.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Bytes of payload.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The backing file (a memfd or `/dev/shm` file).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Keeps a named segment after its creator drops it (`shmproc clean` leaves it alone too).
    /// Remove it later with [`crate::remove`] or `shmproc rm`. No effect on anonymous segments.
    pub fn persist(&self) {
        header_of(&self.map)
            .flags
            .fetch_or(FLAG_PERSIST, Ordering::Relaxed);
    }

    /// A pointer to `count` elements of `U` at `offset` bytes into the payload, checked to lie
    /// inside the mapping and to be aligned.
    ///
    /// # Errors
    /// [`SegmentError::Corrupt`] when the range does not fit or is misaligned: offsets derived
    /// from shared memory can never reach outside the mapping.
    pub fn ptr<U>(&self, offset: usize, count: usize) -> Result<NonNull<U>, SegmentError> {
        let bytes = std::mem::size_of::<U>()
            .checked_mul(count)
            .and_then(|b| b.checked_add(offset));
        match bytes {
            Some(end) if end <= self.payload_len => {}
            _ => return Err(self.corrupt("payload range out of bounds")),
        }
        // SAFETY: offset + size_of::<U>() * count <= payload_len, so the pointer stays inside
        // the mapping, whose length is PAYLOAD_OFFSET + payload_len.
        let ptr = unsafe { self.map.as_mut_ptr().add(PAYLOAD_OFFSET + offset) };
        if ptr.align_offset(std::mem::align_of::<U>()) != 0 {
            return Err(self.corrupt("misaligned payload range"));
        }
        NonNull::new(ptr.cast::<U>()).ok_or_else(|| self.corrupt("null mapping"))
    }

    /// A shared reference to an all-atomic `U` at `offset` bytes into the payload.
    ///
    /// # Errors
    /// As for [`Segment::ptr`].
    pub fn atomic<U: AtomicShareable>(&self, offset: usize) -> Result<&U, SegmentError> {
        let ptr = self.ptr::<U>(offset, 1)?;
        // SAFETY: in bounds and aligned (checked by `ptr`), lives as long as `self`'s mapping;
        // U is all atomics and valid for every bit pattern, so shared access racing with other
        // processes is sound.
        Ok(unsafe { ptr.as_ref() })
    }

    fn corrupt(&self, reason: &str) -> SegmentError {
        corrupt(self.name.as_deref().unwrap_or("<anonymous>"), reason)
    }

    pub(crate) fn is_persistent(&self) -> bool {
        header_of(&self.map).flags.load(Ordering::Relaxed) & FLAG_PERSIST != 0
    }
}

fn total_len(payload_len: usize) -> Result<u64, SegmentError> {
    PAYLOAD_OFFSET
        .checked_add(payload_len)
        .filter(|n| *n <= isize::MAX as usize)
        .map(|n| n as u64)
        .ok_or_else(|| {
            SegmentError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "segment size overflows",
            ))
        })
}

/// Maps the header and `payload_len` bytes of `file`.
fn map_len(file: &File, payload_len: usize) -> std::io::Result<MmapRaw> {
    MmapOptions::new()
        .len(PAYLOAD_OFFSET + payload_len)
        .map_raw(file)
}

/// Allocates a new segment's memory now, so that a full `/dev/shm` is an error here, never a
/// SIGBUS at the first touch of a page.
fn reserve(file: &File, total: u64, name: Option<&str>) -> Result<(), SegmentError> {
    sys::reserve(file, total).map_err(|e| {
        if sys::is_out_of_space(&e) {
            SegmentError::NoSpace {
                name: name.map(str::to_owned),
                bytes: total,
                source: e,
            }
        } else {
            SegmentError::Io(e)
        }
    })
}

fn header_of(map: &MmapRaw) -> &RawHeader {
    debug_assert!(map.len() >= PAYLOAD_OFFSET);
    // SAFETY: every mapping we make is at least PAYLOAD_OFFSET (>= size_of RawHeader) bytes and
    // page aligned; we only touch the atomic fields through this reference, and the plain
    // fields only through volatile copies (`read_fields`), so peers writing them is no UB here.
    unsafe { &*map.as_ptr().cast::<RawHeader>() }
}

fn read_fields(map: &MmapRaw) -> HeaderFields {
    // SAFETY: in bounds and aligned as in `header_of`; HeaderFields is plain data valid for
    // every bit pattern, copied out with a volatile read.
    unsafe { std::ptr::read_volatile(map.as_ptr().cast::<HeaderFields>()) }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let (Some(name), Some(pid)) = (&self.name, self.creator_pid) {
            if pid == sys::getpid() && !self.is_persistent() {
                // Only if the name still refers to our file (it may have been removed and
                // taken by a new segment meanwhile).
                let _ = named::unlink_if_same(&os_name(name), &self.file);
            }
        }
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("payload_len", &self.payload_len)
            .finish_non_exhaustive()
    }
}
