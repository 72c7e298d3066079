//! The files of named segments in `/dev/shm`: who holds one, who may open one, and when one
//! may be removed.
//!
//! Every process that maps a named segment holds an open-file-description (OFD) *read* lock on
//! byte 0 of its file ([`HOLD_BYTE`]), through its own open file description, for as long as it
//! has the segment mapped; the creator also holds a *write* lock on byte 1 ([`INIT_BYTE`]) until
//! it has published the segment as ready. The kernel drops a lock when the last descriptor of its
//! description closes — drop, exit, any death — so "does anyone still use this segment?" is one
//! `F_OFD_GETLK`, with no pid lookups: the answer holds across PID namespaces and under
//! `hidepid`. `clean` takes a write lock on both bytes itself before it unlinks, so a process
//! opening the segment at that moment either keeps it (`clean` cannot lock and leaves it) or
//! finds it gone (its own lock comes after the unlink, and it checks the name still refers to
//! its file).
//!
//! | who | holds | how it leaves |
//! |---|---|---|
//! | creator, initialising | read lock on byte 0, write lock on byte 1 | publishing `ready` releases byte 1 |
//! | creator or opener | read lock on byte 0 | dropping its last handle closes the description; exit; SIGKILL; any death |
//! | forked child | the parent's description (inherited descriptor): held while either lives | its exit; `exec` (close-on-exec) |
//! | spawned process, `Pool` worker | its own description (handles travel by name) | as an opener |
//! | `clean`, deciding | write lock on bytes 0–1, taken only when nobody holds either | unlinking (inode checked), closing |
//!
//! Unlinking by name (the creator's drop, [`remove`](crate::remove), [`clean`](crate::clean))
//! first checks that the name still refers to the same file (device and inode), so it never
//! removes someone else's new segment that took the name.
//!
//! Opening refuses a file that is not private to the caller — owned by another user, or with
//! group or other permission bits — unless [`OpenOptions::allow_group`] opts in to sharing with
//! the file's group (mode 0660 on creation; others never).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::sys::{self, LockKind};
use crate::SegmentError;

/// Byte every holder read-locks.
pub(crate) const HOLD_BYTE: u64 = 0;
/// Byte the creator write-locks while it initialises.
pub(crate) const INIT_BYTE: u64 = 1;
/// How long create/open retry while `clean` is deciding about the same name.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

/// How a named segment is shared: privately (the default) or with a group.
///
/// # Examples
/// ```
/// use shmproc_shm::{Kind, OpenOptions, Segment, Spec, TypeInfo};
///
/// let group = OpenOptions::new().allow_group(true);
/// let spec = Spec { kind: Kind::Raw, elem: TypeInfo::none(), payload_len: 64 };
/// # let name = format!("doc-group-{}", std::process::id());
/// let seg = Segment::create_named_with(&name, &spec, &group, |_| Ok(()))?; // mode 0660
/// // A private open refuses a group-accessible file; the opt-in accepts it.
/// assert!(Segment::open_named(&name, Kind::Raw, TypeInfo::none()).is_err());
/// let again = Segment::open_named_with(&name, Kind::Raw, TypeInfo::none(), &group)?;
/// # drop((seg, again));
/// # Ok::<(), shmproc_shm::SegmentError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    allow_group: bool,
}

impl OpenOptions {
    /// Private sharing: the file must belong to the caller's effective user and have no group
    /// or other permission bits; created files get mode 0600.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// With `true`, sharing with the file's group: `open` also accepts a file with group
    /// permission bits, and one owned by another user of a group the caller belongs to;
    /// `create` makes the file mode 0660. Files that others (outside the group) may access
    /// are refused either way.
    pub fn allow_group(mut self, allow: bool) -> OpenOptions {
        self.allow_group = allow;
        self
    }

    /// Permission bits of a file created with these options.
    fn mode(&self) -> u32 {
        if self.allow_group {
            0o660
        } else {
            0o600
        }
    }
}

/// Creates `os_name` (failing if it exists) and takes the creator's locks: read on
/// [`HOLD_BYTE`], write on [`INIT_BYTE`] until [`initialised`].
pub(crate) fn create(name: &str, os_name: &str, opts: &OpenOptions) -> Result<File, SegmentError> {
    let deadline = Instant::now() + CLAIM_WAIT;
    loop {
        let file = sys::shm_create_mode(os_name, opts.mode()).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => SegmentError::AlreadyExists {
                name: name.to_owned(),
            },
            _ => SegmentError::Io(e),
        })?;
        // Whoever locks byte 1 first wins: `clean` claims bytes 0-1 only when both are free,
        // and once we hold byte 1 it cannot.
        let take = |file: &File| -> io::Result<bool> {
            Ok(lock(file, INIT_BYTE, LockKind::Exclusive)?
                && lock(file, HOLD_BYTE, LockKind::Shared)?)
        };
        if let Some(file) = settle(name, os_name, file, deadline, take)? {
            return Ok(file);
        }
        // `clean` found the new, still empty file unheld and removed it: create it again.
        if Instant::now() >= deadline {
            return Err(busy(name));
        }
    }
}

/// Releases the creator's initialisation lock (after it published `ready`).
pub(crate) fn initialised(file: &File) {
    // Failing to unlock a lock we hold cannot happen; if it did, the segment would merely look
    // "initialising" to `ls` until the creator drops it.
    let _ = sys::ofd_unlock_range(file.as_fd(), INIT_BYTE, 1);
}

/// Opens `os_name`, checks it is private to the caller (or to its group, with the opt-in) and
/// takes a holder's read lock on [`HOLD_BYTE`].
pub(crate) fn open(name: &str, os_name: &str, opts: &OpenOptions) -> Result<File, SegmentError> {
    let deadline = Instant::now() + CLAIM_WAIT;
    loop {
        let file = sys::shm_open_existing(os_name).map_err(|e| not_found_or(name, e))?;
        check_private(name, &file, opts)?;
        let take = |file: &File| lock(file, HOLD_BYTE, LockKind::Shared);
        if let Some(file) = settle(name, os_name, file, deadline, take)? {
            return Ok(file);
        }
        // Removed by `clean` or `remove` meanwhile: open whatever has the name now (if any).
        if Instant::now() >= deadline {
            return Err(busy(name));
        }
    }
}

/// Takes a lock of `kind` on byte `byte`; `false` if `clean` holds it. Where the kernel or the
/// file system has no OFD locks (Linux before 3.15, some sandboxes) the segment works unheld:
/// `clean` cannot tell it is in use there either, and leaves it alone.
fn lock(file: &File, byte: u64, kind: LockKind) -> io::Result<bool> {
    match sys::ofd_try_lock_range(file.as_fd(), byte, 1, kind) {
        Err(e) if sys::is_unsupported(&e) => Ok(true),
        held => held,
    }
}

/// Takes locks on `file` with `take` while the name still refers to it. `Some(file)` once they
/// are held; `None` when the name no longer refers to `file`. While `take` fails, `clean` is
/// deciding about the file (it holds bytes 0-1 for an instant): retry until `deadline`.
fn settle(
    name: &str,
    os_name: &str,
    file: File,
    deadline: Instant,
    take: impl Fn(&File) -> io::Result<bool>,
) -> Result<Option<File>, SegmentError> {
    loop {
        let held = take(&file)?;
        match sys::shm_is_same_file(os_name, &file) {
            Ok(true) if held => return Ok(Some(file)),
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SegmentError::Io(e)),
        }
        if Instant::now() >= deadline {
            return Err(busy(name));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether another open file description still holds the creator's initialisation lock.
pub(crate) fn initialising(file: &File) -> bool {
    sys::ofd_is_locked_range(file.as_fd(), INIT_BYTE, 1).unwrap_or(true)
}

/// Whether any process holds the segment (a lock on byte 0 or 1 by another description).
pub(crate) fn in_use(file: &File) -> io::Result<bool> {
    sys::ofd_is_locked_range(file.as_fd(), HOLD_BYTE, 2)
}

/// For `clean`: takes a write lock on both bytes if nobody holds either, so nobody can start
/// holding the segment until `file` is closed; `false` if someone holds it.
pub(crate) fn claim(file: &File) -> io::Result<bool> {
    sys::ofd_try_lock_range(file.as_fd(), HOLD_BYTE, 2, LockKind::Exclusive)
}

/// Refuses a file that is not a regular file private to the caller (see [`OpenOptions`]).
pub(crate) fn check_private(
    name: &str,
    file: &File,
    opts: &OpenOptions,
) -> Result<(), SegmentError> {
    let meta = file.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    let mine = meta.uid() == sys::geteuid();
    let reason = if !meta.file_type().is_file() {
        Some("it is not a regular file")
    } else if !opts.allow_group && !mine {
        Some("it belongs to another user")
    } else if !opts.allow_group && mode & 0o077 != 0 {
        Some("its group or other users may read or write it")
    } else if opts.allow_group && !mine && !sys::in_group(meta.gid()) {
        Some("it belongs to another user, of a group you are not in")
    } else if mode & 0o007 != 0 {
        Some("other users may read or write it")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(SegmentError::NotPrivate {
            name: name.to_owned(),
            owner: meta.uid(),
            group: meta.gid(),
            mode,
            reason,
        }),
    }
}

/// Removes the name if it still refers to `file` (see the module docs); `false` if not.
pub(crate) fn unlink_if_same(os_name: &str, file: &File) -> io::Result<bool> {
    sys::shm_unlink_if_same(os_name, file)
}

fn not_found_or(name: &str, e: io::Error) -> SegmentError {
    match e.kind() {
        io::ErrorKind::NotFound => SegmentError::NotFound {
            name: name.to_owned(),
        },
        _ => SegmentError::Io(e),
    }
}

fn busy(name: &str) -> SegmentError {
    SegmentError::Io(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "shared segment {name:?} stayed locked by a process removing it (`shmproc clean`) \
             for {CLAIM_WAIT:?}"
        ),
    ))
}
