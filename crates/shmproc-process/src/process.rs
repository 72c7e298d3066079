//! `Process`: a child process started by `fork`, with join, timeouts and signals.

use std::fmt;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::current::set_current_name;
use crate::sys::{self, Forked};
use crate::transport::Channel;

/// Exit code of a forked child whose closure panicked (the same as a panicking Rust `main`).
pub const PANIC_EXIT_CODE: i32 = 101;

static NEXT_NUMBER: AtomicU32 = AtomicU32::new(1);

/// A child process, like Python's `multiprocessing.Process` once started.
///
/// `R` is the type of the value a spawned entry returns; forked processes are `Process<()>`.
/// Dropping a `Process` does not stop the child; a child that has already exited is reaped.
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
    pid: u32,
    name: String,
    pidfd: Option<OwnedFd>,
    /// Set once the child has been reaped; also serialises reaping and signalling so a signal
    /// never reaches a recycled pid.
    status: Mutex<Option<ExitStatus>>,
    /// Where a spawned child's result comes from.
    pub(crate) result: Mutex<ResultLink>,
    _result: PhantomData<fn() -> R>,
}

/// The state of a process's result.
#[derive(Debug)]
pub(crate) enum ResultLink {
    /// A forked process: its "result" is its exit status.
    Forked,
    /// A spawned child will send its result here.
    Pending(Channel),
    /// Already returned (or the child went away without one).
    Taken,
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
    /// other destructors and never runs the parent's test harness twice. The parent drops its copy of `f` right away, so handles moved
    /// into `f` are released in the parent.
    ///
    /// Forking a multi-threaded program is allowed but the child then must not need locks that
    /// other threads held at the time (shmproc itself relies on none; stdout/stderr are taken
    /// across the fork so printing works).
    ///
    /// # Errors
    /// The OS error if `fork` fails (e.g. too many processes).
    pub fn fork<F: FnOnce() + Send + 'static>(f: F) -> io::Result<Process> {
        Process::fork_named(next_name(), f)
    }

    /// Like [`fork`](Process::fork) with a chosen name (see [`crate::current_process`]).
    ///
    /// # Errors
    /// As `fork`.
    pub fn fork_named<F: FnOnce() + Send + 'static>(
        name: impl Into<String>,
        f: F,
    ) -> io::Result<Process> {
        let name = name.into();
        // Boxed before the fork, so the child allocates nothing (each page it writes is a
        // copy-on-write fault: a short-lived child should touch as little as possible).
        let child_name = Box::new(name.clone());
        // Hold both stream locks across fork: buffered output is flushed once (not duplicated
        // in the child), and the child's copy of each lock is held by its own thread, not by a
        // thread that no longer exists there.
        let mut out = io::stdout().lock();
        let err = io::stderr().lock();
        let _ = out.flush();
        match sys::fork()? {
            Forked::Child => {
                drop((out, err));
                run_child(child_name, f)
            }
            Forked::Parent(pid) => {
                drop((out, err, child_name));
                drop(f);
                Ok(Process::started(pid, name, ResultLink::Forked))
            }
        }
    }
}

#[allow(clippy::box_collection)] // see `set_current_name`
fn run_child<F: FnOnce()>(name: Box<String>, f: F) -> ! {
    set_current_name(name);
    let code = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => 0,
        Err(_) => PANIC_EXIT_CODE,
    };
    // Copies of the parent's handles are never dropped here (no destructors run past `_exit`):
    // leave what they are members of, so peers see this child leave, not die.
    shmproc_shm::leave_all();
    let _ = io::stdout().flush(); // stderr is unbuffered
    sys::exit_now(code)
}

impl<R> Process<R> {
    pub(crate) fn started(pid: u32, name: String, result: ResultLink) -> Process<R> {
        Process {
            pid,
            name,
            pidfd: sys::pidfd_open(pid),
            status: Mutex::new(None),
            result: Mutex::new(result),
            _result: PhantomData,
        }
    }

    /// The pidfd (readable once the child exited), if the kernel has them.
    pub(crate) fn pidfd_raw(&self) -> Option<std::os::fd::RawFd> {
        self.pidfd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name (`Process-N` unless chosen).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child still runs (an exited child is reaped by this call).
    pub fn is_alive(&self) -> bool {
        matches!(self.poll_status(), Ok(None))
    }

    /// The exit status if the child has exited, without waiting.
    ///
    /// # Errors
    /// The OS error of `waitpid` (e.g. the child was reaped by someone else).
    pub fn exit_status(&self) -> io::Result<Option<ExitStatus>> {
        self.poll_status()
    }

    /// Waits for the child to exit and returns its status.
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

    /// Waits at most `timeout` (monotonic clock); `Ok(None)` if the child still runs.
    ///
    /// # Errors
    /// As [`join`](Process::join).
    pub fn join_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_status()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.pidfd {
                Some(fd) => {
                    sys::wait_readable(fd, left)?;
                }
                None => std::thread::sleep(left.min(Duration::from_millis(1))),
            }
        }
    }

    /// Asks the child to stop (SIGTERM). No effect if it has already exited.
    ///
    /// # Errors
    /// The OS error of `kill`.
    pub fn terminate(&self) -> io::Result<()> {
        self.signal(sys::SIGTERM)
    }

    /// Stops the child at once (SIGKILL). No effect if it has already exited.
    ///
    /// # Errors
    /// The OS error of `kill`.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(sys::SIGKILL)
    }

    fn signal(&self, signal: i32) -> io::Result<()> {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.is_some() {
            return Ok(());
        }
        // Not reaped yet (and we hold the reaping lock), so the pid cannot have been recycled.
        sys::kill(self.pid, signal)
    }

    fn poll_status(&self) -> io::Result<Option<ExitStatus>> {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.is_none() {
            *status = sys::try_reap(self.pid)?;
        }
        Ok(*status)
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        // Reap an exited child so it does not linger as a zombie; never wait for a running one.
        let _ = self.poll_status();
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = *self.status.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("exit_status", &status)
            .finish()
    }
}
