//! Stubs for targets without process support yet.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::process::ExitStatus;
use std::time::Duration;

#[allow(dead_code)] // `fork` never succeeds here
pub(crate) enum Forked {
    Child,
    Parent(u32),
}

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "shmproc processes are supported only on Linux so far",
    ))
}

pub(crate) fn fork() -> io::Result<Forked> {
    unsupported()
}
/// Unknown on this target.
pub(crate) fn current_cpu() -> Option<u32> {
    None
}

pub(crate) fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}
pub(crate) fn pidfd_open(_pid: u32) -> Option<OwnedFd> {
    None
}
pub(crate) fn try_reap(
    _pid: u32,
    _pidfd: Option<BorrowedFd<'_>>,
) -> io::Result<Option<ExitStatus>> {
    unsupported()
}
pub(crate) fn kill(_pid: u32, _signal: i32) -> io::Result<()> {
    unsupported()
}
pub(crate) fn pidfd_kill(_pidfd: BorrowedFd<'_>, _signal: i32) -> io::Result<()> {
    unsupported()
}
pub(crate) fn exit_code(status: ExitStatus) -> Option<i32> {
    status.code()
}
pub(crate) const SIGTERM: i32 = 15;
pub(crate) const SIGKILL: i32 = 9;
pub(crate) fn die_with_parent(_expected: u32) -> io::Result<bool> {
    unsupported()
}
pub(crate) fn parent_pid() -> Option<u32> {
    None
}
pub(crate) fn peer_pid(_fd: BorrowedFd<'_>) -> io::Result<u32> {
    unsupported()
}
pub(crate) fn is_secure_start() -> bool {
    false
}
pub(crate) fn set_cloexec(_fd: BorrowedFd<'_>) -> io::Result<()> {
    unsupported()
}
pub(crate) fn inode(_fd: BorrowedFd<'_>) -> io::Result<u64> {
    unsupported()
}
pub(crate) fn replace_socket(_fd: RawFd, _ino: u64, _inert: BorrowedFd<'_>) {}
