//! Linux implementation of the platform seam.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// Directory where POSIX named shared memory lives.
pub const SHM_DIR: &str = "/dev/shm";

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// Creates an anonymous, sealable memory file of `len` bytes (close-on-exec).
pub fn memfd_create(debug_name: &str, len: u64) -> io::Result<File> {
    let name = cstring(debug_name)?;
    // SAFETY: `name` is a valid NUL-terminated string; flags are plain constants.
    let fd = cvt(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len)?;
    Ok(file)
}

/// Forbids any later size change of a memfd, so a peer can never shrink it under our mapping
/// (which would turn accesses into SIGBUS).
pub fn seal_size(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a valid fd owned by `file` with an integer argument.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(())
}

/// The seal that forbids shrinking a memfd (see [`seals`]).
pub const SEAL_SHRINK: i32 = libc::F_SEAL_SHRINK;

/// The seals set on a memfd (`F_GET_SEALS`); an error for files that cannot be sealed.
pub fn seals(file: &File) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a valid fd owned by `file`, no pointer arguments.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) })
}

/// `shm_open(O_CREAT | O_EXCL | O_RDWR, 0600)`.
pub fn shm_create(os_name: &str) -> io::Result<File> {
    shm_open(os_name, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR)
}

/// `shm_open(O_RDWR)` of an existing segment.
pub fn shm_open_existing(os_name: &str) -> io::Result<File> {
    shm_open(os_name, libc::O_RDWR)
}

fn shm_open(os_name: &str, flags: libc::c_int) -> io::Result<File> {
    let name = cstring(&format!("/{os_name}"))?;
    // SAFETY: valid C string; the returned fd is checked and then owned by the File.
    let fd = cvt(unsafe { libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Removes a named segment (`shm_unlink`).
pub fn shm_unlink(os_name: &str) -> io::Result<()> {
    let name = cstring(&format!("/{os_name}"))?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) })?;
    Ok(())
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
pub fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> io::Result<WaitOutcome> {
    futex_wait_at(word.as_ptr(), expected, timeout)
}

/// Like [`futex_wait`] on the low 32 bits of a 64-bit word (a futex is always 32 bits).
pub fn futex_wait_low(
    word: &AtomicU64,
    expected: u32,
    timeout: Option<Duration>,
) -> io::Result<WaitOutcome> {
    futex_wait_at(low_half(word), expected, timeout)
}

/// Wakes up to `n` waiters sleeping on `word` in any process.
pub fn futex_wake(word: &AtomicU32, n: u32) {
    futex_wake_at(word.as_ptr(), n);
}

/// Wakes up to `n` waiters sleeping on the low 32 bits of `word` (see [`futex_wait_low`]).
pub fn futex_wake_low(word: &AtomicU64, n: u32) {
    futex_wake_at(low_half(word), n);
}

fn low_half(word: &AtomicU64) -> *mut u32 {
    let base = word.as_ptr().cast::<u32>();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// `addr` comes from a reference to an atomic: valid, aligned, and only ever accessed
/// atomically, so the kernel's read races with nothing.
fn futex_wait_at(
    addr: *mut u32,
    expected: u32,
    timeout: Option<Duration>,
) -> io::Result<WaitOutcome> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT only reads the word at `addr` (the kernel checks the address) and the
    // timespec, which lives on our stack for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if ret == 0 {
        return Ok(WaitOutcome::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ETIMEDOUT) => Ok(WaitOutcome::TimedOut),
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(WaitOutcome::Woken),
        _ => Err(err),
    }
}

fn futex_wake_at(addr: *mut u32, n: u32) {
    let n = n.min(i32::MAX as u32);
    // SAFETY: FUTEX_WAKE does not access user memory beyond validating `addr`. A failure (a bad
    // address) cannot wake anyone, so there is nothing useful to report.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The kernel thread id of the calling thread.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    (unsafe { libc::gettid() }) as u32
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
        ProcState::Unknown => {
            // SAFETY: signal 0 only checks for existence and permission.
            let r = unsafe { libc::kill(id as libc::pid_t, 0) };
            r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }
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

/// Opens (creating it, mode 0600, if missing) the shared file `os_name` in `/dev/shm` as a new
/// open file description (close-on-exec, symlinks refused).
pub fn shm_open_or_create(os_name: &str) -> io::Result<File> {
    shm_open(os_name, libc::O_CREAT | libc::O_RDWR | libc::O_NOFOLLOW)
}

/// The effective user id of the caller.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn ofd_lock_request(
    fd: std::os::fd::BorrowedFd<'_>,
    cmd: libc::c_int,
    byte: u64,
) -> io::Result<libc::flock> {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid `flock` (plain integers).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte as libc::off_t;
    lock.l_len = 1;
    // SAFETY: fcntl with an OFD lock command and a pointer to a `flock` on our stack.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut lock) })?;
    Ok(lock)
}

/// Tries to take an open-file-description write lock on byte `byte` of `fd`'s file; `false` if
/// another open file description holds it. The kernel drops the lock when the last descriptor
/// of this description closes — in particular when its process dies.
pub fn ofd_try_lock(fd: std::os::fd::BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    match ofd_lock_request(fd, libc::F_OFD_SETLK, byte) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether an open file description other than `fd`'s holds a lock on byte `byte`.
pub fn ofd_is_locked(fd: std::os::fd::BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let lock = ofd_lock_request(fd, libc::F_OFD_GETLK, byte)?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// Closes descriptor `fd` (async-signal-safe: usable in an after-fork child handler).
pub fn close_raw(fd: i32) {
    // SAFETY: closing a descriptor number; the caller owns it (a copy inherited through fork).
    unsafe { libc::close(fd) };
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
/// through a mapping cannot fail with SIGBUS on a full tmpfs; an error if there is no room.
pub fn reserve(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fallocate on a valid descriptor owned by `file`, integer arguments only.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}
