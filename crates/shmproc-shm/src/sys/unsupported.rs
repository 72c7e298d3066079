//! Stubs for targets shmproc does not support yet: everything fails with `Unsupported`.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// Directory where POSIX named shared memory lives.
pub const SHM_DIR: &str = "/dev/shm";

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "shmproc supports only Linux so far",
    ))
}

/// Unsupported on this target.
pub fn memfd_create(_debug_name: &str, _len: u64) -> io::Result<File> {
    unsupported()
}
/// Unsupported on this target.
pub fn seal_size(_file: &File) -> io::Result<()> {
    unsupported()
}
/// The seal that forbids shrinking a memfd.
pub const SEAL_SHRINK: i32 = 1;
/// Unsupported on this target.
pub fn seals(_file: &File) -> io::Result<i32> {
    unsupported()
}
/// Unsupported on this target.
pub fn shm_create(_os_name: &str) -> io::Result<File> {
    unsupported()
}
/// Unsupported on this target.
pub fn shm_create_mode(_os_name: &str, _mode: u32) -> io::Result<File> {
    unsupported()
}
/// Unsupported on this target.
pub fn shm_is_same_file(_os_name: &str, _file: &File) -> io::Result<bool> {
    unsupported()
}
/// Unsupported on this target.
pub fn shm_unlink_if_same(_os_name: &str, _file: &File) -> io::Result<bool> {
    unsupported()
}
/// Unsupported on this target.
pub fn shm_open_existing(_os_name: &str) -> io::Result<File> {
    unsupported()
}
/// Unsupported on this target.
pub fn shm_unlink(_os_name: &str) -> io::Result<()> {
    unsupported()
}
/// Why a futex wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken, interrupted, or the word no longer held the expected value.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}
/// Unsupported on this target.
pub fn futex_wait(_: &AtomicU32, _: u32, _: Option<Duration>) -> io::Result<WaitOutcome> {
    unsupported()
}
/// Unsupported on this target.
pub fn futex_wait_low(_: &AtomicU64, _: u32, _: Option<Duration>) -> io::Result<WaitOutcome> {
    unsupported()
}
/// No-op on this target.
pub fn futex_wake(_: &AtomicU32, _: u32) {}
/// No-op on this target.
pub fn futex_wake_low(_: &AtomicU64, _: u32) {}
/// Always 1 on this target.
pub fn gettid() -> u32 {
    1
}
/// The process id of the caller.
pub fn getpid() -> u32 {
    std::process::id()
}
/// Always 0 on this target.
pub fn start_tag(_id: u32) -> u32 {
    0
}
/// Always true on this target.
pub fn is_alive(_id: u32, _tag: u32) -> bool {
    true
}
/// Unsupported on this target.
pub fn at_fork_child(_child: extern "C" fn()) -> io::Result<()> {
    unsupported()
}

/// Registers handlers around `fork()`: unsupported on this platform.
pub fn at_fork(
    _prepare: extern "C" fn(),
    _parent: extern "C" fn(),
    _child: extern "C" fn(),
) -> io::Result<()> {
    unsupported()
}

/// Unsupported on this target.
pub fn shm_open_or_create(_os_name: &str) -> io::Result<File> {
    unsupported()
}
/// 0 on this target.
pub fn geteuid() -> u32 {
    0
}
/// Always false on this target.
pub fn in_group(_gid: u32) -> bool {
    false
}
/// The mode of an open-file-description lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A read lock.
    Shared,
    /// A write lock.
    Exclusive,
}
/// Unsupported on this target.
pub fn ofd_try_lock_range(
    _fd: std::os::fd::BorrowedFd<'_>,
    _start: u64,
    _len: u64,
    _kind: LockKind,
) -> io::Result<bool> {
    unsupported()
}
/// Unsupported on this target.
pub fn ofd_unlock_range(
    _fd: std::os::fd::BorrowedFd<'_>,
    _start: u64,
    _len: u64,
) -> io::Result<()> {
    unsupported()
}
/// Unsupported on this target.
pub fn ofd_is_locked_range(
    _fd: std::os::fd::BorrowedFd<'_>,
    _start: u64,
    _len: u64,
) -> io::Result<bool> {
    unsupported()
}
/// Unsupported on this target.
pub fn ofd_try_lock(_fd: std::os::fd::BorrowedFd<'_>, _byte: u64) -> io::Result<bool> {
    unsupported()
}
/// Unsupported on this target.
pub fn ofd_is_locked(_fd: std::os::fd::BorrowedFd<'_>, _byte: u64) -> io::Result<bool> {
    unsupported()
}
/// Does nothing on this target.
pub fn close_raw(_fd: i32) {}
/// Always `true` on this target.
pub fn thread_exists(_tid: u32) -> bool {
    true
}
/// Unsupported on this target.
pub fn at_exit(_f: extern "C" fn()) -> io::Result<()> {
    unsupported()
}
/// Unsupported on this target.
pub fn reserve(_file: &File, _len: u64) -> io::Result<()> {
    unsupported()
}
/// Always false on this target.
pub fn is_out_of_space(_e: &io::Error) -> bool {
    false
}
/// Whether `e` is this target's "unsupported" error.
pub fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
}
