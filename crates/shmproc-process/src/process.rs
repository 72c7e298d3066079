//! `Process`: a child process started by `fork` or `spawn`, with join, timeouts and signals.
//!
//! A spawned child sends its result on a socket; the parent reads it *while* it waits for the
//! child to exit (`join`, `join_timeout`, `is_alive` all read what has arrived), and keeps it
//! for `join_result`. So a result larger than the socket buffer never leaves the child blocked
//! in `send` while the parent waits for it to exit.
//!
//! | the child …                                   | what the parent sees                       |
//! |-----------------------------------------------|--------------------------------------------|
//! | returns (fork), or replies and exits (spawn)  | its exit status; `join_result` the result  |
//! | panics                                        | [`PANIC_EXIT_CODE`], or `Panicked` (spawn) |
//! | is killed, even mid-reply                     | `Signaled`, even while descendants that    |
//! |                                               | inherited its channel live on              |
//! | outlives a dropped `Process`                  | nothing: not stopped (reaped if exited, or |
//! |                                               | later by `active_children`); a daemon is   |
//! |                                               | stopped (see `children`)                   |
//! | outlives its parent                           | lives on, like Python's; pool workers and  |
//! |                                               | daemons die with their owner instead (see  |
//! |                                               | `worker`, `children`)                      |

use std::fmt;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::children::{self, lock, Child};
use crate::current::{current_process, set_current_name, set_forked_from};
use crate::owner_ends;
use crate::owner_watch::die_with;
use crate::sys::{self, Forked};
use crate::transport::{Channel, Frame, Partial, Ready};

/// Exit code of a forked child whose closure panicked (the same as a panicking Rust `main`).
pub const PANIC_EXIT_CODE: i32 = 101;

static NEXT_NUMBER: AtomicU32 = AtomicU32::new(1);

/// A child process, like Python's `multiprocessing.Process` once started.
///
/// `R` is the type of the value a spawned entry returns; forked processes are `Process<()>`.
/// Dropping a `Process` does not stop the child (unless it is a daemon: see
/// [`ProcessBuilder::daemon`](crate::ProcessBuilder::daemon)); a child that has already exited is
/// reaped.
///
/// # Examples
/// ```
/// use shmproc_process::Process;
/// let p = Process::fork(|| println!("hello from the child"))?;
/// let status = p.join()?;
/// assert!(status.success());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Process<R = ()> {
    /// Pid, name, pidfd and exit status, shared with this process's list of children.
    child: Arc<Child>,
    /// A spawned child's channel: jobs go out, the result comes back.
    channel: Option<Channel>,
    /// The result, as far as it has arrived.
    reply: Mutex<Reply>,
    _result: PhantomData<fn() -> R>,
}

/// How a process delivers its result (given to [`Process::started`]).
#[derive(Debug)]
pub(crate) enum ResultLink {
    /// A forked process: its "result" is its exit status.
    Forked,
    /// A spawned child will send its result here.
    Pending(Channel),
}

/// The state of a spawned child's result.
#[derive(Debug)]
enum Reply {
    /// A forked process: none comes.
    None,
    /// Being read: the part that has arrived so far.
    Reading(Partial),
    /// Arrived whole, not yet returned.
    Arrived(Frame),
    /// The stream ended (or tore) without a whole result: the exit status will say why.
    Missing,
    /// Returned, or the child exited without one.
    Taken,
}

/// What [`Process::take_reply`] found.
pub(crate) enum Took {
    /// The result, now taken.
    Frame(Frame),
    /// An earlier call took it.
    Taken,
    /// Nothing to return (yet, unless the child has exited).
    Nothing,
}

/// Why [`Process::wait_until`] returned.
pub(crate) enum Waited {
    Exited(ExitStatus),
    /// A spawned child's result has arrived whole.
    Replied,
    TimedOut,
}

/// `Process-N`, counting up in this process.
pub(crate) fn next_name() -> String {
    format!("Process-{}", NEXT_NUMBER.fetch_add(1, Ordering::Relaxed))
}

impl Process<()> {
    /// Forks the calling process; the child runs `f` and exits with 0 on return or
    /// [`PANIC_EXIT_CODE`] if `f` panics. The child leaves the shared objects it is a member of
    /// (pipe ends, barriers: its peers see it leave, not die; see [`shmproc_shm::leave_all`]),
    /// flushes stdout/stderr, then exits with `_exit`: it never returns into the caller, runs no
    /// other destructors and never runs the parent's test harness twice. The parent drops its
    /// copy of `f` right away, so handles moved into `f` are released in the parent.
    ///
    /// Before `f` runs, the child lets go of its copies of the channels this process keeps to
    /// its other children (spawned processes, pool workers), so they still see end-of-stream
    /// when this process dies; a `Process` or `Pool` moved into `f` therefore cannot talk to
    /// its children from there.
    ///
    /// # Forking a multi-threaded program
    /// The child starts with one thread, a copy of the caller; every other thread of the parent
    /// is, for the child, stopped forever wherever it was. So `f` must not wait for anything
    /// another thread may have held at that moment: a `Mutex`/`RwLock` shared with other
    /// threads, a lock inside a library (a logger, a runtime, a connection pool), `stdin`. It
    /// may allocate (glibc's allocator is reset for the child), print (`fork` holds the stdout
    /// and stderr locks across the fork, so the child finds them free) and use shmproc handles
    /// (their locks live in shared memory: a parent thread holding one still releases it).
    /// shmproc's own steps in the child (naming it, letting go of channels, leaving shared
    /// objects) are written to take no lock. When `f` needs more, use [`Process::spawn`], which
    /// starts a fresh copy of the program instead.
    ///
    /// # Errors
    /// The OS error if `fork` fails (e.g. too many processes).
    pub fn fork<F: FnOnce() + Send + 'static>(f: F) -> io::Result<Process> {
        Process::fork_as(next_name(), false, f)
    }

    /// Like [`fork`](Process::fork) with a chosen name (see [`crate::current_process`]).
    ///
    /// # Errors
    /// As `fork`.
    pub fn fork_named<F: FnOnce() + Send + 'static>(
        name: impl Into<String>,
        f: F,
    ) -> io::Result<Process> {
        Process::fork_as(name.into(), false, f)
    }

    /// `fork` with a name, as a daemon or not (see [`crate::ProcessBuilder`]).
    pub(crate) fn fork_as<F: FnOnce() + Send + 'static>(
        name: String,
        daemon: bool,
        f: F,
    ) -> io::Result<Process> {
        let parent = std::process::id();
        // Boxed before the fork, so the child allocates nothing (each page it writes is a
        // copy-on-write fault: a short-lived child should touch as little as possible).
        let child_name = Box::new(name.clone());
        let parent_name = Box::new(current_process().name);
        // Hold both stream locks across fork: buffered output is flushed once (not duplicated
        // in the child), and the child's copy of each lock is held by its own thread, not by a
        // thread that no longer exists there.
        let mut out = io::stdout().lock();
        let err = io::stderr().lock();
        let _ = out.flush();
        match sys::fork()? {
            Forked::Child => {
                drop((out, err));
                run_child(child_name, (parent, parent_name), daemon, f)
            }
            Forked::Parent(pid) => {
                drop((out, err, child_name, parent_name));
                drop(f);
                Ok(Process::started_as(pid, name, daemon, ResultLink::Forked))
            }
        }
    }
}

/// The fork child: `parent` is the pid and name of the process that forked it. A daemon dies
/// with its parent (see `children`), and exits with 1 at once if the parent is already gone.
#[allow(clippy::box_collection)] // see `set_current_name`
fn run_child<F: FnOnce()>(name: Box<String>, parent: (u32, Box<String>), daemon: bool, f: F) -> ! {
    let (parent_pid, parent_name) = parent;
    set_current_name(name);
    set_forked_from(parent_pid, parent_name);
    owner_ends::release_inherited();
    let code = if daemon && !die_with(parent_pid) {
        1
    } else {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => 0,
            Err(_) => PANIC_EXIT_CODE,
        }
    };
    // Copies of the parent's handles are never dropped here (no destructors run past `_exit`):
    // leave what they are members of, so peers see this child leave, not die.
    shmproc_shm::leave_all();
    let _ = io::stdout().flush(); // stderr is unbuffered
    sys::exit_now(code)
}

impl<R> Process<R> {
    /// A non-daemon child just started (a pool worker).
    pub(crate) fn started(pid: u32, name: String, link: ResultLink) -> Process<R> {
        Process::started_as(pid, name, false, link)
    }

    /// A child just started, listed among this process's children.
    pub(crate) fn started_as(pid: u32, name: String, daemon: bool, link: ResultLink) -> Process<R> {
        let (channel, reply) = match link {
            ResultLink::Forked => (None, Reply::None),
            ResultLink::Pending(channel) => (Some(channel), Reply::Reading(Partial::default())),
        };
        Process {
            child: Child::started(pid, name, daemon),
            channel,
            reply: Mutex::new(reply),
            _result: PhantomData,
        }
    }

    /// The pidfd (readable once the child exited), if the kernel has them.
    pub(crate) fn pidfd_raw(&self) -> Option<std::os::fd::RawFd> {
        self.child.pidfd_raw()
    }

    /// A spawned child's channel.
    pub(crate) fn channel(&self) -> Option<&Channel> {
        self.channel.as_ref()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The child's name (`Process-N` unless chosen).
    pub fn name(&self) -> &str {
        self.child.name()
    }

    /// Whether the child is a daemon (see [`ProcessBuilder::daemon`](crate::ProcessBuilder::daemon)).
    pub fn is_daemon(&self) -> bool {
        self.child.is_daemon()
    }

    /// Whether the child still runs (an exited child is reaped by this call).
    pub fn is_alive(&self) -> bool {
        self.pump();
        matches!(self.poll_status(), Ok(None))
    }

    /// The exit status if the child has exited, without waiting.
    ///
    /// # Errors
    /// The OS error of `waitpid` (e.g. the child was reaped by someone else).
    pub fn exit_status(&self) -> io::Result<Option<ExitStatus>> {
        self.pump();
        self.poll_status()
    }

    /// The child's exit code, without waiting (Python's `exitcode`): `None` while it runs,
    /// `Some(code)` once it exited, `Some(-n)` if signal `n` killed it. An exited child is
    /// reaped by this call; [`join`](Process::join) and friends still report its status.
    /// `None` too if the status cannot be read (see [`exit_status`](Process::exit_status)).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmproc_process::Process;
    ///
    /// let p = Process::fork(|| std::thread::sleep(Duration::from_secs(30)))?;
    /// assert_eq!(p.exit_code(), None); // running
    /// p.kill()?;
    /// p.join()?;
    /// assert_eq!(p.exit_code(), Some(-9)); // SIGKILL
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_status().ok().flatten().and_then(sys::exit_code)
    }

    /// Waits for the child to exit and returns its status. A spawned child's result is read
    /// meanwhile and kept for [`join_result`](Process::join_result), whatever its size.
    ///
    /// # Errors
    /// The OS error of `waitpid`/`poll`.
    pub fn join(&self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.join_timeout(Duration::from_secs(3600))? {
                return Ok(status);
            }
        }
    }

    /// Waits at most `timeout` (monotonic clock); `Ok(None)` if the child still runs. Reads a
    /// spawned child's result meanwhile, like [`join`](Process::join).
    ///
    /// # Errors
    /// As [`join`](Process::join).
    pub fn join_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        match self.wait_until(Instant::now() + timeout, false)? {
            Waited::Exited(status) => Ok(Some(status)),
            Waited::Replied | Waited::TimedOut => Ok(None),
        }
    }

    /// Asks the child to stop (SIGTERM). No effect if it has already exited.
    ///
    /// # Errors
    /// The OS error of `pidfd_send_signal` (or `kill` where the kernel has no pidfds).
    pub fn terminate(&self) -> io::Result<()> {
        self.signal(sys::SIGTERM)
    }

    /// Stops the child at once (SIGKILL). No effect if it has already exited.
    ///
    /// # Errors
    /// The OS error of `pidfd_send_signal` (or `kill` where the kernel has no pidfds).
    pub fn kill(&self) -> io::Result<()> {
        self.signal(sys::SIGKILL)
    }

    fn signal(&self, signal: i32) -> io::Result<()> {
        self.child.signal(signal)
    }

    pub(crate) fn poll_status(&self) -> io::Result<Option<ExitStatus>> {
        self.child.poll_status()
    }

    /// Reads what has arrived of a spawned child's result, without blocking. `true` while
    /// more is expected (the channel is worth waiting on).
    fn pump(&self) -> bool {
        let mut reply = lock(&self.reply);
        let Reply::Reading(partial) = &mut *reply else {
            return false;
        };
        let Some(channel) = &self.channel else {
            *reply = Reply::Missing;
            return false;
        };
        match channel.read_ready(partial) {
            Ok(Ready::More) => return true,
            Ok(Ready::Frame(frame)) => *reply = Reply::Arrived(frame),
            // The child closed its end without a result, died mid-way, or sent garbage.
            Ok(Ready::Ended) | Err(_) => *reply = Reply::Missing,
        }
        false
    }

    /// Waits until the child exits, `deadline` passes, or (if `until_reply`) a spawned child's
    /// result has arrived whole — reading the result meanwhile in every case.
    pub(crate) fn wait_until(&self, deadline: Instant, until_reply: bool) -> io::Result<Waited> {
        loop {
            let reading = self.pump();
            if until_reply && matches!(*lock(&self.reply), Reply::Arrived(_)) {
                return Ok(Waited::Replied);
            }
            if let Some(status) = self.poll_status()? {
                return Ok(Waited::Exited(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Waited::TimedOut);
            }
            let channel = self.channel.as_ref().filter(|_| reading).map(AsFd::as_fd);
            self.child.nap(left, channel)?;
        }
    }

    /// Takes a spawned child's result if it has arrived. Call with `exited` only after the
    /// child was reaped: everything it sent is readable then, so a result not complete by now
    /// never will be, and the result counts as taken (the exit status says what happened).
    pub(crate) fn take_reply(&self, exited: bool) -> Took {
        self.pump();
        let mut reply = lock(&self.reply);
        match std::mem::replace(&mut *reply, Reply::Taken) {
            Reply::Arrived(frame) => Took::Frame(frame),
            Reply::Taken => Took::Taken,
            Reply::None => {
                *reply = Reply::None;
                Took::Nothing
            }
            unsettled @ (Reply::Reading(_) | Reply::Missing) => {
                if !exited {
                    *reply = unsettled;
                }
                Took::Nothing
            }
        }
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        if self.child.is_daemon() {
            // Bounded: SIGTERM, a short grace, SIGKILL, reaped.
            children::stop(std::slice::from_ref(&self.child));
        } else {
            // Reap an exited child so it does not linger as a zombie; never wait for a running
            // one.
            let _ = self.poll_status();
        }
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("name", &self.name())
            .field("daemon", &self.is_daemon())
            .field("exit_status", &self.child.cached_status())
            .finish()
    }
}
