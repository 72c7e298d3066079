//! Stubs for targets without process support yet.

use std::io;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::time::Duration;

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
pub(crate) fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}
pub(crate) fn pidfd_open(_pid: u32) -> Option<OwnedFd> {
    None
}
pub(crate) fn wait_readable(_pidfd: &OwnedFd, _timeout: Duration) -> io::Result<bool> {
    unsupported()
}
pub(crate) fn try_reap(_pid: u32) -> io::Result<Option<ExitStatus>> {
    unsupported()
}
pub(crate) fn kill(_pid: u32, _signal: i32) -> io::Result<()> {
    unsupported()
}
pub(crate) const SIGTERM: i32 = 15;
pub(crate) const SIGKILL: i32 = 9;
