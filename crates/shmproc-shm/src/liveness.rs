//! Process liveness the kernel keeps for us: no pid lookups, so it holds across PID namespaces
//! and under `/proc` mounted with `hidepid`.
//!
//! Every process that needs an identity takes a *slot* in one liveness file per user
//! (`/dev/shm/shmproc-live-<uid>`, shared by every process that shares `/dev/shm`, containers
//! included) by taking an open-file-description (OFD) lock on the slot's byte. The kernel drops
//! that lock when the process is gone — exit, SIGKILL, any death — because the process held the
//! only descriptor of that open file description. Taking a slot bumps its generation counter in
//! the file, so a slot that was reused by another process is never mistaken for its old owner.
//!
//! A process's **token** is `slot << 15 | generation` (31 bits, never 0). A token is alive while
//! its slot's generation is unchanged and the slot's byte is locked.
//!
//! | event | what happens to the token |
//! |---|---|
//! | first use | a free slot is locked, its generation bumped |
//! | `fork` | the child closes its inherited copy of the descriptor (an at-fork handler) and takes its own slot on first use |
//! | `exec` | the descriptor is close-on-exec: the new program takes its own slot |
//! | exit, SIGKILL, any death | the kernel drops the lock: dead at once |
//!
//! Limits: the liveness file must not be deleted while shmproc processes run (`shmproc clean`
//! never does); processes sharing objects must run as the same user (named segments are 0600
//! anyway). Where the file cannot be used (no writable `/dev/shm`), the process gets an
//! *untracked* token that is always considered alive: a dead owner is then never detected,
//! but a live one is never misjudged.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::sys;

/// Slots in the liveness file: processes of one user that can hold an identity at once.
pub const LIVENESS_SLOTS: usize = 1 << 16;
const GEN_BITS: u32 = 15;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// The last slot is never locked: tokens in it are *untracked* (always alive).
const UNTRACKED_SLOT: u32 = LIVENESS_SLOTS as u32 - 1;
const MAGIC: u64 = u64::from_le_bytes(*b"shmpLIV1");

/// The liveness file's layout (mapped shared; only atomics).
#[repr(C)]
struct Table {
    magic: AtomicU64,
    /// Where the next slot search starts: round robin, so a slot is reused as rarely as possible
    /// (its 15-bit generation wraps only after 2^15 reuses).
    next: AtomicU32,
    _reserved: AtomicU32,
    gens: [AtomicU32; LIVENESS_SLOTS],
}

static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
/// This process's token, 0 until taken (reset in a forked child).
static TOKEN: AtomicU32 = AtomicU32::new(0);
/// This process's identity (pid << 32 | token), 0 until computed (reset in a forked child).
static IDENTITY: AtomicU64 = AtomicU64::new(0);
/// The descriptor holding this process's slot lock, -1 if none.
static FD: AtomicI32 = AtomicI32::new(-1);
/// Whether the fork handler is registered (see [`crate::register_once`]).
static FORK_HOOK: AtomicU32 = AtomicU32::new(0);

fn file_name() -> String {
    format!("shmproc-live-{}", sys::geteuid())
}

extern "C" fn after_fork_child() {
    // The inherited descriptor shares the parent's open file description: keeping it would keep
    // the parent's slot locked (alive) as long as this child lives.
    let fd = FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        sys::close_raw(fd);
    }
    TOKEN.store(0, Ordering::Relaxed);
    IDENTITY.store(0, Ordering::Relaxed);
}

/// The mapped table, mapping it on first use; `None` if the file cannot be used.
fn table() -> Option<&'static Table> {
    let p = TABLE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a non-null TABLE is a mapping of a whole Table that is never unmapped.
        return Some(unsafe { &*p });
    }
    let fresh = map_table().ok()?;
    match TABLE.compare_exchange(
        std::ptr::null_mut(),
        fresh.as_ptr(),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: as above (we just published our own mapping).
        Ok(_) => Some(unsafe { &*fresh.as_ptr() }),
        Err(other) => {
            // Another thread won: its mapping is the same file; ours stays mapped (a few
            // hundred KiB of address space, once per race).
            // SAFETY: as above.
            Some(unsafe { &*other })
        }
    }
}

fn open_file() -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    let file = sys::shm_open_or_create(&file_name())?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != sys::geteuid() || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the liveness file is not a private file of this user",
        ));
    }
    let want = std::mem::size_of::<Table>() as u64;
    if meta.len() < want {
        file.set_len(want)?; // only ever grows: a shrink would turn our accesses into SIGBUS
    }
    // Pages allocated now, not on first touch: a full /dev/shm (a container's small one) is
    // an error here (the process then goes untracked), never a SIGBUS later.
    sys::reserve(&file, want)?;
    Ok(file)
}

fn map_table() -> std::io::Result<NonNull<Table>> {
    let file = open_file()?;
    let map = memmap2::MmapOptions::new()
        .len(std::mem::size_of::<Table>())
        .map_raw(&file)?;
    let ptr = NonNull::new(map.as_mut_ptr().cast::<Table>())
        .ok_or_else(|| std::io::Error::other("null mapping"))?;
    std::mem::forget(map); // mapped for the rest of the process's life
                           // SAFETY: the mapping holds a whole, page-aligned Table of atomics.
    let table = unsafe { ptr.as_ref() };
    match table
        .magic
        .compare_exchange(0, MAGIC, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => Ok(ptr),
        Err(m) if m == MAGIC => Ok(ptr),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the liveness file has an unknown layout",
        )),
    }
}

/// This process's token (taking a slot on first use).
#[inline]
pub fn current_token() -> u32 {
    let t = TOKEN.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    take_slot()
}

/// Registers the fork handler (waiting for another thread that is doing so). Nobody gets a
/// token before it exists: every other fork handler of shmproc takes a token first, so this
/// one is registered before them and runs first in a child (handlers run in registration
/// order) — they must see the child's identity, not the parent's.
fn fork_hook_registered() -> bool {
    crate::hooks::register_once(&FORK_HOOK, || sys::at_fork_child(after_fork_child).is_ok())
}

#[cold]
fn take_slot() -> u32 {
    if !fork_hook_registered() {
        // Cannot learn about forks (unsupported targets only): stay untracked.
        return untracked();
    }
    let token = try_take_slot().unwrap_or_else(untracked);
    match TOKEN.compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => token,
        // Another thread of this process took one first: use it (ours is released with its
        // descriptor, which `try_take_slot` only stored if it won).
        Err(theirs) => theirs,
    }
}

fn try_take_slot() -> Option<u32> {
    let table = table()?;
    let file = open_file().ok()?;
    let start = table.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..UNTRACKED_SLOT {
        let slot = start.wrapping_add(i) % UNTRACKED_SLOT;
        if !sys::ofd_try_lock(file.as_fd(), u64::from(slot)).ok()? {
            continue;
        }
        let gen = loop {
            let g = table.gens[slot as usize]
                .fetch_add(1, Ordering::SeqCst)
                .wrapping_add(1);
            if g & GEN_MASK != 0 {
                break g & GEN_MASK;
            }
        };
        if FD
            .compare_exchange(-1, file.as_raw_fd(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None; // another thread of ours holds a slot already; ours is dropped
        }
        let _ = file.into_raw_fd(); // owned by FD now
        return Some(slot << GEN_BITS | gen);
    }
    None
}

fn untracked() -> u32 {
    UNTRACKED_SLOT << GEN_BITS | (sys::getpid() & GEN_MASK).max(1)
}

/// Whether the process with `token` is still alive. Never `false` for a live process,
/// whatever PID namespace it runs in; `false` within one check of a death (a slot being
/// retaken right at that moment can make one check say `true`).
pub fn token_alive(token: u32) -> bool {
    if token == 0 {
        return false;
    }
    let (slot, gen) = (token >> GEN_BITS, token & GEN_MASK);
    if slot >= UNTRACKED_SLOT || token == current_token() {
        return true;
    }
    let Some(table) = table() else {
        return true;
    };
    let seen = |t: &Table| t.gens[slot as usize].load(Ordering::SeqCst) & GEN_MASK;
    if seen(table) != gen {
        return false; // the slot was taken again: its old owner is gone
    }
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 {
        return true;
    }
    // SAFETY: FD is our own open descriptor (closed only in a forked child's handler, before
    // any other code runs there).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    match sys::ofd_is_locked(fd, u64::from(slot)) {
        Ok(locked) => locked && seen(table) == gen,
        Err(_) => true,
    }
}

/// Whether `token` is untracked (always alive: see the module docs).
pub fn is_untracked(token: u32) -> bool {
    token >> GEN_BITS >= UNTRACKED_SLOT
}

/// Marks an identity made from a pid (see [`identity_of_pid`]).
const PID_BASED: u32 = 1 << 31;

/// The calling process's identity: its pid (high 32 bits, for messages only) and its token (low
/// 32 bits). Two processes never share an identity while both live.
#[inline]
pub fn current_identity() -> u64 {
    let id = IDENTITY.load(Ordering::Relaxed);
    if id != 0 {
        return id;
    }
    // The token first: taking it registers the fork handler that resets IDENTITY.
    let id = u64::from(current_token()) | u64::from(sys::getpid()) << 32;
    IDENTITY.store(id, Ordering::Relaxed);
    id
}

/// An identity for process `pid` of this PID namespace made from its pid and start time (for a
/// process that has no token we know, e.g. a child being handed something). Checked through
/// `/proc` by [`identity_alive`]: only meaningful to processes of this PID namespace.
pub fn identity_of_pid(pid: u32) -> u64 {
    u64::from(pid) << 32 | u64::from(PID_BASED | (sys::start_tag(pid) & !PID_BASED))
}

/// The pid recorded in an identity (for messages).
pub fn pid_of(identity: u64) -> u32 {
    (identity >> 32) as u32
}

/// Whether the process of `identity` (from [`current_identity`] or [`identity_of_pid`]) is
/// alive; 0 is not.
pub fn identity_alive(identity: u64) -> bool {
    let low = identity as u32;
    if low & PID_BASED != 0 {
        let tag = low & !PID_BASED;
        return sys::start_tag(pid_of(identity)) & !PID_BASED == tag
            && sys::is_alive(pid_of(identity), 0);
    }
    token_alive(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_token_is_alive_and_a_stale_generation_is_dead() {
        let me = current_token();
        assert_ne!(me, 0);
        assert!(token_alive(me));
        if is_untracked(me) {
            return; // no usable /dev/shm here
        }
        let (slot, gen) = (me >> GEN_BITS, me & GEN_MASK);
        let older = slot << GEN_BITS | ((gen + GEN_MASK - 1) % GEN_MASK).max(1);
        if older != me {
            assert!(!token_alive(older), "an old generation of our own slot");
        }
        assert!(!token_alive(0));
    }
}
