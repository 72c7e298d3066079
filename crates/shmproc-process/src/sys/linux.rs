//! Linux implementation of the process seam, through `rustix` wherever it has the call.
//!
//! Raw `libc` remains only for what rustix lacks or cannot express: `fork` and `_exit` (rustix
//! offers them only to programs that replace libc), `posix_spawn`, `getauxval(AT_SECURE)`, and
//! calls on descriptor *numbers* nobody can vouch for (rustix needs a `BorrowedFd`, i.e. a
//! descriptor known to be open): probing descriptor 3 of a spawned child, `poll` on numbers a
//! pool waiter read under a lock it has since dropped, and replacing the descriptors a fork child
//! inherited. Each of those is memory-safe on any number (a closed one gives `EBADF`/`POLLNVAL`).

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::{Errno, FdFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitIdStatus, WaitOptions};

/// Result of `fork`.
pub(crate) enum Forked {
    Child,
    Parent(u32),
}

pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety precondition of its own. The child is a copy of this
    // process in which every other thread is as if suspended forever wherever it was — a state
    // safe code must already tolerate. What it can cause is a deadlock (a lock such a thread held
    // stays held in the child); `Process::fork` documents what a child may therefore do.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// The CPU the calling thread runs on right now (a hint: it may move at any time).
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: no arguments; returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// Leaves the process at once: no atexit handlers, no destructors, no stdio flush.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process and never returns.
    unsafe { libc::_exit(code) }
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))
}

/// A descriptor that becomes readable when the child exits (None on kernels before 5.3).
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    rustix::process::pidfd_open(to_pid(pid).ok()?, PidfdFlags::empty()).ok()
}

/// Reaps the child if it has exited (`WNOHANG`), returning its status: through its pidfd when
/// there is one (`waitid(P_PIDFD)`, which never reaches another process that reused the pid),
/// by pid otherwise.
pub(crate) fn try_reap(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<Option<ExitStatus>> {
    if let Some(pidfd) = pidfd {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        loop {
            match rustix::process::waitid(WaitId::PidFd(pidfd), options) {
                Ok(None) => return Ok(None),
                Ok(Some(status)) => return Ok(Some(exit_status(&status))),
                Err(Errno::INTR) => continue,
                // Linux 5.3 has pidfds but not P_PIDFD: wait by pid.
                Err(Errno::INVAL) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let pid = to_pid(pid)?;
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(None) => return Ok(None),
            Ok(Some((_, status))) => return Ok(Some(ExitStatus::from_raw(status.as_raw()))),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The `wait` status word `waitid` describes (exit code, or signal and core-dump flag).
fn exit_status(status: &WaitIdStatus) -> ExitStatus {
    let raw = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => (code & 0xff) << 8,
        (None, Some(signal)) => signal | if status.dumped() { 0x80 } else { 0 },
        (None, None) => 0,
    };
    ExitStatus::from_raw(raw)
}

fn to_signal(signal: i32) -> io::Result<Signal> {
    Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a signal"))
}

/// Sends `signal` to `pid`; a process already gone (reaped) is no error.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    gone_is_ok(rustix::process::kill_process(
        to_pid(pid)?,
        to_signal(signal)?,
    ))
}

/// Sends `signal` to the process `pidfd` refers to — never to another process that reused its
/// pid; a process already gone (reaped) is no error.
pub(crate) fn pidfd_kill(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    gone_is_ok(rustix::process::pidfd_send_signal(
        pidfd,
        to_signal(signal)?,
    ))
}

fn gone_is_ok(sent: rustix::io::Result<()>) -> io::Result<()> {
    match sent {
        Err(Errno::SRCH) => Ok(()),
        other => Ok(other?),
    }
}

/// Python's `exitcode` of a reaped child: its exit code, or minus the signal that killed it.
pub(crate) fn exit_code(status: ExitStatus) -> Option<i32> {
    status
        .code()
        .or_else(|| status.signal().map(|signal| -signal))
}

pub(crate) const SIGTERM: i32 = libc::SIGTERM;
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// Asks the kernel to SIGKILL this process when the *thread* that started it exits (not only
/// its process: see `owner_watch`), then checks that this process's parent is still
/// `expected` (if it already exited, no signal will come). `Ok(false)`: the parent is gone.
pub(crate) fn die_with_parent(expected: u32) -> io::Result<bool> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    Ok(parent_pid() == Some(expected))
}

/// This process's parent (None if it lies outside our PID namespace).
pub(crate) fn parent_pid() -> Option<u32> {
    rustix::process::getppid().map(|p| p.as_raw_pid() as u32)
}

/// The pid of the process that created the socket `fd` is connected to (`SO_PEERCRED`).
pub(crate) fn peer_pid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(fd)?.pid.as_raw_pid() as u32)
}

/// Whether this program was started setuid/setgid or with added capabilities (`AT_SECURE`).
pub(crate) fn is_secure_start() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Makes `fd` close-on-exec.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)?)
}

/// The inode number of `fd` (a socket's is unique among open sockets).
pub(crate) fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_ino)
}

/// In a fork child: if descriptor number `fd` is still the socket whose inode number's low 32
/// bits are `ino` (all of a socket's), replaces it with a copy of `inert` (close-on-exec). The
/// socket loses this reference; whoever still holds the number later closes the inert copy,
/// never an unrelated file.
pub(crate) fn replace_socket(fd: RawFd, ino: u64, inert: BorrowedFd<'_>) {
    if socket_at(fd).is_some_and(|found| found & 0xffff_ffff == ino) {
        // SAFETY: dup3 takes descriptor numbers and touches no memory of ours; it replaces
        // `fd` atomically (a failure leaves it as it was).
        unsafe { libc::dup3(inert.as_raw_fd(), fd, libc::O_CLOEXEC) };
    }
}

/// The inode number of descriptor *number* `fd` if it is an open socket. For numbers nobody
/// vouches for (rustix's `fstat` needs a descriptor known to be open).
fn socket_at(fd: RawFd) -> Option<u64> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat takes any number (a closed one fails with EBADF) and writes a whole
    // `stat` through the live out-pointer on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
}

/// The descriptor number a spawned child finds its channel at.
pub(crate) const CHILD_FD: RawFd = 3;
/// Most descriptors one frame carries.
pub(crate) const MAX_FDS: usize = 64;

/// A connected pair of close-on-exec unix stream sockets.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Whether descriptor number `fd` is an open socket (a spawned child checks the number it
/// inherited before taking ownership of it).
pub(crate) fn is_socket(fd: RawFd) -> bool {
    socket_at(fd).is_some()
}

/// Takes ownership of a descriptor inherited at a known number.
///
/// # Safety
/// `fd` must be open and owned by nobody else in this process.
pub(crate) unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Room for one `SCM_RIGHTS` message of up to [`MAX_FDS`] descriptors.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// `sendmsg` of `buf`, with `fds` attached (`SCM_RIGHTS`) when not empty; never raises SIGPIPE.
pub(crate) fn send_with_fds(fd: BorrowedFd<'_>, buf: &[u8], fds: &[OwnedFd]) -> io::Result<usize> {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let mut space = [MaybeUninit::uninit(); CMSG_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors in one message",
        ));
    }
    loop {
        match rustix::net::sendmsg(fd, &[IoSlice::new(buf)], &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `recvmsg` into `buf`; descriptors that arrive are appended to `fds` (close-on-exec).
/// Returns the bytes read (0 at end of stream). Unless `block`, an empty socket gives
/// `WouldBlock` instead of waiting.
pub(crate) fn recv_with_fds(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    block: bool,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); CMSG_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if !block {
        flags |= RecvFlags::DONTWAIT;
    }
    let msg = loop {
        match rustix::net::recvmsg(fd, &mut [IoSliceMut::new(buf)], &mut control, flags) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many descriptors in one message",
        ));
    }
    Ok(msg.bytes)
}

fn timespec(timeout: Duration) -> Timespec {
    // Durations beyond `Timespec`'s range (centuries) wait "forever" as far as we can tell.
    Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

/// Waits until one of `fds` is readable or hung up (`None` entries are skipped), at most
/// `timeout` (forever if `None`). Returns which are ready (all false on timeout or
/// interruption).
pub(crate) fn poll_fds(
    fds: &[Option<BorrowedFd<'_>>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .flatten()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    let timeout = timeout.map(timespec);
    match rustix::event::poll(&mut pfds, timeout.as_ref()) {
        Ok(_) | Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut ready = pfds.iter().map(|p| !p.revents().is_empty());
    Ok(fds
        .iter()
        .map(|fd| fd.is_some() && ready.next().unwrap_or(false))
        .collect())
}

/// [`poll_fds`] on descriptor numbers (negative ones are skipped), for callers that cannot
/// borrow them for the call: a number closed meanwhile reports ready (`POLLNVAL`) or wakes
/// spuriously, never touches memory.
pub(crate) fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| {
        t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
    });
    // SAFETY: `pfds` is a live, writable array of `pfds.len()` pollfds; any descriptor numbers
    // are fine (a closed one reports POLLNVAL).
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(pfds.iter().map(|p| r > 0 && p.revents != 0).collect())
}

/// A close-on-exec eventfd, to wake a thread sleeping in [`poll_readable`].
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

/// Makes an eventfd readable.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) {
    // A full counter (EAGAIN) still leaves it readable.
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd to not readable.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    // Non-blocking: EAGAIN when already drained.
    let _ = rustix::io::read(fd, &mut [0u8; 8]);
}

/// Starts this program again (`/proc/self/exe`) with `env` added to the environment (replacing
/// inherited values of the same keys), `channel` as descriptor [`CHILD_FD`] and `/dev/null` as
/// stdin; nothing else is inherited except stdout/stderr. Returns the child's pid.
pub(crate) fn spawn_self(channel: BorrowedFd<'_>, env: &[(&str, &str)]) -> io::Result<u32> {
    // A copy numbered above CHILD_FD: dup2 onto CHILD_FD then always makes a new descriptor,
    // which does not inherit close-on-exec.
    let temp = rustix::io::fcntl_dupfd_cloexec(channel, 10)?;

    let to_c = |s: &[u8]| {
        CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
    };
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "shmproc-child".into());
    let argv_owned = [to_c(argv0.as_bytes())?];
    let mut env_owned = Vec::new();
    for (k, v) in std::env::vars_os() {
        if !env.iter().any(|(key, _)| k.as_bytes() == key.as_bytes()) {
            env_owned.push(to_c(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
    }
    for (key, value) in env {
        env_owned.push(to_c(format!("{key}={value}").as_bytes())?);
    }
    let argv: Vec<*mut libc::c_char> = argv_owned
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let envp: Vec<*mut libc::c_char> = env_owned
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let path = c"/proc/self/exe";
    let dev_null = c"/dev/null";

    let mut pid: libc::pid_t = 0;
    // SAFETY: the file-action and attribute objects are initialised before use and destroyed
    // after; every pointer passed (paths, argv, envp and their strings) lives until
    // posix_spawn returns; argv and envp are NULL-terminated. Each step runs only if the
    // previous ones succeeded.
    let r = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut r = libc::posix_spawn_file_actions_init(&mut actions);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        r = libc::posix_spawnattr_init(&mut attr);
        if r != 0 {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(io::Error::from_raw_os_error(r));
        }
        r = libc::posix_spawn_file_actions_adddup2(&mut actions, temp.as_raw_fd(), CHILD_FD);
        if r == 0 {
            r = libc::posix_spawn_file_actions_addopen(
                &mut actions,
                libc::STDIN_FILENO,
                dev_null.as_ptr(),
                libc::O_RDONLY,
                0,
            );
        }
        if r == 0 {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            let mut pipe_only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigemptyset(&mut pipe_only);
            libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
            let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            r = libc::posix_spawnattr_setsigmask(&mut attr, &empty);
            if r == 0 {
                r = libc::posix_spawnattr_setsigdefault(&mut attr, &pipe_only);
            }
            if r == 0 {
                r = libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
            }
        }
        if r == 0 {
            r = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        r
    };
    drop(temp);
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(pid as u32)
}

/// The name of signal `signal`, e.g. `SIGKILL`.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    const NAMES: [(i32, &str); 20] = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGSYS, "SIGSYS"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGPWR, "SIGPWR"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == signal)
        .map_or("unknown signal", |(_, name)| name)
}
