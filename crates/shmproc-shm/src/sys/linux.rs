//! Linux implementation of the platform seam.
//!
//! Every call goes through `rustix` where it has one (memfd and seals, opening and unlinking in
//! `/dev/shm`, futex, ids, `kill(pid, 0)`). Raw `libc` remains only for what rustix lacks:
//! byte-range open-file-description locks (rustix's `fcntl_lock` locks whole files and cannot
//! query), `posix_fallocate` (rustix has `fallocate(2)` only, without glibc's fallback for file
//! systems that lack it), `pthread_atfork` and `atexit`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::thread::futex;

/// Directory where POSIX named shared memory lives.
pub const SHM_DIR: &str = "/dev/shm";

fn shm_path(os_name: &str) -> String {
    format!("{SHM_DIR}/{os_name}")
}

/// Creates an anonymous, sealable memory file of `len` bytes (close-on-exec).
pub fn memfd_create(debug_name: &str, len: u64) -> io::Result<File> {
    let fd = rustix::fs::memfd_create(debug_name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let file = File::from(fd);
    file.set_len(len)?;
    Ok(file)
}

/// Forbids any later size change of a memfd, so a peer can never shrink it under our mapping
/// (which would turn accesses into SIGBUS).
pub fn seal_size(file: &File) -> io::Result<()> {
    let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    Ok(rustix::fs::fcntl_add_seals(file, seals)?)
}

/// The seal that forbids shrinking a memfd (see [`seals`]).
pub const SEAL_SHRINK: i32 = SealFlags::SHRINK.bits() as i32;

/// The seals set on a memfd (`F_GET_SEALS`); an error for files that cannot be sealed.
pub fn seals(file: &File) -> io::Result<i32> {
    Ok(rustix::fs::fcntl_get_seals(file)?.bits() as i32)
}

/// `shm_open(O_CREAT | O_EXCL | O_RDWR, 0600)`.
pub fn shm_create(os_name: &str) -> io::Result<File> {
    shm_create_mode(os_name, 0o600)
}

/// Creates the shared file `os_name` (fails if it exists) with exactly the permission bits
/// `mode`, whatever the umask.
pub fn shm_create_mode(os_name: &str, mode: u32) -> io::Result<File> {
    let file = shm_open(os_name, OFlags::CREATE | OFlags::EXCL | OFlags::RDWR, mode)?;
    if let Err(e) = rustix::fs::fchmod(&file, Mode::from_bits_truncate(mode)) {
        let _ = shm_unlink_if_same(os_name, &file);
        return Err(e.into());
    }
    Ok(file)
}

/// `shm_open(O_RDWR)` of an existing segment (symlinks refused).
pub fn shm_open_existing(os_name: &str) -> io::Result<File> {
    shm_open(os_name, OFlags::RDWR, 0)
}

/// Opens (creating it, mode 0600, if missing) the shared file `os_name` in `/dev/shm` as a new
/// open file description (close-on-exec, symlinks refused).
pub fn shm_open_or_create(os_name: &str) -> io::Result<File> {
    shm_open(os_name, OFlags::CREATE | OFlags::RDWR, 0o600)
}

/// `shm_open` as glibc does it (a file in [`SHM_DIR`], close-on-exec, `O_NOFOLLOW`):
/// `rustix::shm::open` would not refuse a symlink planted under the name.
fn shm_open(os_name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::open(shm_path(os_name), flags, Mode::from_bits_truncate(mode))?;
    Ok(File::from(fd))
}

/// Removes a named segment (`shm_unlink`), whatever file the name refers to now.
pub fn shm_unlink(os_name: &str) -> io::Result<()> {
    Ok(rustix::shm::unlink(os_name)?)
}

/// Whether the name `os_name` refers to `file` itself (same device and inode; a symlink never
/// does). A `NotFound` error when the name is gone.
pub fn shm_is_same_file(os_name: &str, file: &File) -> io::Result<bool> {
    let ours = file.metadata()?;
    let now = std::fs::symlink_metadata(shm_path(os_name))?;
    Ok(ours.dev() == now.dev() && ours.ino() == now.ino())
}

/// Removes the name `os_name` only if it still refers to `file`: never someone else's new file
/// that took the name meanwhile. `Ok(false)` when the name refers to another file.
pub fn shm_unlink_if_same(os_name: &str, file: &File) -> io::Result<bool> {
    if !shm_is_same_file(os_name, file)? {
        return Ok(false);
    }
    shm_unlink(os_name)?;
    Ok(true)
}

/// Why a futex wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken, interrupted, or the word no longer held the expected value.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}

/// Sleeps while `word` equals `expected` (process-shared futex), at most `timeout` (monotonic
/// clock) if given.
#[inline]
pub fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> io::Result<WaitOutcome> {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as futex::Secs,
        tv_nsec: d.subsec_nanos() as futex::Nsecs,
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Ok(()) | Err(Errno::AGAIN | Errno::INTR) => Ok(WaitOutcome::Woken),
        Err(Errno::TIMEDOUT) => Ok(WaitOutcome::TimedOut),
        Err(e) => Err(e.into()),
    }
}

/// Like [`futex_wait`] on the low 32 bits of a 64-bit word (a futex is always 32 bits).
#[inline]
pub fn futex_wait_low(
    word: &AtomicU64,
    expected: u32,
    timeout: Option<Duration>,
) -> io::Result<WaitOutcome> {
    futex_wait(low_half(word), expected, timeout)
}

/// Wakes up to `n` waiters sleeping on `word` in any process.
#[inline]
pub fn futex_wake(word: &AtomicU32, n: u32) {
    // A failure (a bad address) cannot wake anyone, so there is nothing useful to report.
    let _ = futex::wake(word, futex::Flags::empty(), n.min(i32::MAX as u32));
}

/// Wakes up to `n` waiters sleeping on the low 32 bits of `word` (see [`futex_wait_low`]).
#[inline]
pub fn futex_wake_low(word: &AtomicU64, n: u32) {
    futex_wake(low_half(word), n);
}

/// The futex address of `word`'s low 32 bits.
#[inline]
fn low_half(word: &AtomicU64) -> &AtomicU32 {
    let base = word.as_ptr().cast::<AtomicU32>();
    let low = if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    };
    // SAFETY: `low` is 4 bytes inside `word`, 4-aligned (an AtomicU64 is 8-aligned) and valid
    // as long as `word`. The reference is only handed to the kernel as a futex address: no Rust
    // code reads or writes through it, so there is no mixed-size atomic access.
    unsafe { &*low }
}

/// The kernel thread id of the calling thread.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_pid() as u32
}

/// The process id of the caller.
pub fn getpid() -> u32 {
    std::process::id()
}

/// What `/proc/<id>/stat` says about a thread or process.
enum ProcState {
    Gone,
    Zombie,
    Running { start_time: u64 },
    Unknown,
}

fn proc_state(id: u32) -> ProcState {
    let text = match std::fs::read_to_string(format!("/proc/{id}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ProcState::Gone,
        Err(_) => return ProcState::Unknown,
    };
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return ProcState::Unknown;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("?");
    if state == "Z" || state == "X" || state == "x" {
        return ProcState::Zombie;
    }
    // Field 22 of stat is the start time; we are at field 3 now.
    match fields.nth(18).and_then(|f| f.parse().ok()) {
        Some(start_time) => ProcState::Running { start_time },
        None => ProcState::Unknown,
    }
}

/// A 32-bit tag identifying this incarnation of thread/process `id` (its start time in clock
/// ticks since boot, truncated); 0 when `/proc` cannot tell.
pub fn start_tag(id: u32) -> u32 {
    match proc_state(id) {
        ProcState::Running { start_time } => start_time as u32,
        _ => 0,
    }
}

/// Whether thread/process `id` whose [`start_tag`] was `tag` still runs. A recycled id (a
/// different start time) and a zombie count as dead. When `/proc` cannot tell, falls back to
/// `kill(id, 0)`, erring towards "alive" so a live owner is never declared dead.
pub fn is_alive(id: u32, tag: u32) -> bool {
    match proc_state(id) {
        ProcState::Gone | ProcState::Zombie => false,
        ProcState::Running { start_time } => tag == 0 || start_time as u32 == tag,
        ProcState::Unknown => match rustix::process::Pid::from_raw(id as i32) {
            Some(pid) => rustix::process::test_kill_process(pid) != Err(Errno::SRCH),
            None => true,
        },
    }
}

/// Registers `child` to run in the child after every `fork()` (libc's `pthread_atfork`).
pub fn at_fork_child(child: extern "C" fn()) -> io::Result<()> {
    // SAFETY: registering a handler that is a valid `extern "C" fn` for the program's lifetime.
    let r = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Registers handlers that run around every `fork()` (libc's `pthread_atfork`): `prepare` in the
/// parent before it forks, `parent` in the parent afterwards (also when `fork` failed), `child`
/// in the new child.
pub fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: registering handlers that are valid `extern "C" fn`s for the program's lifetime.
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// The effective user id of the caller.
pub fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether the caller belongs to group `gid` (its effective or a supplementary group).
pub fn in_group(gid: u32) -> bool {
    rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// The mode of an open-file-description lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A read lock: any number of open file descriptions may hold one on the same bytes.
    Shared,
    /// A write lock: excludes every other lock on the same bytes.
    Exclusive,
}

/// One `fcntl` OFD lock request of type `l_type` on bytes `start..start + len`.
fn ofd_lock_request(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    l_type: libc::c_int,
    start: u64,
    len: u64,
) -> io::Result<libc::flock> {
    let too_far = || io::Error::new(io::ErrorKind::InvalidInput, "lock range too large");
    // SAFETY: all-zero is a valid `flock` (plain integers).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = libc::off_t::try_from(start).map_err(|_| too_far())?;
    lock.l_len = libc::off_t::try_from(len).map_err(|_| too_far())?;
    // SAFETY: fcntl with an OFD lock command and a pointer to a `flock` on our stack.
    if unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut lock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock)
}

/// Tries to take an open-file-description lock of `kind` on bytes `start..start + len` of
/// `fd`'s file; `false` if another open file description holds a conflicting one. The kernel
/// drops the lock when the last descriptor of this description closes — in particular when its
/// process dies. Taking a lock over one this description holds converts it.
pub fn ofd_try_lock_range(
    fd: BorrowedFd<'_>,
    start: u64,
    len: u64,
    kind: LockKind,
) -> io::Result<bool> {
    let l_type = match kind {
        LockKind::Shared => libc::F_RDLCK,
        LockKind::Exclusive => libc::F_WRLCK,
    };
    match ofd_lock_request(fd, libc::F_OFD_SETLK, l_type, start, len) {
        Ok(_) => Ok(true),
        Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::AGAIN | Errno::ACCESS)) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Releases this open file description's locks on bytes `start..start + len`.
pub fn ofd_unlock_range(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<()> {
    ofd_lock_request(fd, libc::F_OFD_SETLK, libc::F_UNLCK, start, len).map(drop)
}

/// Whether an open file description other than `fd`'s holds any lock on bytes
/// `start..start + len`.
pub fn ofd_is_locked_range(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<bool> {
    let lock = ofd_lock_request(fd, libc::F_OFD_GETLK, libc::F_WRLCK, start, len)?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// Tries to take an open-file-description write lock on byte `byte` of `fd`'s file; `false` if
/// another open file description holds it (see [`ofd_try_lock_range`]).
pub fn ofd_try_lock(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    ofd_try_lock_range(fd, byte, 1, LockKind::Exclusive)
}

/// Whether an open file description other than `fd`'s holds a lock on byte `byte`.
pub fn ofd_is_locked(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    ofd_is_locked_range(fd, byte, 1)
}

/// Closes descriptor `fd` (async-signal-safe: usable in an after-fork child handler).
pub fn close_raw(fd: i32) {
    // SAFETY: closing a descriptor number; the caller owns it (a copy inherited through fork)
    // and nothing uses the number afterwards.
    unsafe { rustix::io::close(fd) };
}

/// Whether thread `tid` of the calling process still exists (`/proc/self/task`); `true` when
/// `/proc` cannot tell.
pub fn thread_exists(tid: u32) -> bool {
    match std::fs::metadata(format!("/proc/self/task/{tid}")) {
        Ok(_) => true,
        Err(e) => {
            e.kind() != io::ErrorKind::NotFound || std::fs::metadata("/proc/self/task").is_err()
        }
    }
}

/// Registers `f` to run when the process exits through `exit` (libc's `atexit`): returning
/// from `main` and `std::process::exit` do, `_exit` and signals do not.
pub fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: registering a valid `extern "C" fn` that lives for the whole program.
    if unsafe { libc::atexit(f) } == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit refused the handler"))
    }
}

/// Allocates the first `len` bytes of `file` now (`posix_fallocate`), so that touching them later
/// through a mapping cannot fail with SIGBUS on a full tmpfs; an error (`ENOSPC`) if there is no
/// room.
pub fn reserve(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: posix_fallocate on a valid descriptor owned by `file`, integer arguments only.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Whether `e` says there is no room: the file system is full (`ENOSPC`), memory is exhausted
/// (`ENOMEM`) or the size exceeds a limit (`EFBIG`).
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::NOSPC | Errno::NOMEM | Errno::FBIG)
    )
}

/// Whether `e` says the call is not supported here (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`, `ENOLCK`):
/// e.g. OFD locks before Linux 3.15 or in a sandbox that lacks them.
pub fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::NOLCK)
    )
}
