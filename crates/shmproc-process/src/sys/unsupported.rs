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

pub(crate) const CHILD_FD: RawFd = 3;
pub(crate) const MAX_FDS: usize = 64;
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    unsupported()
}
pub(crate) fn is_socket(_fd: RawFd) -> bool {
    false
}
/// # Safety
/// Never called on this target (no child is ever spawned).
pub(crate) unsafe fn own_fd(_fd: RawFd) -> OwnedFd {
    unreachable!("no spawned children on this target")
}
pub(crate) fn send_with_fds(
    _fd: BorrowedFd<'_>,
    _buf: &[u8],
    _fds: &[OwnedFd],
) -> io::Result<usize> {
    unsupported()
}
pub(crate) fn recv_with_fds(
    _fd: BorrowedFd<'_>,
    _buf: &mut [u8],
    _fds: &mut Vec<OwnedFd>,
    _block: bool,
) -> io::Result<usize> {
    unsupported()
}
pub(crate) fn poll_fds(
    _fds: &[Option<BorrowedFd<'_>>],
    _timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    unsupported()
}
pub(crate) fn poll_readable(_fds: &[RawFd], _timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    unsupported()
}
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    unsupported()
}
pub(crate) fn eventfd_signal(_fd: BorrowedFd<'_>) {}
pub(crate) fn eventfd_drain(_fd: BorrowedFd<'_>) {}
pub(crate) fn spawn_self(_channel: BorrowedFd<'_>, _env: &[(&str, &str)]) -> io::Result<u32> {
    unsupported()
}
pub(crate) fn signal_name(_signal: i32) -> &'static str {
    "unknown signal"
}
